//! `manage`: the operator's lifecycle moves (extend, pause, resume, change-plan) in one function (rarely called,
//! so one warm function instead of three cold ones). Its routes are the group
//! `trials::api::routes::MANAGE`, and its binary links only their handlers. Clients are built once
//! at init; the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve(trials::api::routes::MANAGE).await
}
