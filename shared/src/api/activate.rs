//! `POST /v1/trials/{id}/activate` (PENDING only): the trial's clock starts now. It becomes
//! ACTIVE, ends `trial_length` from now, opens its first active range, waits in the EXPIRE
//! queue for its end and arms its reminders, with `trial.activated` (see [`super::manage`]).
//! 409 `trial_not_pending` for a trial whose clock already runs. No body.
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
    run(app, req, tenant, log, Move::Activate).await
}
