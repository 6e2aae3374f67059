//! `POST /v1/webhooks/stripe`: clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_route(trials::api::Route::StripeWebhook).await
}
