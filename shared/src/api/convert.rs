//! `POST /v1/trials/{id}/convert`: a Stripe Checkout URL for a trial that may still convert
//! (ACTIVE, or EXPIRED within the grace period). The trial becomes CONVERTED when Stripe's
//! webhook says the checkout completed.
//!
//! Calling Stripe is a side effect outside the table, so the request first takes a lease on its
//! idempotency key (never two executions at once), and Stripe gets an `Idempotency-Key` derived
//! from ours with parameters that are a pure function of the trial: a retry after a crash
//! between Stripe's answer and our write gets Stripe's same session, not a second one. An open
//! session stored on the trial is reused without calling Stripe at all.
use lambda_http::Request;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::{lease_until, Idempotency};
use super::reply::Reply;
use super::request::{deadline_ms, trial_id};
use super::status::load_owned;
use super::LogFields;
use crate::auth::Tenant;
use crate::crypto;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::trial::Checkout;
use crate::domain::{Trial, TrialId};
use crate::store::trials::TransitionRejected;
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
    let lease = lease_until(deadline_ms(req), now_ms, app.config.idempotency_lease_secs);
    let acquired = app
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
    if let Err(existing) = acquired {
        return Ok(idempotency.answer(existing));
    }
    match convert(app, &idempotency, &token, &id, tenant, now_ms).await {
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
) -> Result<Reply, ApiError> {
    let now = now_ms.div_euclid(1000);
    let policy = app.config.policy;
    let store = &app.store;
    let trial = load_owned(app, id, tenant).await?;
    trial.lifecycle(policy).check_convert(now)?;

    let (checkout, created) = match trial.open_checkout(now) {
        Some(open) => (open.clone(), false),
        None => (create_checkout(app, &trial, idempotency).await?, true),
    };
    let reply = Reply::json(
        200,
        &json!({
            "checkout_url": checkout.url,
            "trial_id": trial.id.as_str(),
            "plan": trial.plan.as_str(),
        }),
    );
    let completed = store.idempotency_put_owned(
        &idempotency.scope,
        token,
        &idempotency.fingerprint,
        &reply.stored(),
        now_ms,
        app.config.idempotency_ttl_secs,
    )?;
    if !created {
        store.idempotency_complete(completed).await?;
        return Ok(reply);
    }

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
    let written = store
        .record_checkout(
            &trial,
            &checkout,
            now,
            policy,
            completed,
            store.outbox_put(&event, now)?,
        )
        .await?;
    match written {
        Ok(()) => {
            app.publish_committed(&[event]).await;
            Ok(reply)
        }
        // Our lease ran out and a retry took the key over: its answer is the one that counts.
        Err(TransitionRejected::Idempotency(old)) => idempotency.answer_conflict(app, old).await,
        // The trial moved on (converted, canceled, or past grace) since it was read.
        Err(TransitionRejected::Trial(current)) => Err(match current {
            Some(current) => match current.lifecycle(policy).check_convert(now) {
                Err(e) => e.into(),
                Ok(()) => ApiError::trial_not_found(),
            },
            None => ApiError::trial_not_found(),
        }),
    }
}

/// Asks Stripe for a subscription checkout of the trial's plan. Any failure (4xx, 5xx, timeout)
/// is the provider's: 502, retryable, the trial untouched.
async fn create_checkout(
    app: &App,
    trial: &Trial,
    idempotency: &Idempotency,
) -> Result<Checkout, ApiError> {
    let stripe = &app.config.stripe;
    let metadata = vec![
        ("trial_id".to_owned(), trial.id.to_string()),
        ("org_id".to_owned(), trial.org_id.to_string()),
        ("plan".to_owned(), trial.plan.as_str().to_owned()),
    ];
    let session = NewCheckoutSession {
        price: stripe.price(trial.plan).to_owned(),
        quantity: 1,
        success_url: stripe.success_url.clone(),
        cancel_url: stripe.cancel_url.clone(),
        client_reference_id: trial.id.to_string(),
        metadata,
    };
    let key = stripe_idempotency_key(idempotency, &trial.id);
    match app
        .stripe
        .create_checkout_session(&session, &key, None)
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
                502,
                "payment_provider_error",
                "The payment provider could not create a checkout session; retry with the same Idempotency-Key",
            )
            .retryable())
        }
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
