//! The local HTTP server: every request becomes the `lambda_http::Request` API Gateway would
//! deliver, and goes through `trials::api::handle_any`, which routes it by the route table
//! (`trials::api::ROUTES`, as API Gateway routes by `template.yaml`'s events, which a test holds
//! equal to it): no route is listed here.
//!
//! CORS, as the template's `CorsConfiguration` gives API Gateway ([`Cors`]): for the origins in
//! `CORS_ALLOW_ORIGINS` (comma separated; empty or unset: none), so a web app on another origin
//! can call the API (the `/v1/me/...` routes with its user's JWT) from a browser.
use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response as AxumResponse;
use lambda_http::{Body, RequestExt};
use trials::api::{ApiError, Reply};
use trials::App;

use crate::stripe_standin::StripeStandIn;

/// API Gateway's own payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub fn router(app: App) -> axum::Router {
    let cors = Cors::new(std::env::var("CORS_ALLOW_ORIGINS").ok().as_deref());
    axum::Router::new().fallback(handle).with_state((app, cors))
}

/// The browser origins allowed to call the API, and the answers CORS asks for: what
/// `template.yaml`'s `CorsConfiguration` makes API Gateway answer.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

const ALLOW_METHODS: &str = "GET, POST, PATCH, OPTIONS";
// `x-api-key` and `x-jwt-token`: Edge Impulse's headers on `POST /api/user/trial`.
const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-org-id, x-project-id, x-api-key, x-jwt-token";
const EXPOSE_HEADERS: &str = "idempotent-replayed, retry-after";

impl Cors {
    /// From `CORS_ALLOW_ORIGINS`' value: origins separated by commas.
    pub fn new(raw: Option<&str>) -> Cors {
        let origins = raw.unwrap_or_default().split(',');
        let origins = origins.map(|o| o.trim().trim_end_matches('/').to_owned());
        Cors {
            origins: origins.filter(|o| !o.is_empty()).collect(),
        }
    }

    /// The request's `Origin`, if it is allowed.
    fn allowed<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let origin = headers.get("origin")?;
        let text = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == text).then_some(origin)
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an
    /// allowed origin: 204 with what may be sent. `None`: not a preflight, or another origin
    /// (the request is routed as any other, and gets no CORS headers).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<AxumResponse> {
        if method != Method::OPTIONS || !headers.contains_key("access-control-request-method") {
            return None;
        }
        let origin = self.allowed(headers)?.clone();
        let mut response = AxumResponse::new(AxumBody::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert("access-control-allow-origin", origin);
        out.insert(
            "access-control-allow-methods",
            HeaderValue::from_static(ALLOW_METHODS),
        );
        out.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        out.insert("access-control-max-age", HeaderValue::from_static("600"));
        out.insert("vary", HeaderValue::from_static("origin"));
        Some(response)
    }

    /// Names an allowed origin on an answer to it.
    pub fn decorate(&self, headers: &HeaderMap, response: &mut AxumResponse) {
        if let Some(origin) = self.allowed(headers) {
            let out = response.headers_mut();
            out.insert("access-control-allow-origin", origin.clone());
            out.insert(
                "access-control-expose-headers",
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
            out.insert("vary", HeaderValue::from_static("origin"));
        }
    }
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

async fn handle(
    State((app, cors)): State<(App, Cors)>,
    req: axum::extract::Request,
) -> AxumResponse {
    if let Some(preflight) = cors.preflight(req.method(), req.headers()) {
        return preflight;
    }
    let headers = req.headers().clone();
    let mut response = serve_api(&app, req).await;
    cors.decorate(&headers, &mut response);
    response
}

async fn serve_api(app: &App, req: axum::extract::Request) -> AxumResponse {
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
    to_axum(trials::api::handle_any(app, req).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn an_allowed_origin_gets_its_preflight_and_its_answers_name_it() {
        let cors = Cors::new(Some("https://app.example.com, https://admin.example.com/"));
        let preflight = headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ]);
        let answer = cors
            .preflight(&Method::OPTIONS, &preflight)
            .expect("a preflight");
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        let h = answer.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization"));
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-jwt-token"));
        let mut response = AxumResponse::new(AxumBody::empty());
        cors.decorate(
            &headers(&[("origin", "https://admin.example.com")]),
            &mut response,
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://admin.example.com"
        );
    }

    #[test]
    fn another_origin_or_no_configuration_gets_no_cors() {
        let other = headers(&[
            ("origin", "https://evil.example.com"),
            ("access-control-request-method", "POST"),
        ]);
        for cors in [
            Cors::new(Some("https://app.example.com")),
            Cors::new(None),
            Cors::new(Some("")),
        ] {
            assert!(cors.preflight(&Method::OPTIONS, &other).is_none());
            let mut response = AxumResponse::new(AxumBody::empty());
            cors.decorate(&other, &mut response);
            assert!(response
                .headers()
                .get("access-control-allow-origin")
                .is_none());
        }
        // Not a preflight: routed as any request.
        let cors = Cors::new(Some("https://app.example.com"));
        let plain = headers(&[("origin", "https://app.example.com")]);
        assert!(cors.preflight(&Method::OPTIONS, &plain).is_none());
        assert!(cors.preflight(&Method::GET, &plain).is_none());
    }
}
