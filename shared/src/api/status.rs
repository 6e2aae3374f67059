//! `GET /v1/trials/{id}`: the trial as of now (an ACTIVE trial past `expires_at` reads EXPIRED
//! before the expire job has run).
use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::request::trial_id;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::{TransitionError, Trial, TrialId};
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let trial = load_owned(app, &id, tenant).await?;
    Ok(Reply::json(
        200,
        &trial.view_at(app.now(), app.config.policy),
    ))
}

/// The trial `id` if it belongs to the caller's org. Another org's trial is indistinguishable
/// from none; a trial of the caller's org that was purged is `trial_expired` (410).
pub async fn load_owned(app: &App, id: &TrialId, tenant: &Tenant) -> Result<Trial, ApiError> {
    match app.store.get_trial(id).await? {
        Some(trial) if trial.org_id == tenant.org => Ok(trial),
        Some(_) => Err(ApiError::trial_not_found()),
        None => Err(purged_or_not_found(app, id, tenant).await),
    }
}

/// Only the org guard remembers a purged trial; it is read on this miss path alone.
pub async fn purged_or_not_found(app: &App, id: &TrialId, tenant: &Tenant) -> ApiError {
    match app.store.get_guard(&tenant.org).await {
        Ok(Some(guard)) if guard.purged && guard.trial_id.as_ref() == Some(id) => {
            TransitionError::Expired.into()
        }
        Ok(_) => ApiError::trial_not_found(),
        Err(e) => e.into(),
    }
}
