//! `POST /v1/trials/{id}/extend`, `/pause` and `/resume`: the operator's lifecycle moves in one
//! function (rarely called, so one warm function instead of three cold ones). Clients are built
//! once at init; the logic lives in `trials`.
#[tokio::main]
async fn main() -> Result<(), trials::BoxError> {
    trials::lambda::serve_routes(&[
        trials::api::Route::Extend,
        trials::api::Route::Pause,
        trials::api::Route::Resume,
    ])
    .await
}
