//! Who is calling: the API key in `Authorization: Bearer <key>`, and the tenant (org, project)
//! it lets the request act for.
//!
//! Checks, in order (the first failing one answers):
//! 1. `Authorization` carries a live key: missing, malformed, unknown, wrong secret or revoked
//!    are all **401** `unauthorized`, with the same body, so nothing tells them apart.
//! 2. `X-Org-Id`: missing or malformed 400; not the key's org **403** `forbidden`.
//! 3. `X-Project-Id`: missing or malformed 400; not allowed for the key **403** `forbidden`.
//!
//! The key is checked against its record (`GetItem APIKEY#<key_id>`, SHA-256 compared in
//! constant time) or against the warm function's [`KeyCache`].
pub mod cache;
pub mod keys;

use lambda_http::Request;

use crate::api::request::{header, org_id, project_id};
use crate::api::ApiError;
use crate::crypto;
use crate::domain::{OrgId, ProjectId};
use crate::store::StoreError;
use crate::App;

pub use cache::{Cached, KeyCache};
pub use keys::{ApiKey, KeyInfo, Projects};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub org: OrgId,
    pub project: ProjectId,
}

pub fn unauthorized() -> ApiError {
    ApiError::new(
        401,
        "unauthorized",
        "A valid API key is required: Authorization: Bearer <key>",
    )
}

pub fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        403,
        "forbidden",
        format!("The API key does not grant access to this {what}"),
    )
}

pub async fn authenticate(app: &App, req: &Request) -> Result<Tenant, ApiError> {
    let key = bearer_key(req).ok_or_else(unauthorized)?;
    let info = verify(app, &key).await?.ok_or_else(unauthorized)?;
    let org = org_id(req)?;
    if org != info.org {
        return Err(forbidden("organization"));
    }
    let project = project_id(req)?;
    if !info.projects.allows(&project) {
        return Err(forbidden("project"));
    }
    Ok(Tenant { org, project })
}

/// The key of `Authorization: Bearer <key>` (scheme case-insensitive), if it has our form.
pub fn bearer_key(req: &Request) -> Option<ApiKey> {
    let value = header(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    ApiKey::parse(token.trim())
}

/// What `key` may do if it is live (exists, this secret, not revoked): from the cache while
/// the verdict is fresh, else one `GetItem`. A failing store is an error, never a verdict.
pub async fn verify(app: &App, key: &ApiKey) -> Result<Option<KeyInfo>, StoreError> {
    let hash = key.hash();
    let now_ms = app.clock.now_millis();
    match app.keys.get(&hash, now_ms) {
        Cached::Verified(info) => return Ok(Some(info)),
        Cached::Refused => return Ok(None),
        Cached::Unknown => {}
    }
    let live = app
        .store
        .get_api_key(key.key_id())
        .await?
        .filter(|stored| crypto::constant_time_eq(stored.hash.as_bytes(), hash.as_bytes()))
        .map(|stored| stored.info)
        .filter(|info| !info.revoked());
    match &live {
        Some(info) => app.keys.put_verified(hash, info.clone(), now_ms),
        None => app.keys.put_refused(hash, now_ms),
    }
    Ok(live)
}
