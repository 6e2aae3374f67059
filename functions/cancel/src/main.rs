//! `cancel`: the trial mutations that call no payment provider (cancel and the admin's
//! `PATCH`). Its routes are the rows of `trials::api::ROUTES` that name this function. Clients
//! are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_function("cancel").await
}
