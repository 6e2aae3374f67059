//! `POST /v1/trials/{id}/pause` (ACTIVE only): the trial becomes PAUSED, its current active
//! range closes, its remaining time freezes and it leaves the EXPIRE queue for RESUME at
//! `paused_at + pause_max` (see [`super::manage`]). No body.
use lambda_http::Request;

use super::error::ApiError;
use super::manage::{run, Move};
use super::reply::Reply;
use super::LogFields;
use crate::auth::Tenant;
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    // No body: a field sent anyway is refused by name, not ignored.
    super::request::no_fields(req)?;
    run(app, req, tenant, log, Move::Pause).await
}
