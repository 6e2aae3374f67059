//! `GET /v1/trials/current[?product=<id>]`: the org's trial of `product` (the catalog's default
//! product when none is named), for a client that lost its id (the same body as
//! `GET /v1/trials/{id}`). 404 `trial_not_found` when the org never had one, 410
//! `trial_expired` when it was purged; 400 `invalid_product` for a product the catalog does not
//! have.
//!
//! Two consistent reads after authentication: the org's guard of the product (which names the
//! org's one trial of it, and survives purge), then the trial. The guard cannot be skipped: the
//! trial's key is its id.
use lambda_http::Request;

use super::error::ApiError;
use super::owned::owned;
use super::reply::Reply;
use super::request::query_param;
use super::start::product_named;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::ProductKey;
use crate::domain::{TransitionError, Trial};
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let product = product_named(app, query_param(req, "product").as_deref())?;
    let key = app.config.catalog.product_key(&product.id);
    let trial = current_trial(app, tenant, &key, log).await?;
    Ok(Reply::json(
        200,
        &trial.view_at(app.now(), trial.policy(), tenant.privilege()),
    ))
}

/// The org's trial of `product`, if the key may read it: 404 `trial_not_found` when the org
/// never had one (or it is another project's, for a key limited to projects), 410
/// `trial_expired` when it was purged. Also what Gcore's `start-trial-data` reads.
pub(super) async fn current_trial(
    app: &App,
    tenant: &Tenant,
    product: &ProductKey,
    log: &mut LogFields,
) -> Result<Trial, ApiError> {
    let guard = app.store.get_product_guard(&tenant.org, product).await?;
    let Some((id, guard)) = guard.and_then(|g| Some((g.trial_id.clone()?, g))) else {
        return Err(ApiError::trial_not_found());
    };
    // A key limited to projects sees only its projects' trial, purged or not (as by id).
    if !tenant.may_act_on(guard.project_id.as_ref()) {
        return Err(ApiError::trial_not_found());
    }
    log.trial_id = Some(id.to_string());
    if guard.purged {
        return Err(TransitionError::Expired.into());
    }
    let found = app.store.get_trial(&id).await?;
    // Missing now: purged between the two reads (the guard is marked after the delete).
    owned(app, &id, tenant, found).await
}
