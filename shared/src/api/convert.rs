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
//! `trial_end`): with `trial_end` the session carries `subscription_data[trial_end]` = the
//! trial's `expires_at`, so a customer converting early keeps the free days promised, if that
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

use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::idempotency::{lease_until, Idempotency};
use super::owned::{load_owned, purged_or_not_found};
use super::reply::Reply;
use super::request::{deadline_ms, trial_id};
use super::LogFields;
use crate::auth::Tenant;
use crate::crypto;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::trial::{Checkout, PendingPayment};
use crate::domain::{ErrorCode, Trial, TrialId, TrialStatus};
use crate::store::idempotency::Claim;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Slot};
use crate::stripe::client::{NewCheckoutSession, StripeError};
use crate::App;

/// Stripe's minimum lead of `subscription_data[trial_end]` over the time of the call.
pub const TRIAL_END_MIN_LEAD_SECS: i64 = 48 * 3_600;
/// Kept on top of Stripe's minimum: Stripe checks against its own clock when the request
/// arrives, a little after ours was read.
pub const TRIAL_END_MARGIN_SECS: i64 = 600;

/// When the subscription's first charge happens, as the caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingStarts {
    /// At the trial's end, if Stripe allows it (see the module docs); else as `Now`.
    TrialEnd,
    /// When the customer pays.
    Now,
}

impl BillingStarts {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingStarts::TrialEnd => "trial_end",
            BillingStarts::Now => "now",
        }
    }

    /// From the request's optional body: none (or blank), or a JSON object whose
    /// `billing_starts` is absent, `"trial_end"` or `"now"`. Other fields are ignored.
    pub fn from_body(body: &[u8]) -> Result<BillingStarts, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(BillingStarts::TrialEnd);
        }
        let object = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ApiError::invalid_json("expected an object")),
            Err(e) => return Err(ApiError::invalid_json(e)),
        };
        match object.get("billing_starts") {
            None => Ok(BillingStarts::TrialEnd),
            Some(Value::String(v)) if v == "trial_end" => Ok(BillingStarts::TrialEnd),
            Some(Value::String(v)) if v == "now" => Ok(BillingStarts::Now),
            Some(_) => Err(ApiError::new(
                ErrorCode::InvalidBillingStarts,
                "billing_starts must be \"trial_end\" or \"now\"",
            )),
        }
    }
}

/// The `subscription_data[trial_end]` a convert asked at `now` sends: the trial's end when
/// billing is to start there and Stripe accepts it, else none (billing starts at payment).
pub fn trial_end_for(expires_at: i64, billing: BillingStarts, now: i64) -> Option<i64> {
    let far_enough = expires_at - now >= TRIAL_END_MIN_LEAD_SECS + TRIAL_END_MARGIN_SECS;
    (billing == BillingStarts::TrialEnd && far_enough).then_some(expires_at)
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency = Idempotency::from_request(req, tenant, &format!("/v1/trials/{id}/convert"))?;
    // A body refused here would be refused again: nothing is stored under the key.
    let billing = BillingStarts::from_body(req.body().as_ref())?;
    let now_ms = app.clock.now_millis();
    let token = crypto::random_hex(16);
    let deadline = deadline_ms(req, now_ms);
    let lease = lease_until(deadline, now_ms, app.config.idempotency_lease_secs);
    let claim = app
        .store
        .idempotency_acquire(
            &idempotency.scope,
            &idempotency.fingerprint,
            &token,
            lease,
            now_ms,
            app.config.idempotency_ttl_secs,
        )
        .await?;
    if let Claim::Held(existing) = claim {
        return Ok(idempotency.answer(existing));
    }
    let budget = stripe_budget(app.stripe.timeout(), deadline, now_ms);
    let request = ConvertRequest {
        idempotency: &idempotency,
        token: &token,
        tenant,
        billing,
    };
    match convert(app, &request, &id, now_ms, budget).await {
        Ok(reply) => Ok(reply),
        Err(err) => idempotency.refuse_leased(app, &token, err, now_ms).await,
    }
}

