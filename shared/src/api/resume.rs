//! `POST /v1/trials/{id}/resume` (PAUSED only): a new active range opens, as long as the time
//! that was left, `expires_at` moves by the time spent paused and the trial waits in EXPIRE
//! again; its reminders are re-armed for the new end (see [`super::manage`]). No body.
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
    run(app, req, tenant, log, Move::Resume).await
}
