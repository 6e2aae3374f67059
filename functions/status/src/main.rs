//! `status`: the reads (a trial, its data, the plans, the org's current trial, eligibility): one
//! least-privilege policy, one warm pool. Its routes are the group `trials::api::routes::STATUS`,
//! and its binary links only their handlers. Clients are built once at init, the logic lives in
//! `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::STATUS).await
}
