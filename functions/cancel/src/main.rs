//! `POST /v1/trials/{id}/cancel` and `PATCH /v1/trials/{id}` (the admin's change): the trial
//! mutations that call no payment provider. Clients are built once at init, the logic lives in
//! `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    use trials::api::Route;
    trials::lambda::serve_routes(&[Route::Cancel, Route::Patch]).await
}
