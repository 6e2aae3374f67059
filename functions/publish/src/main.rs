//! `publish`: the table's DynamoDB stream (event source mapping, INSERTs of `EVENT#` items) to
//! EventBridge. Clients are built once at init; the logic lives in `trials::publish`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_publisher().await
}
