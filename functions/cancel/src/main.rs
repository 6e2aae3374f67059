//! `cancel`: the trial mutations that call no payment provider (cancel and the admin's `PATCH`).
//! Its routes are the group `trials::api::routes::CANCEL`, and its binary links only their
//! handlers. Clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::CANCEL).await
}
