//! `POST /v1/trials/{id}/extend` `{"days": n}` or `{"until": "<RFC 3339>"}`, plus an optional
//! `reason`: from ACTIVE (the current range grows) or from EXPIRED within grace (ACTIVE again in
//! a new range; purge is off: the trial waits in EXPIRE again). A field other than these three
//! is 400 `invalid_field`, naming it. The body's shape is checked
//! first (422 `invalid_extension`, not stored: it depends on the body alone); whether the new
//! end suits the trial is `Trial::extend`'s answer (see [`super::manage`]).
//!
//! Admin keys of the trial's org only (a standard key is 403 `forbidden`, as for `PATCH`).
//! `trial.extended` records the key id (never the key) as `requested_by`.
use lambda_http::Request;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::error::ApiError;
use super::manage::{run, Move};
use super::reply::Reply;
use super::request::{json_object, typed};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::{ErrorCode, ExtendRequest};
use crate::App;

/// The body's fields (`ExtendRequest::parse` reads their values).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendFields {
    #[serde(rename = "days")]
    _days: Option<IgnoredAny>,
    #[serde(rename = "until")]
    _until: Option<IgnoredAny>,
    #[serde(rename = "reason")]
    _reason: Option<IgnoredAny>,
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let body = json_object(req)?;
    // Fields it does not know are refused by name; the values are the domain's to check.
    let _: ExtendFields = typed(body.clone(), |f| ApiError::new(ErrorCode::InvalidField, f))?;
    let request = ExtendRequest::parse(&body).map_err(|e| ApiError::new(e.code(), e.message()))?;
    run(app, req, tenant, log, Move::Extend(request)).await
}
