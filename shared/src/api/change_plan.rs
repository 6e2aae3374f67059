//! `POST /v1/trials/{id}/change-plan` `{"plan": "<plan>", "force": false}`: an ACTIVE or PAUSED
//! trial moves to another trialable plan of its product; its options are re-snapshotted, its
//! use kept, its end kept unless the new plan is longer (`domain::plan_change`). Served by the
//! `manage` function with the other lifecycle moves (see [`super::manage`]): one read, one
//! transaction (the update conditioned on the trial as read, the answer, `trial.plan_changed`,
//! the reminder cursor re-armed for the new plan's reminders).
//!
//! The body is checked before anything runs (not stored under the key: it would be refused
//! again): a field other than these two is 400 `invalid_field`; `plan` missing, not a string,
//! or not a trialable plan of the catalog is 400 `invalid_plan` (listing them); `force` not a
//! boolean is 400 `invalid_field`. **`force: true` is for admin keys**: a standard key sending it
//! is 403 `forbidden` (a refusal of who asks, like the admin routes', not of the body's shape).
use lambda_http::Request;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::manage::{run, Move};
use super::reply::Reply;
use super::request::typed_body;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::ErrorCode;
use crate::App;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePlanFields {
    plan: Option<Value>,
    force: Option<Value>,
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let body: ChangePlanFields = typed_body(req, |f| {
        ApiError::new(ErrorCode::InvalidField, f.to_owned())
    })?;
    let catalog = &app.config.catalog;
    let to = body
        .plan
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|plan| catalog.get_trialable(plan))
        .ok_or_else(|| ApiError::invalid_plan(catalog))?;
    let force = match body.force {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "force: expected true or false",
            ))
        }
    };
    if force && !tenant.admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Only an admin API key may force a plan change",
        ));
    }
    let mv = Move::ChangePlan {
        to: Box::new(to.snapshot()),
        force,
        pending_max_age: app.config.pending_payment_max_age_secs,
    };
    run(app, req, tenant, log, mv).await
}
