//! `POST /v1/trials/skip` `{plan}`: an org that wants to buy at once skips its free trial. Its
//! one trial is used up (a later start is 409 `trial_already_exists`) by a zero-length trial
//! marked `is_trial_skipped`, and the answer is convert's: a Stripe Checkout URL, billing from
//! now (the session has no trial period). The webhook converts it as any other trial, the
//! session's metadata binding (trial, org, plan) included.
//!
//! Idempotent: the request holds a lease on its key as convert does; the trial and the org
//! guard are written in one transaction with `trial.started` (`is_trial_skipped: true`), and a
//! retry (or another skip) that finds the org's skipped trial already there goes on to its
//! checkout instead of answering 409, if the key may act on that trial's project (another
//! project's skipped trial is 409, not named: see [`super::start::already_used`]). Then convert's own path (open session reused, Stripe's
//! idempotency key, the session stored on the trial) does the rest.
//!
//! **Plans and prices** come from the catalog as for start and convert: a plan the catalog
//! does not offer for trial is 400 `invalid_plan`; one without a Stripe price is 409
//! `plan_not_purchasable`, answered before anything is written (the org keeps its trial). The
//! skipped trial snapshots the plan's terms like any start, and its `trial.started` counts as
//! started in the funnel counters (its expiry, conversion and purge count like any other
//! trial's).
use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::convert::{convert_leased, ConvertRequest};
use super::error::ApiError;
use super::idempotency::Idempotency;
use super::reply::Reply;
use super::request::typed_body;
use super::start::{
    already_used, new_trial, product_named, product_of, trialable_plan, used_guard,
};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::TrialTerms;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::TrialId;
use crate::services::checkout_sessions::BillingStarts;
use crate::services::transition::Rejected;
use crate::store::{Outcome, Slot};
use crate::App;

pub const PATH: &str = "/v1/trials/skip";

/// The body: `{"plan": "<plan id>"}`, and optionally the plan's `product` (one trial per org
/// and product: skipping uses up that product's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipBody {
    plan: Option<String>,
    product: Option<String>,
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let idempotency = Idempotency::from_request(req, tenant, PATH)?;
    let body: SkipBody = typed_body(req, |_| ApiError::invalid_plan(&app.config.catalog))?;
    let plan = trialable_plan(app, body.plan.as_deref())?;
    if let Some(product) = body.product.as_deref() {
        if product_named(app, Some(product))? != &plan.product {
            return Err(ApiError::invalid_plan(&app.config.catalog));
        }
    }
    if plan.stripe_price.is_none() {
        // Convert's own answer for such a plan, before the org's trial is used up.
        return Err(ApiError::not_purchasable(plan.id.as_str()));
    }
    // No free days, so no free plan after them: a reverse plan's skip ends (and is purged) like
    // any other skip whose checkout is abandoned, it never downgrades.
    let terms = TrialTerms {
        downgrade_to: None,
        ..plan.snapshot()
    };
    let now_ms = app.clock.now_millis();
    // No free days: the session has no trial period, billing starts at payment.
    let billing = BillingStarts::Now;
    let request =
        match ConvertRequest::lease(app, req, &idempotency, tenant, billing, now_ms).await? {
            Ok(request) => request,
            Err(held) => return Ok(held),
        };
    let id = match skipped_trial(app, tenant, terms, now_ms).await {
        Ok(id) => id,
        Err(err) => return request.refuse(app, err, now_ms).await,
    };
    log.trial_id = Some(id.to_string());
    convert_leased(app, &request, &id, now_ms).await
}

/// The org's skipped trial of `plan`: written now (with the guard and `trial.started`), or the
/// one an earlier skip wrote. Any other trial of the org is 409 `trial_already_exists`.
async fn skipped_trial(
    app: &App,
    tenant: &Tenant,
    terms: TrialTerms,
    now_ms: i64,
) -> Result<TrialId, ApiError> {
    let now = now_ms.div_euclid(1000);
    let mut trial = new_trial(tenant, now, terms).ending_at(now);
    trial.is_trial_skipped = true;
    let policy = trial.policy();
    let event = DomainEvent::for_trial(
        EventKind::Started,
        &trial,
        now,
        None,
        json!({
            "project_id": tenant.project.as_str(),
            "expires_at": rfc3339(trial.expires_at),
            "is_trial_skipped": true,
        }),
    );
    let store = &app.store;
    let outcome = store
        .tx()
        .by(&tenant.key_id)
        .put(
            Slot::OrgGuard,
            store.guard_put(&trial, &product_of(app, &trial))?,
        )
        .put(Slot::Trial, store.trial_put(&trial, policy)?)
        .put(Slot::TrialNumber, store.trial_number_put(&trial)?)
        .event(&event, now)?
        .commit()
        .await?;
    let rejection = match outcome {
        Outcome::Committed => return Ok(trial.id),
        Outcome::Rejected(rejection) => rejection,
    };
    if !rejection.failed(Slot::OrgGuard) {
        return Err(Rejected::unavailable("skip", &rejection).into());
    }
    let used = used_guard(&rejection);
    if let Some(id) = used.as_ref().and_then(|guard| guard.trial_id.as_ref()) {
        if let Some(existing) = store.get_trial(id).await? {
            // Only a trial the key may act on: another project's skipped trial is that
            // project's checkout, not this key's (convert would answer 404 for it).
            if existing.is_trial_skipped
                && existing.org_id == tenant.org
                && existing.plan == trial.plan
                && tenant.may_act_on(existing.project_id.as_ref())
            {
                return Ok(existing.id);
            }
        }
    }
    Err(already_used(tenant, used.as_ref()))
}
