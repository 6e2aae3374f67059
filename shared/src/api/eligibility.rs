//! `GET /v1/trials/eligibility?plan=<id>[&product=<id>]`: whether the org may start a trial of
//! `plan` now (one trial per org and product: the plan's product's guard and refusal are read),
//! `{eligible, reason, trial_days}`, so a client can hide the offer instead of meeting a 409
//! or 403. One consistent `BatchGetItem` after authentication (the org guard, the last refusal,
//! the operator's allowance); none for a plan the catalog does not offer for trial.
//!
//! `reason`: `plan_not_trialable` (the catalog has the plan but not for trial: no read),
//! `trial_already_used` (the org guard exists), `signal_reused` (the org's last start was
//! refused for a reused signal and no operator allowance is waiting), or null. The applicant's
//! own signals are not checked here: they would have to travel in a query string (and so into
//! access logs), and the start decides anyway. `blocked` is reserved for operator blocks.
//! `trial_days` is the plan's trial length from the catalog, in whole days rounded up (0 for a
//! plan that is not trialable). A plan the catalog does not have is 400 `invalid_plan`; a
//! `product` it does not have, 400 `invalid_product`; a plan of another product than `product`,
//! 400 `invalid_plan`.
use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::reply::Reply;
use super::request::query_param;
use super::start::product_named;
use super::LogFields;
use crate::auth::Tenant;
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    _log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let catalog = &app.config.catalog;
    // Without `product`, any plan (of its own product); with it, that product's plans only.
    let product = match query_param(req, "product") {
        Some(id) => Some(product_named(app, Some(&id))?),
        None => None,
    };
    let plan = query_param(req, "plan")
        .as_deref()
        .and_then(|id| catalog.get(id))
        .filter(|plan| product.is_none_or(|p| plan.product == *p))
        .ok_or_else(|| ApiError::invalid_plan(catalog))?;
    let (reason, trial_days) = if plan.trialable {
        let key = catalog.product_key(&plan.product.id);
        let standing = app.store.org_standing(&tenant.org, &key).await?;
        let reason = if standing.guard.is_some() {
            Some("trial_already_used".to_owned())
        } else if standing.allowed {
            None
        } else {
            standing.refusal.map(|r| r.reason)
        };
        (reason, plan.snapshot().days_limit())
    } else {
        (Some("plan_not_trialable".to_owned()), 0)
    };
    Ok(Reply::json(
        200,
        &json!({
            "eligible": reason.is_none(),
            "reason": reason.map_or(Value::Null, Value::String),
            "trial_days": trial_days,
        }),
    ))
}
