//! `GET /v1/trials/{id}/data`: Gcore's "trial data" for the org's trial, with Gcore's names and
//! JSON types (ids stay our strings; `api::gcore` serves the same data with Gcore's integer ids).
//! Reads only: the API key (unless cached) and the trial.
use lambda_http::Request;
use serde_json::Value;

use super::error::ApiError;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::logged_trial_id;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::Trial;
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = logged_trial_id(req, log)?;
    let trial = load_owned(app, &id, tenant).await?;
    Ok(Reply::json(200, &data(app, trial)))
}

/// The trial's data as of now: settled as the status reads it (a pause past its maximum reads
/// as resumed before the job runs), with the applicant's company name and the skip flag.
pub(super) fn data(app: &App, trial: Trial) -> Value {
    let (now, policy, terms) = (
        app.now(),
        trial.policy(),
        app.config.lifecycle_terms(&trial),
    );
    let trial = trial.settled_at(now, policy, &terms);
    let company = trial
        .applicant
        .as_ref()
        .and_then(|a| a.company_name.as_deref());
    trial.data_view(now, company, trial.is_trial_skipped)
}
