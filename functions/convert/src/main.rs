//! `convert`: the routes that call Stripe (convert and skip). Its routes are the group
//! `trials::api::routes::CONVERT`, and its binary links only their handlers. Clients are built once
//! at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::CONVERT).await
}
