//! `stripe-webhook`: Stripe's signed events. Its routes are the group
//! `trials::api::routes::STRIPE_WEBHOOK`, and its binary links only their handlers. Clients are
//! built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::STRIPE_WEBHOOK).await
}
