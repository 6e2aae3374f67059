//! The HTTP entry points: one handler module per route, and what they share (request parsing,
//! errors, idempotency, the request log line).
pub mod admin;
pub mod applicant;
pub mod cancel;
pub mod convert;
pub mod current;
pub mod eligibility;
pub mod error;
pub mod extend;
pub mod idempotency;
pub mod manage;
pub mod owned;
pub mod patch;
pub mod pause;
pub mod plans;
pub mod reply;
pub mod request;
pub mod resume;
pub mod skip;
pub mod start;
pub mod status;
pub mod stripe_webhook;
pub mod trial_data;
pub mod usage;

use std::time::Instant;

use lambda_http::{Body, Request, Response};

pub use error::ApiError;
pub use reply::Reply;

use crate::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Start,
    Status,
    Convert,
    Cancel,
    StripeWebhook,
    Plans,
    TrialData,
    Usage,
    Extend,
    Pause,
    Resume,
    /// `PATCH /v1/trials/{id}`: admin keys only.
    Patch,
    /// `GET /v1/trials/current`: the org's trial.
    Current,
    /// `GET /v1/trials/eligibility?plan=`: may the org start a trial.
    Eligibility,
    /// `POST /v1/trials/skip`: no free trial, a paid checkout now.
    Skip,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Start => "POST /v1/trials/start",
            Route::Status => "GET /v1/trials/{id}",
            Route::Convert => "POST /v1/trials/{id}/convert",
            Route::Cancel => "POST /v1/trials/{id}/cancel",
            Route::StripeWebhook => "POST /v1/webhooks/stripe",
            Route::Plans => "GET /v1/plans",
            Route::TrialData => "GET /v1/trials/{id}/data",
            Route::Usage => "POST /v1/trials/{id}/usage",
            Route::Extend => "POST /v1/trials/{id}/extend",
            Route::Pause => "POST /v1/trials/{id}/pause",
            Route::Resume => "POST /v1/trials/{id}/resume",
            Route::Patch => "PATCH /v1/trials/{id}",
            Route::Current => "GET /v1/trials/current",
            Route::Eligibility => "GET /v1/trials/eligibility",
            Route::Skip => "POST /v1/trials/skip",
        }
    }

    /// Every route, for matching an API Gateway route key against [`Route::name`].
    pub const ALL: [Route; 15] = [
        Route::Start,
        Route::Status,
        Route::Convert,
        Route::Cancel,
        Route::StripeWebhook,
        Route::Plans,
        Route::TrialData,
        Route::Usage,
        Route::Extend,
        Route::Pause,
        Route::Resume,
        Route::Patch,
        Route::Current,
        Route::Eligibility,
        Route::Skip,
    ];

    /// The route whose [`Route::name`] is API Gateway's `routeKey` (`GET /v1/trials/{id}`).
    pub fn from_route_key(key: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.name() == key)
    }

    /// Which route serves `method path`; for the local server, where no API Gateway routes.
    pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let (route, allowed) = match segments.as_slice() {
            ["v1", "trials", "start"] => (Route::Start, "POST"),
            // Before `{id}`: these words are no trial id.
            ["v1", "trials", "current"] => (Route::Current, "GET"),
            ["v1", "trials", "eligibility"] => (Route::Eligibility, "GET"),
            ["v1", "trials", "skip"] => (Route::Skip, "POST"),
            ["v1", "webhooks", "stripe"] => (Route::StripeWebhook, "POST"),
            ["v1", "trials", _] if method == "PATCH" => (Route::Patch, "PATCH"),
            ["v1", "trials", _] => (Route::Status, "GET"),
            ["v1", "trials", _, "convert"] => (Route::Convert, "POST"),
            ["v1", "trials", _, "cancel"] => (Route::Cancel, "POST"),
            ["v1", "plans"] => (Route::Plans, "GET"),
            ["v1", "trials", _, "data"] => (Route::TrialData, "GET"),
            ["v1", "trials", _, "usage"] => (Route::Usage, "POST"),
            ["v1", "trials", _, "extend"] => (Route::Extend, "POST"),
            ["v1", "trials", _, "pause"] => (Route::Pause, "POST"),
            ["v1", "trials", _, "resume"] => (Route::Resume, "POST"),
            _ => return Err(ApiError::route_not_found()),
        };
        if method != allowed {
            return Err(ApiError::method_not_allowed());
        }
        Ok(route)
    }
}

/// What the request log line records besides route, status and duration.
#[derive(Debug, Default)]
pub struct LogFields {
    pub org_id: Option<String>,
    pub key_id: Option<String>,
    pub trial_id: Option<String>,
}

impl LogFields {
    pub fn tenant(&mut self, tenant: &crate::auth::Tenant) {
        self.org_id = Some(tenant.org.to_string());
        self.key_id = Some(tenant.key_id.clone());
    }
}

/// The largest body a route accepts, checked before anything parses it: a mutation's JSON is
/// a few hundred bytes (applicant metadata included, well under this).
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Stripe's events are well under this.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 512 * 1024;

impl Route {
    pub fn max_body_bytes(self) -> usize {
        match self {
            Route::StripeWebhook => MAX_WEBHOOK_BODY_BYTES,
            _ => MAX_BODY_BYTES,
        }
    }
}

