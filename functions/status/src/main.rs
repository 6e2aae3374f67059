//! The reads: `GET /v1/trials/{id}`, `GET /v1/trials/{id}/data`, `GET /v1/plans`,
//! `GET /v1/trials/current` and `GET /v1/trials/eligibility`. Clients are built once at init,
//! the logic lives in `trials`.
use trials::api::Route;

#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_routes(&[
        Route::Status,
        Route::TrialData,
        Route::Plans,
        Route::Current,
        Route::Eligibility,
    ])
    .await
}
