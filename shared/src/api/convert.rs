//! `POST /v1/trials/{id}/convert`: a Stripe Checkout URL for a trial that may still convert
//! (ACTIVE, or EXPIRED within the grace period). The trial becomes CONVERTED when Stripe's
//! webhook says the checkout completed.
//!
//! Calling Stripe is a side effect outside the table, so the request first takes a lease on its
//! idempotency key (never two executions at once), and Stripe gets an `Idempotency-Key` derived
//! from ours with parameters that are a pure function of the trial: a retry after a crash
//! between Stripe's answer and our write gets Stripe's same session, not a second one. An open
//! session stored on the trial is reused without calling Stripe at all.
use std::time::Duration;

use lambda_http::Request;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::{lease_until, Idempotency};
use super::owned::{load_owned, purged_or_not_found};
use super::reply::Reply;
use super::request::{deadline_ms, trial_id};
use super::LogFields;
use crate::auth::Tenant;
use crate::crypto;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::trial::Checkout;
use crate::domain::{ErrorCode, Trial, TrialId};
use crate::store::idempotency::Claim;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Slot};
use crate::stripe::client::NewCheckoutSession;
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency =
        Idempotency::from_request(req, &tenant.org, &format!("/v1/trials/{id}/convert"))?;
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
    match convert(app, &idempotency, &token, &id, tenant, now_ms, budget).await {
        Ok(reply) => Ok(reply),
        Err(err) => idempotency.refuse_leased(app, &token, err, now_ms).await,
    }
}

async fn convert(
    app: &App,
    idempotency: &Idempotency,
    token: &str,
    id: &TrialId,
    tenant: &Tenant,
    now_ms: i64,
    budget: Duration,
) -> Result<Reply, ApiError> {
    let now = now_ms.div_euclid(1000);
    let store = &app.store;
    let trial = load_owned(app, id, tenant).await?;
    let policy = trial.policy();
    trial.lifecycle(policy).check_convert(now)?;

    if let Some(open) = trial.open_checkout(now) {
        let open = open.clone();
        return answer_with(app, idempotency, token, &trial, &open, now_ms).await;
    }
    let checkout = create_checkout(app, &trial, idempotency, budget).await?;
    // Stripe may have taken seconds: the write is judged at the time it is made (a session
    // recorded after grace ended would hold back a purge that already decided).
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let reply = checkout_reply(&trial, &checkout);
    let completed = store.idempotency_put_owned(
        &idempotency.scope,
        token,
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
            "checkout_expires_at": crate::domain::time::rfc3339(checkout.expires_at),
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
        // A convert with another key stored its open session first: a trial has one session at
        // a time, so answer with that one (ours was never shown to anyone and expires unused).
        Some(current) if current.lifecycle(policy).check_convert(now).is_ok() => {
            match current.open_checkout(now).cloned() {
                Some(open) => answer_with(app, idempotency, token, &current, &open, now_ms).await,
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
        None => Err(purged_or_not_found(app, id, tenant).await),
    }
}

fn checkout_reply(trial: &Trial, checkout: &Checkout) -> Reply {
    Reply::json(
        200,
        &json!({
            "checkout_url": checkout.url,
            "trial_id": trial.id.as_str(),
            "plan": trial.plan.as_str(),
        }),
    )
}

/// Answers with a session already stored on the trial: only the idempotency record to write.
async fn answer_with(
    app: &App,
    idempotency: &Idempotency,
    token: &str,
    trial: &Trial,
    checkout: &Checkout,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let reply = checkout_reply(trial, checkout);
    let completed = app.store.idempotency_put_owned(
        &idempotency.scope,
        token,
        &idempotency.fingerprint,
        &reply.stored(),
        now_ms,
        app.config.idempotency_ttl_secs,
    )?;
    app.store.idempotency_complete(completed).await?;
    Ok(reply)
}

/// Asks Stripe for a subscription checkout of the trial's plan. Any failure (4xx, 5xx, timeout)
/// is the provider's: 502, retryable, the trial untouched.
async fn create_checkout(
    app: &App,
    trial: &Trial,
    idempotency: &Idempotency,
    budget: Duration,
) -> Result<Checkout, ApiError> {
    let stripe = &app.config.stripe;
    // The plan's price today (a price is not part of a trial's terms): none means the catalog
    // offers the plan for trial only.
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
    let metadata = vec![
        ("trial_id".to_owned(), trial.id.to_string()),
        ("org_id".to_owned(), trial.org_id.to_string()),
        ("plan".to_owned(), trial.plan.as_str().to_owned()),
    ];
    let session = NewCheckoutSession {
        price,
        quantity: 1,
        success_url: stripe.success_url.clone(),
        cancel_url: stripe.cancel_url.clone(),
        client_reference_id: trial.id.to_string(),
        metadata,
    };
    let key = stripe_idempotency_key(idempotency, &trial.id);
    match app
        .stripe
        .create_checkout_session(&session, &key, Some(budget))
        .await
    {
        Ok(created) => Ok(Checkout {
            session_id: created.id,
            url: created.url,
            expires_at: created.expires_at,
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
