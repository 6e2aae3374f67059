//! `POST /v1/trials/{id}/convert` and `POST /v1/trials/skip`: the routes that call Stripe.
//! Clients are built once at init, the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    use trials::api::Route;
    trials::lambda::serve_routes(&[Route::Convert, Route::Skip]).await
}
