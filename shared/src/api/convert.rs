//! `POST /v1/trials/{id}/convert`: a Stripe Checkout URL for a trial that may still convert
//! (ACTIVE, or EXPIRED within the grace period). The trial becomes CONVERTED when Stripe's
//! webhook says the checkout completed.
//!
//! Calling Stripe is a side effect outside the table, so the request first takes a lease on its
//! idempotency key (never two executions at once), and Stripe gets an `Idempotency-Key` derived
//! from ours with parameters that are a pure function of the trial and the request: a retry
//! after a crash between Stripe's answer and our write gets Stripe's same session, not a second
//! one. An open session stored on the trial is answered without calling Stripe at all, and so
//! is a session whose (delayed) payment is on its way: a trial never has two sessions a
//! customer could pay.
//!
//! **When billing starts** (optional body `{"billing_starts": "trial_end" | "now"}`, default
//! `trial_end`; `plan`, if sent and not the trial's, changes the trial's plan first, as
//! `change-plan` would (see [`change_before_convert`]); any other field is 400 `invalid_field`,
//! naming it): with `trial_end` the session
//! carries `subscription_data[trial_end]` = the trial's end ([`Trial::billing_end`]: a PAUSED
//! trial's remaining time counted from the call), so a customer converting early keeps the free days promised, if that
//! is at least 48 hours (Stripe's minimum) plus [`TRIAL_END_MARGIN_SECS`] ahead when the call is
//! made; closer to the end, or with `now`, billing starts when the customer pays. The one input
//! that moves is the clock, and it only moves one way: a retry of a request first sent before
//! the 48-hour line and retried after it asks Stripe with the same key but without the trial
//! end, Stripe answers `idempotency_error` (other parameters), and the request is sent once
//! more with the trial end, which Stripe answers with the session it saved for the first
//! attempt. So a retry never opens a second session, whichever side of the line it lands on.
//!
//! Cost: at most 3 DynamoDB round trips (lease, read, one transaction) and one Stripe call (two
//! in the retry across the 48-hour line).
use std::time::Duration;

use aws_sdk_dynamodb::types::Put;
use lambda_http::Request;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::idempotency::{Idempotency, Lease};
use super::owned::{load_owned, purged_or_not_found};
use super::reply::Reply;
use super::request::typed;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::plan_change::change_plan;
use crate::domain::time::rfc3339;
use crate::domain::trial::{Checkout, PendingPayment};
use crate::domain::{ErrorCode, Trial, TrialId};
use crate::services::checkout_sessions::{
    create_checkout, stripe_budget, BillingStarts, SessionRequest,
};
use crate::services::transition::{commit, retry_on_moved, Attempt, Rejected};
use crate::store::{Slot, StoreError};
use crate::App;

pub use crate::services::checkout_sessions::{TRIAL_END_MARGIN_SECS, TRIAL_END_MIN_LEAD_SECS};

/// The request's optional body as sent: `{"billing_starts": "trial_end" | "now", "plan": id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertFields {
    /// `Some(None)` is an explicit `null`, refused like any other value but the two.
    #[serde(default, deserialize_with = "present")]
    billing_starts: Option<Option<BillingWire>>,
    #[serde(default)]
    plan: Option<Value>,
}

/// What a convert's body asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertBody {
    pub billing: BillingStarts,
    /// The plan the caller buys, if named: another than the trial's is changed to first.
    pub plan: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BillingWire {
    TrialEnd,
    Now,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<BillingWire>>, D::Error> {
    Option::<BillingWire>::deserialize(d).map(Some)
}

/// The request's optional body: none (or blank), or a JSON object whose `billing_starts` is
/// absent, `"trial_end"` or `"now"`. Any other field is 400 `invalid_field`.
pub fn billing_from_body(body: &[u8]) -> Result<BillingStarts, ApiError> {
    convert_body(body).map(|b| b.billing)
}

/// The request's optional body: [`billing_from_body`]'s rules, and `plan`, if present, a string
/// (400 `invalid_plan` otherwise).
pub fn convert_body(body: &[u8]) -> Result<ConvertBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConvertBody {
            billing: BillingStarts::TrialEnd,
            plan: None,
        });
    }
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ApiError::invalid_json("expected an object")),
        Err(e) => return Err(ApiError::invalid_json(e)),
    };
    let fields: ConvertFields = typed(object, |_| invalid_billing_starts())?;
    let billing = match fields.billing_starts {
        None | Some(Some(BillingWire::TrialEnd)) => BillingStarts::TrialEnd,
        Some(Some(BillingWire::Now)) => BillingStarts::Now,
        Some(None) => return Err(invalid_billing_starts()),
    };
    let plan = match fields.plan {
        None => None,
        Some(Value::String(plan)) => Some(plan),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidPlan,
                "plan must be the trial's plan id, as a string",
            ))
        }
    };
    Ok(ConvertBody { billing, plan })
}

