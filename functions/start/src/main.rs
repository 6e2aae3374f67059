//! `start`: opening a trial. Its routes are the group `trials::api::routes::START`, and its binary
//! links only their handlers. Clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::START).await
}