/// Runs `route` for `req`: every outcome, including every error, becomes a JSON response, and
/// exactly one log line is written.
pub async fn handle(app: &App, route: Route, req: Request) -> Response<Body> {
    let started = Instant::now();
    let mut log = LogFields::default();
    let reply = match dispatch(app, route, &req, &mut log).await {
        Ok(reply) => reply,
        Err(err) => Reply::error(&err),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::metrics::request(route.name(), reply.status, ms);
    tracing::info!(
        route = route.name(),
        org_id = log.org_id.as_deref().unwrap_or("-"),
        key_id = log.key_id.as_deref().unwrap_or("-"),
        trial_id = log.trial_id.as_deref().unwrap_or("-"),
        status = reply.status,
        outcome = reply.code.map(|c| c.as_str()).unwrap_or(if reply.replayed {
            "replayed"
        } else {
            "ok"
        }),
        ms,
        "request"
    );
    reply.into_response()
}

async fn dispatch(
    app: &App,
    route: Route,
    req: &Request,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    // Before anything parses the body (the idempotency fingerprint, the JSON, the signature).
    let limit = route.max_body_bytes();
    if req.body().len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    match route {
        // Authenticated by Stripe's signature, not by an API key.
        Route::StripeWebhook => stripe_webhook::handle(app, req, log).await,
        // Authenticates itself: the key record and the trial in one read.
        Route::Status => status::handle(app, req, log).await,
        Route::Start => start::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Convert => {
            convert::handle(app, req, &authenticated(app, req, log).await?, log).await
        }
        Route::Cancel => cancel::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Plans => plans::handle(app, req, log).await,
        Route::TrialData => {
            trial_data::handle(app, req, &authenticated(app, req, log).await?, log).await
        }
        Route::Usage => usage::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Extend => extend::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Pause => pause::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Resume => resume::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Patch => patch::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Current => {
            current::handle(app, req, &authenticated(app, req, log).await?, log).await
        }
        Route::Skip => skip::handle(app, req, &authenticated(app, req, log).await?, log).await,
        Route::Eligibility => {
            eligibility::handle(app, req, &authenticated(app, req, log).await?, log).await
        }
    }
}

async fn authenticated(
    app: &App,
    req: &Request,
    log: &mut LogFields,
) -> Result<crate::auth::Tenant, ApiError> {
    let tenant = crate::auth::authenticate(app, req).await?;
    log.tenant(&tenant);
    Ok(tenant)
}

/// `req` served by one of `routes` (a function serving several routes). The route is API
/// Gateway's `routeKey`, else the method and path (which may carry a stage before `/v1/`); a
/// route not in `routes` is a JSON 404 `route_not_found` (API Gateway sends only the routes the
/// template gives the function, so this is a misconfiguration guard).
pub async fn handle_among(app: &App, routes: &[Route], req: Request) -> Response<Body> {
    match route_of(&req) {
        Ok(route) if routes.contains(&route) => handle(app, route, req).await,
        Ok(_) => Reply::error(&ApiError::route_not_found()).into_response(),
        Err(err) => Reply::error(&err).into_response(),
    }
}

/// The route of a Lambda request (see [`handle_among`]).
pub(crate) fn route_of(req: &Request) -> Result<Route, ApiError> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if let Some(route) = ctx.route_key.as_deref().and_then(Route::from_route_key) {
            return Ok(route);
        }
    }
    let path = req.uri().path();
    let path = path.find("/v1/").map_or(path, |at| &path[at..]);
    Route::resolve(req.method().as_str(), path)
}

/// The whole API behind one entry point, routed by method and path (the local server).
pub async fn handle_any(app: &App, req: Request) -> Response<Body> {
    match Route::resolve(req.method().as_str(), req.uri().path()) {
        Ok(route) => handle(app, route, req).await,
        Err(err) => Reply::error(&err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_and_methods() {
        assert_eq!(Route::resolve("POST", "/v1/trials/start"), Ok(Route::Start));
        assert_eq!(
            Route::resolve("GET", "/v1/trials/trial_x"),
            Ok(Route::Status)
        );
        assert_eq!(
            Route::resolve("POST", "/v1/trials/trial_x/convert/"),
            Ok(Route::Convert)
        );
        assert_eq!(
            Route::resolve("POST", "/v1/trials/trial_x/cancel"),
            Ok(Route::Cancel)
        );
        for (action, route) in [
            ("extend", Route::Extend),
            ("pause", Route::Pause),
            ("resume", Route::Resume),
        ] {
            assert_eq!(
                Route::resolve("POST", &format!("/v1/trials/trial_x/{action}")),
                Ok(route)
            );
        }
        assert_eq!(
            Route::resolve("POST", "/v1/webhooks/stripe"),
            Ok(Route::StripeWebhook)
        );
        assert_eq!(Route::resolve("GET", "/v1/plans"), Ok(Route::Plans));
        assert_eq!(
            Route::resolve("GET", "/v1/trials/trial_x/data"),
            Ok(Route::TrialData)
        );
        assert_eq!(
            Route::resolve("POST", "/v1/trials/trial_x/usage"),
            Ok(Route::Usage)
        );
        for route in Route::ALL {
            assert_eq!(Route::from_route_key(route.name()), Some(route));
        }
        assert_eq!(
            Route::resolve("PATCH", "/v1/trials/trial_x"),
            Ok(Route::Patch)
        );
        assert_eq!(
            Route::resolve("GET", "/v1/trials/current"),
            Ok(Route::Current)
        );
        assert_eq!(
            Route::resolve("GET", "/v1/trials/eligibility"),
            Ok(Route::Eligibility)
        );
        assert_eq!(
            Route::resolve("DELETE", "/v1/trials/trial_x")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            Route::resolve("GET", "/v1/trials/start")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            Route::resolve("GET", "/nope").unwrap_err().code.as_str(),
            "route_not_found"
        );
    }
}
