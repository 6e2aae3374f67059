//! `stripe-webhook`: Stripe's signed events. Its routes are the rows of `trials::api::ROUTES`
//! that name this function. Clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_function("stripe-webhook").await
}