/// What one convert request brings, once its lease is held (skip's too: it converts the
/// trial it wrote).
pub(super) struct ConvertRequest<'a> {
    pub(super) idempotency: &'a Idempotency,
    /// The lease on the idempotency key.
    pub(super) token: &'a str,
    pub(super) tenant: &'a Tenant,
    pub(super) billing: BillingStarts,
}

pub(super) async fn convert(
    app: &App,
    request: &ConvertRequest<'_>,
    id: &TrialId,
    now_ms: i64,
    budget: Duration,
) -> Result<Reply, ApiError> {
    let now = now_ms.div_euclid(1000);
    let store = &app.store;
    let trial = load_owned(app, id, request.tenant).await?;
    if let Some(reply) = pending_reply(&trial) {
        return answer(app, request, reply, now_ms).await;
    }
    let policy = trial.policy();
    trial.lifecycle(policy).check_convert(now)?;

    if let Some(open) = trial.open_checkout(now) {
        let reply = checkout_reply(&trial, open, now);
        return answer(app, request, reply, now_ms).await;
    }
    let checkout = create_checkout(app, &trial, request, now, budget).await?;
    // Stripe may have taken seconds: the write is judged at the time it is made (a session
    // recorded after grace ended would hold back a purge that already decided).
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let reply = checkout_reply(&trial, &checkout, now);
    let idempotency = request.idempotency;
    let completed = store.idempotency_put_owned(
        &idempotency.scope,
        request.token,
        &idempotency.fingerprint,
        &reply.stored(),
        now_ms,
        app.config.idempotency_ttl_secs,
    )?;
    let event = DomainEvent::for_trial(
        EventKind::CheckoutCreated,
        &trial,
        now,
        Some(&checkout.session_id),
        json!({
            "checkout_session_id": checkout.session_id,
            "checkout_expires_at": rfc3339(checkout.expires_at),
            "billing_starts": billing_starts(&checkout).as_str(),
            "trial_end": checkout.trial_end.map(rfc3339),
        }),
    );
    let outcome = store
        .tx()
        .update(
            Slot::Trial,
            store.checkout_update(&trial, &checkout, now, policy)?,
        )
        .put(Slot::Idempotency, completed)
        .event(&event, now)?
        .commit()
        .await?;
    let rejection = match outcome {
        Outcome::Committed => return Ok(reply),
        Outcome::Rejected(rejection) => rejection,
    };
    if rejection.failed(Slot::Idempotency) {
        // Our lease ran out and a retry took the key over: its answer is the one that counts.
        return idempotency
            .answer_conflict(app, rejection.old(Slot::Idempotency))
            .await;
    }
    match rejected_trial(&rejection)? {
        // A payment started on the trial's session meanwhile: that one is the answer (ours was
        // never shown to anyone and expires unused).
        Some(current) if pending_reply(&current).is_some() => {
            let reply = pending_reply(&current).unwrap_or(reply);
            answer(app, request, reply, now_ms).await
        }
        // A convert with another key stored its open session first: a trial has one session at
        // a time, so answer with that one.
        Some(current) if current.lifecycle(policy).check_convert(now).is_ok() => {
            match current.open_checkout(now) {
                Some(open) => {
                    let reply = checkout_reply(&current, open, now);
                    answer(app, request, reply, now_ms).await
                }
                None => Err(ApiError::trial_not_found()),
            }
        }
        // The trial moved on (converted, canceled, past grace) since it was read.
        Some(current) => Err(current
            .lifecycle(policy)
            .check_convert(now)
            .err()
            .map(ApiError::from)
            .unwrap_or_else(ApiError::trial_not_found)),
        // Purged meanwhile, or never the org's.
        None => Err(purged_or_not_found(app, id, request.tenant).await),
    }
}

fn billing_starts(checkout: &Checkout) -> BillingStarts {
    match checkout.trial_end {
        Some(_) => BillingStarts::TrialEnd,
        None => BillingStarts::Now,
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
            "plan": trial.plan.as_str(),
            "billing_starts": billing_starts(checkout).as_str(),
            "first_charge_at": rfc3339(checkout.trial_end.unwrap_or(now)),
            "checkout_expires_at": rfc3339(checkout.expires_at),
            "payment_pending": false,
        }),
    )
}

