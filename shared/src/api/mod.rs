//! The HTTP entry points: one handler module per route, the route table that lists them
//! ([`routes`]), and what they share (request parsing, errors, idempotency, the request log
//! line). Every request goes through [`handle`]: the body limit, the row's authentication, the
//! handler, then exactly one log line.
pub mod access;
pub mod access_feature;
pub mod activate;
pub mod admin;
pub mod applicant;
pub mod cancel;
pub mod change_plan;
pub mod convert;
pub mod current;
pub mod edge_impulse;
pub mod eligibility;
pub mod error;
pub mod extend;
pub mod gcore;
pub mod idempotency;
pub mod manage;
pub mod owned;
pub mod patch;
pub mod pause;
pub mod plans;
pub mod reply;
pub mod request;
pub mod resume;
pub mod routes;
pub mod skip;
pub mod start;
pub mod stats;
pub mod status;
pub mod stripe_delivery;
pub mod stripe_subscription;
pub mod stripe_webhook;
pub mod timeline;
pub mod trial_data;
pub mod usage;

use std::time::Instant;

use lambda_http::{Body, Request, Response};

pub use error::ApiError;
pub use reply::Reply;
pub use routes::{
    Auth, Function, Route, RouteInfo, Row, FUNCTIONS, INFO, MAX_BODY_BYTES, MAX_WEBHOOK_BODY_BYTES,
    ROUTES,
};

use crate::domain::ErrorCode;
use crate::App;

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

/// Runs `route` for `req` (the local server and tests: reads [`ROUTES`], every handler; a
/// Lambda function calls [`handle_row`] with its own group's row).
pub async fn handle(app: &App, route: Route, req: Request) -> Response<Body> {
    handle_row(app, route.row(), req).await
}

/// Runs `row`'s route for `req`: every outcome, including every error, becomes a JSON
/// response, and exactly one log line is written.
pub async fn handle_row(app: &App, row: &Row, req: Request) -> Response<Body> {
    let started = Instant::now();
    let mut log = LogFields::default();
    let reply = match dispatch(app, row, &req, &mut log).await {
        Ok(reply) => reply,
        Err(err) => Reply::error(&err),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::metrics::request(row.name, reply.status, ms);
    tracing::info!(
        route = row.name,
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

/// The route's row, in order: the body limit, who may call, the handler.
async fn dispatch(
    app: &App,
    row: &Row,
    req: &Request,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    // Before anything parses the body (the idempotency fingerprint, the JSON, the signature).
    if req.body().len() > row.max_body_bytes {
        return Err(ApiError::payload_too_large(row.max_body_bytes));
    }
    match row.auth {
        Auth::ApiKey(handler) => handler(app, req, &authenticated(app, req, log).await?, log).await,
        Auth::AdminKey { may, handler } => {
            let tenant = authenticated(app, req, log).await?;
            if !tenant.admin {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("Only an admin API key may {may}"),
                ));
            }
            handler(app, req, &tenant, log).await
        }
        Auth::StripeSignature(handler) | Auth::Itself(handler) => handler(app, req, log).await,
        Auth::Jwt(handler) => {
            let source = crate::jwt::TokenSource::Bearer;
            let tenant = crate::auth::jwt_tenant(&app.config.jwt, req, source, app.now())?;
            log.tenant(&tenant);
            handler(app, req, &tenant, log).await
        }
    }
}

async fn authenticated(
    app: &App,
    req: &Request,
    log: &mut LogFields,
) -> Result<crate::auth::Tenant, ApiError> {
    let tenant = app.auth().authenticate(req).await?;
    log.tenant(&tenant);
    Ok(tenant)
}

/// `req` served by one of `rows` (a function's group, serving several routes). The route is API
/// Gateway's `routeKey`, else the method and path (which may carry a stage before `/v1/`),
/// resolved against every route's pattern ([`INFO`]); a route not in `rows` is a JSON 404
/// `route_not_found` (API Gateway sends only the routes the template gives the function, so
/// this is a misconfiguration guard).
pub async fn handle_among(app: &App, rows: &[Row], req: Request) -> Response<Body> {
    match route_of(&req) {
        Ok(route) => match rows.iter().find(|row| row.route == route) {
            Some(row) => handle_row(app, row, req).await,
            None => Reply::error(&ApiError::route_not_found()).into_response(),
        },
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
    let (method, path) = (req.method().as_str(), req.uri().path());
    // A route whose path has `/v1/` inside (Gcore's `/billing/org/v1/...`) as written first;
    // else the path from `/v1/` on (a stage before it).
    if let Ok(route) = Route::resolve(method, path) {
        return Ok(route);
    }
    let path = path.find("/v1/").map_or(path, |at| &path[at..]);
    Route::resolve(method, path)
}

/// The whole API behind one entry point, routed by method and path (the local server).
pub async fn handle_any(app: &App, req: Request) -> Response<Body> {
    match Route::resolve(req.method().as_str(), req.uri().path()) {
        Ok(route) => handle(app, route, req).await,
        Err(err) => Reply::error(&err).into_response(),
    }
}
