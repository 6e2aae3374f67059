//! Scheduled job `expire` (EventBridge schedule rule): clients are built once at init, the logic lives in `trials::jobs`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_job(trials::jobs::Job::Expire).await
}
