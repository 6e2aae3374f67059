//! `status`: the reads (a trial, its data, the plans, the org's current trial, eligibility):
//! one least-privilege policy, one warm pool. Its routes are the rows of `trials::api::ROUTES`
//! that name this function. Clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_function("status").await
}