/// A convert naming another plan than the trial's: **change, then convert**. The plan change
/// (`domain::plan_change`, never forced: a standard key converts) is written first, with
/// `trial.plan_changed`, under the convert's lease (no idempotency record of its own: the
/// convert's answer completes the key); the convert then runs on the trial as changed. A new
/// plan that could not be bought is refused before anything changes (409
/// `plan_not_purchasable`). If Stripe then fails, the change stays and the retry, finding the
/// trial on the plan it names, converts it.
async fn change_before_convert(
    app: &App,
    request: &ConvertRequest<'_>,
    trial: Trial,
    plan: &str,
    now: i64,
) -> Result<Trial, ApiError> {
    let catalog = &app.config.catalog;
    let to = catalog
        .get_trialable(plan)
        .ok_or_else(|| ApiError::invalid_plan(catalog))?;
    if to.stripe_price.is_none() {
        return Err(ApiError::not_purchasable(to.id.as_str()));
    }
    let (to, id) = (to.snapshot(), trial.id.clone());
    let tenant = request.tenant;
    let store = &app.store;
    let attempt = retry_on_moved(&tenant.org, trial, 3, |stored| {
        let max_age = app.config.pending_payment_max_age_secs;
        let after = change_plan(stored, &to, false, now, max_age)
            .map_err(|refusal| ApiError::new(refusal.code(), refusal.message()))?;
        let terms = app.config.lifecycle_terms(&after);
        let update = store.plan_change_update(stored, &after, false, now, &terms)?;
        let extra = json!({ "project_id": tenant.project.as_str() });
        let event = DomainEvent::plan_changed(stored, &after, now, false, &tenant.key_id, extra);
        let rearm = store.reminder_rearm(&after, now, &terms, after.policy())?;
        let tx = store.tx().update(Slot::Trial, update).event(&event, now)?;
        Ok::<_, ApiError>((tx.reminder(rearm), after))
    })
    .await?;
    match attempt {
        Attempt::Committed(after) => Ok(after),
        Attempt::Refused(err) => Err(err),
        Attempt::Gone | Attempt::Conflict(_) => Err(purged_or_not_found(app, &id, tenant).await),
        Attempt::Other(_) | Attempt::Exhausted(_) => {
            Err(StoreError::Unavailable("the plan change kept racing other writes".into()).into())
        }
    }
}

fn invalid_billing_starts() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidBillingStarts,
        "billing_starts must be \"trial_end\" or \"now\"",
    )
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let (id, idempotency) = Idempotency::for_trial(req, tenant, log, "/convert")?;
    // A body refused here would be refused again: nothing is stored under the key.
    let body = convert_body(req.body().as_ref())?;
    // A plan the catalog does not have would be refused again: before the lease too.
    if let Some(plan) = body.plan.as_deref() {
        app.config
            .catalog
            .get(plan)
            .ok_or_else(|| ApiError::invalid_plan(&app.config.catalog))?;
    }
    let now_ms = app.clock.now_millis();
    let leased = ConvertRequest::lease(app, req, &idempotency, tenant, body.billing, now_ms);
    match leased.await? {
        Ok(request) => {
            let request = ConvertRequest {
                plan: body.plan,
                ..request
            };
            convert_leased(app, &request, &id, now_ms).await
        }
        Err(held) => Ok(held),
    }
}

/// What one convert request brings, once its lease is held (skip's too: it converts the
/// trial it wrote).
pub(super) struct ConvertRequest<'a> {
    pub(super) idempotency: &'a Idempotency,
    /// The lease on the idempotency key.
    pub(super) lease: Lease,
    pub(super) tenant: &'a Tenant,
    pub(super) billing: BillingStarts,
    /// The plan the body named, if any (checked against the trial's).
    pub(super) plan: Option<String>,
}

/// Converts trial `id` under the request's lease, Stripe's call cut short before the
/// invocation's deadline: the answer, or the refusal stored under the key (4xx) or the lease
/// released (5xx, so the retry runs).
pub(super) async fn convert_leased(
    app: &App,
    request: &ConvertRequest<'_>,
    id: &TrialId,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let budget = stripe_budget(app.stripe.timeout(), request.lease.deadline_ms, now_ms);
    match convert(app, request, id, now_ms, budget).await {
        Ok(reply) => Ok(reply),
        Err(err) => request.refuse(app, err, now_ms).await,
    }
}

