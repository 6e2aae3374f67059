//! `GET /v1/trials/{id}/data`: Gcore's "trial data" for the org's trial, with Gcore's names and
//! JSON types (ids stay our strings). Reads only: the API key (unless cached) and the trial.
use lambda_http::Request;

use super::error::ApiError;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::logged_trial_id;
use super::LogFields;
use crate::auth::Tenant;
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = logged_trial_id(req, log)?;
    let trial = load_owned(app, &id, tenant).await?;
    // As the status reads it: a pause past its maximum reads as resumed before the job runs.
    let (now, policy, terms) = (
        app.now(),
        trial.policy(),
        app.config.lifecycle_terms(&trial),
    );
    let trial = trial.settled_at(now, policy, &terms);
    // No applicant company name nor skip flag is stored on trials yet: null and false.
    Ok(Reply::json(200, &trial.data_view(now, None, false)))
}
