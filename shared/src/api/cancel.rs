//! `POST /v1/trials/{id}/cancel`: ACTIVE → CANCELED, and the trial's open Checkout Session
//! expired at Stripe so that it can no longer be paid.
//!
//! The trial is read to build the answer, but the transition itself is an update conditioned on
//! the trial still being ACTIVE and unexpired and still holding the open session it was read
//! with, committed in one transaction with the completed idempotency record and the
//! `trial.canceled` event: a racing expiry, conversion or second cancel makes the condition fail,
//! never a lost update (a convert that stored a session meanwhile makes the cancel run again on
//! the trial as it is now). No lease is needed: the outcome and its record commit together.
//!
//! While a payment is on its way (a checkout completed with a delayed method, younger than
//! `PENDING_PAYMENT_MAX_AGE`) cancel answers `409 payment_pending`, naming the session; the
//! update's condition re-checks it, so a payment recorded after the read makes the cancel run
//! again and answer that.
//!
//! A trial with an open session: the same transaction writes a "session to expire" work item
//! ([`crate::services::checkout_sessions`]); after the commit the session is expired at Stripe within
//! the invocation's deadline and the item deleted. If Stripe cannot be reached (or the function
//! dies right after the commit), the cancel still succeeds and the expire job retries the item.
//!
//! Cost: without an open session, two DynamoDB round trips (the read and the transaction). With
//! one, three (the transaction carries one more item, then a `DeleteItem`) and one Stripe call
//! (two if Stripe says the session had already stopped being open).
use std::future::ready;

use lambda_http::Request;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::reply::Reply;
use super::request::deadline_ms;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{ErrorCode, Plan, Trial, TrialStatus};
use crate::services::checkout_sessions::{expire_now, stripe_budget, SessionToExpire};
use crate::services::transition::retry_on_moved;
use crate::store::{Slot, Tx};
use crate::App;

/// Commits tried when the trial's open session changed between the read and the write.
const ATTEMPTS: usize = 3;

/// What a committed cancel leaves to do: answer, count, and expire the session at Stripe.
struct Canceled {
    reply: Reply,
    plan: Plan,
    expiry: Option<SessionToExpire>,
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let (id, idempotency) = Idempotency::for_trial(req, tenant, log, "/cancel")?;
    super::request::no_fields(req)?;
    let now_ms = app.clock.now_millis();
    let trial = match idempotency.load_owned(app, &id, tenant, now_ms).await? {
        Ok(trial) => trial,
        Err(refused) => return Ok(refused),
    };
    // The trial moved on between the read and the write: answer for the state it is in now,
    // or, if it is still cancelable (its checkout session changed), cancel it as it is.
    let attempt = retry_on_moved(&tenant.org, trial, ATTEMPTS, |trial| {
        decide(app, &idempotency, tenant, trial, now_ms)
    })
    .await?;
    let not_found = ready(ApiError::trial_not_found());
    let done = match idempotency
        .settle(app, attempt, now_ms, not_found, "cancel")
        .await?
    {
        Ok(done) => done,
        Err(answered) => return Ok(answered),
    };
    crate::metrics::trial_canceled(&done.plan);
    if let Some(work) = &done.expiry {
        let now_ms = app.clock.now_millis();
        let budget = stripe_budget(app.stripe.timeout(), deadline_ms(req, now_ms), now_ms);
        expire_now(app, work, budget).await;
    }
    Ok(done.reply)
}

/// The cancel of `trial` as it is: refused by the state machine, or its transaction (the
/// conditional update, the answer, `trial.canceled`, the session to expire).
fn decide<'a>(
    app: &'a App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    trial: &Trial,
    now_ms: i64,
) -> Result<(Tx<'a>, Canceled), ApiError> {
    let now = now_ms.div_euclid(1000);
    let policy = trial.policy();
    trial.lifecycle(policy).check_cancel(now)?;
    if let Some(pending) = trial.pending_at(now, app.config.pending_payment_max_age_secs) {
        return Err(payment_pending(&pending.session_id));
    }
    let canceled = Trial {
        status: TrialStatus::Canceled,
        canceled_at: Some(now),
        ..trial.clone()
    };
    let reply = Reply::json(200, &canceled.view_at(now, policy, tenant.privilege()));
    let event = DomainEvent::for_trial(
        EventKind::Canceled,
        trial,
        now,
        None,
        json!({ "project_id": tenant.project.as_str(), "canceled_at": rfc3339(now) }),
    );
    let open = trial.open_checkout(now);
    // A session whose (delayed) payment is already on its way is complete, not payable:
    // nothing to expire.
    let expiry = open
        .filter(|c| trial.pending.as_ref().map(|p| &p.session_id) != Some(&c.session_id))
        .map(|c| SessionToExpire::new(trial, c));
    let store = &app.store;
    let session = open.map(|c| c.session_id.as_str());
    let tx = store.tx().update(
        Slot::Trial,
        store.cancel_update(trial, session, now, policy)?,
    );
    let mut tx = idempotency
        .complete(app, tx, &reply, now_ms)?
        .event(&event, now)?;
    if let Some(work) = &expiry {
        tx = tx.put(Slot::SessionExpiry, work.put(store, now)?);
    }
    let plan = trial.plan.clone();
    Ok((
        tx,
        Canceled {
            reply,
            plan,
            expiry,
        },
    ))
}

/// The refusal while a payment is on its way: canceling would not stop the debit, and the
/// payment would convert the trial right after a "successful" cancel. It names the session, so
/// that the caller can follow (or refund) that payment.
fn payment_pending(session_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PaymentPending,
        format!(
            "A payment for this trial is on its way (checkout_session_id {session_id}): cancel \
             once Stripe reports it failed, or refund it once it converts the trial"
        ),
    )
}
