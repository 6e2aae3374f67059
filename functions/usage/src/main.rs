//! `usage`: its own function, not the cancel one it resembles. Usage is metering traffic, called
//! far more often than any transition: its own concurrency, throttles and alarms keep a burst of
//! usage from starving cancel, and it needs no Stripe secret. Its routes are the group
//! `trials::api::routes::USAGE`, and its binary links only their handlers. Clients are built once
//! at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::USAGE).await
}