/// The answer while a payment is on its way (`trial.pending`; never for a CONVERTED trial):
/// that session, flagged `payment_pending`, instead of a new one. The session's page and
/// billing come from the checkout stored with it; for a pending session the trial does not
/// hold as its checkout (it never happens through convert), they are `null`.
fn pending_reply(trial: &Trial) -> Option<Reply> {
    let pending: &PendingPayment = trial.pending.as_ref()?;
    if trial.status == TrialStatus::Converted {
        return None;
    }
    let checkout = trial
        .checkout
        .as_ref()
        .filter(|c| c.session_id == pending.session_id);
    Some(Reply::json(
        200,
        &json!({
            "checkout_url": checkout.map(|c| c.url.as_str()),
            "trial_id": trial.id.as_str(),
            "plan": trial.plan.as_str(),
            "billing_starts": checkout.map(|c| billing_starts(c).as_str()),
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
    let idempotency = request.idempotency;
    let completed = app.store.idempotency_put_owned(
        &idempotency.scope,
        request.token,
        &idempotency.fingerprint,
        &reply.stored(),
        now_ms,
        app.config.idempotency_ttl_secs,
    )?;
    app.store.idempotency_complete(completed).await?;
    Ok(reply)
}

/// Asks Stripe for a subscription checkout of the trial's plan, billing as the request asks at
/// `now` (see the module docs for the retry across the 48-hour line). Any failure (4xx, 5xx,
/// timeout) is the provider's: 502, retryable, the trial untouched.
async fn create_checkout(
    app: &App,
    trial: &Trial,
    request: &ConvertRequest<'_>,
    now: i64,
    budget: Duration,
) -> Result<Checkout, ApiError> {
    let key = stripe_idempotency_key(request.idempotency, &trial.id);
    let ends = tokio::time::Instant::now() + budget;
    let mut trial_end = trial_end_for(trial.expires_at, request.billing, now);
    let mut created = app
        .stripe
        .create_checkout_session(&new_session(app, trial, trial_end)?, &key, Some(budget))
        .await;
    if request.billing == BillingStarts::TrialEnd && is_idempotency_error(&created) {
        // This request was first sent on the other side of the 48-hour line: ask again as it
        // was asked then, and Stripe answers with the session it saved for it.
        trial_end = match trial_end {
            Some(_) => None,
            None => Some(trial.expires_at),
        };
        let left = ends.saturating_duration_since(tokio::time::Instant::now());
        created = app
            .stripe
            .create_checkout_session(&new_session(app, trial, trial_end)?, &key, Some(left))
            .await;
    }
    match created {
        Ok(created) => Ok(Checkout {
            session_id: created.id,
            url: created.url,
            expires_at: created.expires_at,
            trial_end,
        }),
        Err(e) => {
            tracing::warn!(error = %e, trial_id = %trial.id, "Stripe checkout session not created");
            Err(ApiError::new(
                ErrorCode::PaymentProviderError,
                "The payment provider could not create a checkout session; retry with the same Idempotency-Key",
            )
            .retryable())
        }
    }
}

fn is_idempotency_error<T>(result: &Result<T, StripeError>) -> bool {
    matches!(result, Err(StripeError::Api(e)) if e.error_type == "idempotency_error")
}

/// The session's parameters: a pure function of the trial and `trial_end` (and the plan's price
/// today: a price is not part of a trial's terms; none means the catalog offers the plan for
/// trial only).
fn new_session(
    app: &App,
    trial: &Trial,
    trial_end: Option<i64>,
) -> Result<NewCheckoutSession, ApiError> {
    let stripe = &app.config.stripe;
    let price = app
        .config
        .catalog
        .get(trial.plan.as_str())
        .and_then(|p| p.stripe_price.clone())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PlanNotPurchasable,
                format!("Plan {} has no price: it cannot be bought", trial.plan),
            )
        })?;
    Ok(NewCheckoutSession {
        price,
        quantity: 1,
        success_url: stripe.success_url.clone(),
        cancel_url: stripe.cancel_url.clone(),
        client_reference_id: trial.id.to_string(),
        metadata: vec![
            ("trial_id".to_owned(), trial.id.to_string()),
            ("org_id".to_owned(), trial.org_id.to_string()),
            ("plan".to_owned(), trial.plan.as_str().to_owned()),
            ("trial_started_at".to_owned(), trial.started_at.to_string()),
        ],
        trial_end,
    })
}

/// Time kept back from the invocation's deadline to write the outcome (or release the key)
/// after Stripe answers or the call is abandoned.
pub const WRITE_MARGIN_MS: i64 = 1_000;

/// How long the Stripe call may take: the configured timeout, cut short so that the answer can
/// still be written, or the key released with a 502, before the invocation is killed (a killed
/// invocation leaves its lease to run out and API Gateway answers for us). With no usable
/// deadline (local server, a deadline already past) the configured timeout applies.
pub fn stripe_budget(configured: Duration, deadline_ms: Option<i64>, now_ms: i64) -> Duration {
    match deadline_ms.map(|d| d - now_ms) {
        Some(remaining) if remaining > 0 => {
            let usable = (remaining - WRITE_MARGIN_MS).max(1) as u64;
            configured.min(Duration::from_millis(usable))
        }
        _ => configured,
    }
}

/// Stripe's key for our request: the same for every retry of it, different for any other.
pub fn stripe_idempotency_key(idempotency: &Idempotency, trial: &TrialId) -> String {
    let scope = &idempotency.scope;
    format!(
        "trials-convert-{}",
        crypto::sha256_hex(format!("{}\n{}\n{}", scope.org, scope.key, trial).as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_starts_at_the_trial_end_only_when_stripe_allows_it() {
        let end = 1_776_074_400;
        let line = end - TRIAL_END_MIN_LEAD_SECS - TRIAL_END_MARGIN_SECS;
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, line), Some(end));
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, line + 1), None);
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, end + 60), None);
        assert_eq!(trial_end_for(end, BillingStarts::Now, line - 86_400), None);
    }

    #[test]
    fn the_body_is_optional_and_billing_starts_is_checked() {
        for (body, expected) in [
            ("", BillingStarts::TrialEnd),
            ("  \n", BillingStarts::TrialEnd),
            ("{}", BillingStarts::TrialEnd),
            (r#"{"billing_starts":"trial_end"}"#, BillingStarts::TrialEnd),
            (r#"{"billing_starts":"now","note":"x"}"#, BillingStarts::Now),
        ] {
            assert_eq!(
                BillingStarts::from_body(body.as_bytes()),
                Ok(expected),
                "{body}"
            );
        }
        for body in [
            r#"{"billing_starts":"later"}"#,
            r#"{"billing_starts":"NOW"}"#,
            r#"{"billing_starts":null}"#,
            r#"{"billing_starts":1}"#,
        ] {
            let err = BillingStarts::from_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidBillingStarts, "{body}");
            assert_eq!(err.status(), 400);
        }
        for body in ["[]", "nope", r#""now""#] {
            let err = BillingStarts::from_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidJson, "{body}");
        }
    }

    #[test]
    fn the_stripe_call_ends_before_the_invocation_does() {
        let six = Duration::from_secs(6);
        let now = 1_775_469_600_000;
        // Plenty of time: the configured timeout.
        assert_eq!(stripe_budget(six, Some(now + 9_500), now), six);
        // Little left: what remains minus the margin for the write.
        assert_eq!(
            stripe_budget(six, Some(now + 3_000), now),
            Duration::from_millis(2_000)
        );
        // Less than the margin left: the call still gets a (tiny) budget and fails as a 502.
        assert_eq!(
            stripe_budget(six, Some(now + 500), now),
            Duration::from_millis(1)
        );
        // No deadline, or one that reads 0 or has passed: the configured timeout.
        for deadline in [None, Some(0), Some(now), Some(now - 1)] {
            assert_eq!(stripe_budget(six, deadline, now), six, "{deadline:?}");
        }
    }
}
