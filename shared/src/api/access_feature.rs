//! `GET /v1/access/{feature}`: may the calling org use `feature` now, `{allowed, remaining}`,
//! without consuming anything (usage is `POST /v1/trials/{id}/usage`). The same read, answer
//! and caching as [`super::access`], for any product: a feature the org's plan does not have
//! is not allowed (200, `allowed: false`), so a client cannot tell a misspelt feature from one
//! the plan lacks, and no parameter is taken (400 `invalid_field`). Authenticated as
//! [`super::access::authenticate`] does (one round trip on a cold key cache too).
use lambda_http::{Request, RequestExt};

use super::access::{authenticate, cached, org_access};
use super::error::ApiError;
use super::reply::Reply;
use super::request::unknown_field;
use super::stats::query_pairs;
use super::LogFields;
use crate::App;

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let (tenant, read) = authenticate(app, req, log).await?;
    if let Some((name, _)) = query_pairs(req).first() {
        return Err(unknown_field(name));
    }
    let feature = feature(req);
    let access = org_access(app, &tenant, None, read, log).await?;
    Ok(cached(
        req,
        Reply::json(200, &access.feature_view(&feature)),
    ))
}

/// The `{feature}` of the path: the event's path parameter, else the path's last segment.
fn feature(req: &Request) -> String {
    if let Some(feature) = req.path_parameters_ref().and_then(|p| p.first("feature")) {
        return feature.to_owned();
    }
    let path = req.raw_http_path();
    let path = if path.is_empty() {
        req.uri().path().to_owned()
    } else {
        path.to_owned()
    };
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}
