//! The local HTTP server: every request becomes the `lambda_http::Request` API Gateway would
//! deliver, and goes through `trials::api::handle_any`, which routes it by the route table
//! (`trials::api::ROUTES`, as API Gateway routes by `template.yaml`'s events, which a test holds
//! equal to it): no route is listed here.
use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::State;
use axum::response::Response as AxumResponse;
use lambda_http::{Body, RequestExt};
use trials::api::{ApiError, Reply};
use trials::App;

use crate::stripe_standin::StripeStandIn;

/// API Gateway's own payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub fn router(app: App) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

/// [`router`], plus the pages of a local run: the Stripe stand-in's checkout page (when it is
/// in use) and the success and cancel pages Checkout sends the customer back to. Their paths
/// (`/checkout/...`) are outside the API's `/v1/...`; and the operator console (`/console`,
/// loopback clients only: serve it with connect info, as `service::start` does), which shows
/// `jobs`, the runs of the local job timer.
pub fn local_router(
    app: App,
    standin: Option<StripeStandIn>,
    jobs: crate::console::data::JobLog,
) -> axum::Router {
    let mut pages = crate::pages::router(app.clone(), standin.clone())
        .merge(crate::console::router(app.clone(), jobs));
    if let Some(standin) = &standin {
        pages = pages.merge(standin.checkout_router());
    }
    pages.merge(router(app))
}

async fn handle(State(app): State<App>, req: axum::extract::Request) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return to_axum(Reply::error(&ApiError::payload_too_large(MAX_BODY)).into_response())
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let path = parts.uri.path().to_owned();
    let req = lambda_http::Request::from_parts(parts, body).with_raw_http_path(path);
    to_axum(trials::api::handle_any(&app, req).await)
}

fn to_axum(res: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = res.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}

/// Serves until the process ends.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(app)).await
}