impl<'a> ConvertRequest<'a> {
    /// Takes the lease on the request's key (see [`Idempotency::lease`]); `Err(reply)` answers
    /// for a key someone already holds.
    pub(super) async fn lease(
        app: &App,
        req: &Request,
        idempotency: &'a Idempotency,
        tenant: &'a Tenant,
        billing: BillingStarts,
        now_ms: i64,
    ) -> Result<Result<ConvertRequest<'a>, Reply>, ApiError> {
        Ok(idempotency
            .lease(app, req, now_ms)
            .await?
            .map(|lease| ConvertRequest {
                idempotency,
                lease,
                tenant,
                billing,
                plan: None,
            }))
    }

    /// The completed record of `reply` under the lease this request holds.
    fn completed(&self, app: &App, reply: &Reply, now_ms: i64) -> Result<Put, StoreError> {
        let idempotency = self.idempotency;
        app.store.idempotency_put_owned(
            &idempotency.scope,
            &self.lease.token,
            &idempotency.fingerprint,
            &reply.stored(),
            now_ms,
            app.config.idempotency_ttl_secs,
        )
    }

    /// Ends the leased request with a refusal (see [`Idempotency::refuse_leased`]).
    pub(super) async fn refuse(
        &self,
        app: &App,
        err: ApiError,
        now_ms: i64,
    ) -> Result<Reply, ApiError> {
        let token = &self.lease.token;
        self.idempotency
            .refuse_leased(app, token, err, now_ms)
            .await
    }
}

async fn convert(
    app: &App,
    request: &ConvertRequest<'_>,
    id: &TrialId,
    now_ms: i64,
    budget: Duration,
) -> Result<Reply, ApiError> {
    let now = now_ms.div_euclid(1000);
    let mut trial = load_owned(app, id, request.tenant).await?;
    if let Some(plan) = request
        .plan
        .as_deref()
        .filter(|p| *p != trial.trialled_plan().as_str())
    {
        trial = change_before_convert(app, request, trial, plan, now).await?;
    }
    let max_age = app.config.pending_payment_max_age_secs;
    if let Some(reply) = pending_reply(&trial, now, max_age) {
        return answer(app, request, reply, now_ms).await;
    }
    trial.lifecycle(trial.policy()).check_convert(now)?;
    if let Some(open) = trial.open_checkout(now) {
        let reply = checkout_reply(&trial, open, now);
        return answer(app, request, reply, now_ms).await;
    }
    let session = SessionRequest {
        scope: &request.idempotency.scope,
        billing: request.billing,
    };
    let checkout = create_checkout(app, &trial, &session, now, budget).await?;
    record(app, request, &trial, &checkout).await
}

/// Writes the new session on the trial, with the answer and `trial.checkout_created`, and
/// answers it; or, if the trial moved on meanwhile, answers for the trial as it is now.
async fn record(
    app: &App,
    request: &ConvertRequest<'_>,
    trial: &Trial,
    checkout: &Checkout,
) -> Result<Reply, ApiError> {
    // Stripe may have taken seconds: the write is judged at the time it is made (a session
    // recorded after grace ended would hold back a purge that already decided).
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let reply = checkout_reply(trial, checkout, now);
    let event = DomainEvent::for_trial(
        EventKind::CheckoutCreated,
        trial,
        now,
        Some(&checkout.session_id),
        json!({
            "checkout_session_id": checkout.session_id,
            "checkout_expires_at": rfc3339(checkout.expires_at),
            "billing_starts": BillingStarts::of(checkout).as_str(),
            "trial_end": checkout.trial_end.map(rfc3339),
        }),
    );
    let store = &app.store;
    let update = store.checkout_update(trial, checkout, now, trial.policy())?;
    let tx = store
        .tx()
        .by(&request.tenant.key_id)
        .update(Slot::Trial, update)
        .put(Slot::Idempotency, request.completed(app, &reply, now_ms)?)
        .event(&event, now)?;
    let current = match commit(tx).await? {
        Ok(()) => return Ok(reply),
        // Our lease ran out and a retry took the key over: its answer is the one that counts.
        Err(Rejected::Conflict(old)) => {
            return request.idempotency.answer_conflict(app, old.as_ref()).await
        }
        Err(Rejected::Moved(current)) => *current,
        // Purged meanwhile, or never the org's.
        Err(Rejected::Gone | Rejected::Other(_)) => {
            return Err(purged_or_not_found(app, &trial.id, request.tenant).await)
        }
    };
    raced(app, request, trial, current, now_ms).await
}

