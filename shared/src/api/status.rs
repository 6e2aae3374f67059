//! `GET /v1/trials/{id}`: the trial as of now (an ACTIVE trial past `expires_at` reads EXPIRED
//! before the expire job has run).
//!
//! One DynamoDB round trip, warm or cold: with the API key's verdict cached, one `GetItem` of
//! the trial; without it, one consistent `BatchGetItem` of the key record and the trial (the
//! trial is ignored, unread by anyone, when the key fails).
use lambda_http::Request;

use super::error::ApiError;
use super::owned::owned;
use super::reply::Reply;
use super::request::trial_id;
use super::LogFields;
use crate::auth::{self, KeyCheck, Tenant};
use crate::domain::TrialId;
use crate::App;

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let keys = app.auth();
    let (tenant, found) = match keys.check(req)? {
        KeyCheck::Known(info) => {
            let tenant = auth::tenant(req, Some(info))?;
            log.tenant(&tenant);
            let id = trial_id(req)?;
            log.trial_id = Some(id.to_string());
            let found = app.store.get_trial(&id).await?;
            (tenant, (id, found))
        }
        KeyCheck::NeedsRecord(key) => match trial_id(req) {
            Ok(id) => {
                let (record, found) = app.store.get_api_key_and_trial(key.key_id(), &id).await?;
                let tenant = auth::tenant(req, keys.decide(&key, record))?;
                log.tenant(&tenant);
                log.trial_id = Some(id.to_string());
                (tenant, (id, found))
            }
            // An id we could not have issued: authenticate first (401 before 404).
            Err(not_found) => {
                let record = app.store.get_api_key(key.key_id()).await?;
                let tenant = auth::tenant(req, keys.decide(&key, record))?;
                log.tenant(&tenant);
                return Err(not_found);
            }
        },
    };
    let (id, found) = found;
    answer(app, &tenant, &id, found).await
}

/// `GET /v1/me/trials/{id}` for a caller already authenticated (an end user's JWT): one read.
pub async fn for_tenant(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = super::request::logged_trial_id(req, log)?;
    let found = app.store.get_trial(&id).await?;
    answer(app, tenant, &id, found).await
}

/// The trial as of now, if it is the tenant's.
async fn answer(
    app: &App,
    tenant: &Tenant,
    id: &TrialId,
    found: Option<crate::domain::Trial>,
) -> Result<Reply, ApiError> {
    let trial = owned(app, id, tenant, found).await?;
    let (now, policy) = (app.now(), trial.policy());
    // A pause past its maximum reads as resumed before the job has written it.
    let terms = app.config.lifecycle_terms(&trial);
    let trial = trial.settled_at(now, policy, &terms);
    Ok(Reply::json(
        200,
        &trial.view_at(now, policy, tenant.privilege()),
    ))
}