/// The answer when the trial was `current` instead of `trial` at the write.
async fn raced(
    app: &App,
    request: &ConvertRequest<'_>,
    trial: &Trial,
    current: Trial,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let now = now_ms.div_euclid(1000);
    let convertible = current.lifecycle(trial.policy()).check_convert(now);
    // A payment started on the trial's session meanwhile: that one is the answer (ours was
    // never shown to anyone and expires unused).
    if let Some(pending) = pending_reply(&current, now, app.config.pending_payment_max_age_secs) {
        return answer(app, request, pending, now_ms).await;
    }
    match (convertible, current.open_checkout(now)) {
        // A convert with another key stored its open session first: a trial has one session
        // at a time, so answer with that one.
        (Ok(()), Some(open)) => {
            let reply = checkout_reply(&current, open, now);
            answer(app, request, reply, now_ms).await
        }
        (Ok(()), None) => Err(ApiError::trial_not_found()),
        // The trial moved on (converted, canceled, past grace) since it was read.
        (Err(e), _) => Err(e.into()),
    }
}

/// The answer for `checkout`, given at `now`: its page, when billing starts (the trial's end,
/// or `now`: the customer is charged when they pay) and until when the page can be paid.
fn checkout_reply(trial: &Trial, checkout: &Checkout, now: i64) -> Reply {
    Reply::json(
        200,
        &json!({
            "checkout_url": checkout.url,
            "trial_id": trial.id.as_str(),
            "plan": trial.trialled_plan().as_str(),
            "billing_starts": BillingStarts::of(checkout).as_str(),
            "first_charge_at": rfc3339(checkout.trial_end.unwrap_or(now)),
            "checkout_expires_at": rfc3339(checkout.expires_at),
            "payment_pending": false,
        }),
    )
}

/// The answer while a payment is on its way (`trial.pending`, younger than
/// `PENDING_PAYMENT_MAX_AGE`; never for a CONVERTED trial): that session, flagged
/// `payment_pending`, instead of a new one. Past that age the payment is presumed lost and
/// convert opens a new session. The session's page and
/// billing come from the checkout stored with it; for a pending session the trial does not
/// hold as its checkout (it never happens through convert), they are `null`.
fn pending_reply(trial: &Trial, now: i64, max_age_secs: i64) -> Option<Reply> {
    let pending: &PendingPayment = trial.pending_at(now, max_age_secs)?;
    let checkout = trial
        .checkout
        .as_ref()
        .filter(|c| c.session_id == pending.session_id);
    Some(Reply::json(
        200,
        &json!({
            "checkout_url": checkout.map(|c| c.url.as_str()),
            "trial_id": trial.id.as_str(),
            "plan": trial.trialled_plan().as_str(),
            "billing_starts": checkout.map(|c| BillingStarts::of(c).as_str()),
            // Billing now: the debit started when the customer completed the checkout.
            "first_charge_at": checkout.map(|c| rfc3339(c.trial_end.unwrap_or(pending.since))),
            "checkout_expires_at": checkout.map(|c| rfc3339(c.expires_at)),
            "payment_pending": true,
        }),
    ))
}

/// Answers with a session already stored on the trial: only the idempotency record to write.
async fn answer(
    app: &App,
    request: &ConvertRequest<'_>,
    reply: Reply,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let completed = request.completed(app, &reply, now_ms)?;
    app.store.idempotency_complete(completed).await?;
    Ok(reply)
}

/// Stripe's key for our request: the same for every retry of it, different for any other.
pub fn stripe_idempotency_key(idempotency: &Idempotency, trial: &TrialId) -> String {
    crate::services::checkout_sessions::stripe_idempotency_key(&idempotency.scope, trial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_optional_and_billing_starts_is_checked() {
        for (body, expected) in [
            ("", BillingStarts::TrialEnd),
            ("  \n", BillingStarts::TrialEnd),
            ("{}", BillingStarts::TrialEnd),
            (r#"{"billing_starts":"trial_end"}"#, BillingStarts::TrialEnd),
            (r#"{"billing_starts":"now"}"#, BillingStarts::Now),
        ] {
            assert_eq!(billing_from_body(body.as_bytes()), Ok(expected), "{body}");
        }
        for body in [
            r#"{"billing_starts":"later"}"#,
            r#"{"billing_starts":"NOW"}"#,
            r#"{"billing_starts":null}"#,
            r#"{"billing_starts":1}"#,
        ] {
            let err = billing_from_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidBillingStarts, "{body}");
            assert_eq!(err.status(), 400);
        }
        for body in ["[]", "nope", r#""now""#] {
            let err = billing_from_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidJson, "{body}");
        }
        // Any other field is refused by name (it used to be ignored).
        let err = billing_from_body(br#"{"billing_starts":"now","note":"x"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidField);
        assert!(err.message.contains("`note`"), "{}", err.message);
    }
}
