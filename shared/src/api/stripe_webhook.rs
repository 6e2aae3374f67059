//! `POST /v1/webhooks/stripe`: Stripe's deliveries, authenticated by their signature.
//!
//! Nothing is read or written before the `Stripe-Signature` header verifies over the raw body.
//! Then every delivery is deduplicated by Stripe's event id: the dedupe record commits in the
//! same transaction as the change the event makes, so an event either has had its whole effect
//! (and a redelivery is answered 200 with no effect) or none (and a 5xx makes Stripe retry).
//! Deliveries may come in any order; each write is conditional so an older event cannot undo a
//! newer state: a CONVERTED trial is never touched again, and only the session a trial still
//! holds can be cleared or marked as paying (a `completed` for a session whose payment failed
//! or that expired, delivered late, leaves the trial as it is).
//!
//! A payment converts a trial only when its session is one we created for that trial, org and
//! plan (the session's metadata, see [`CheckoutSession::binding`]), checked in the update's
//! condition: one DynamoDB request per payment, the trial update, the dedupe record and the
//! `trial.converted` event in one transaction. When the condition fails, `ALL_OLD` says why
//! (already converted, canceled, gone, another org's or plan's) and a second write records the
//! outcome. Money is never dropped: a payment that matches no trial is recorded as
//! `trial.payment_unmatched` (alarmed) and answered 200.
use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::reply::Reply;
use super::stripe_delivery::{record, record_unmatched, unless_duplicate, with_product, Outcome};
use super::LogFields;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::trial::SessionBinding;
use crate::domain::{ErrorCode, Trial, TrialId, TrialStatus};
use crate::headers::header;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome as Written, Rejection, Slot, StoreError};
use crate::stripe::event::{Action, CheckoutSession, Event};
use crate::stripe::signature::{self, SignatureError};
use crate::App;

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let body = req.body().as_ref();
    let now = app.now();
    let config = &app.config.webhook;
    signature::verify(
        header(req, signature::HEADER),
        body,
        &config.secrets,
        config.tolerance_secs,
        now,
    )
    .map_err(|cause| {
        if cause == SignatureError::NotConfigured {
            tracing::warn!("STRIPE_WEBHOOK_SECRET is not set: every Stripe delivery is refused");
        } else {
            tracing::warn!(cause = %cause, "Stripe-Signature refused");
        }
        invalid_signature()
    })?;

    let event = Event::parse(body).map_err(|e| {
        tracing::warn!(error = %e, "signed Stripe delivery that is not an event we can read");
        ApiError::new(
            ErrorCode::InvalidPayload,
            "The body must be a Stripe event: a JSON object with an id and a type",
        )
    })?;

    if let Action::Paid(session) | Action::AwaitingPayment(session) | Action::Closed(session) =
        &event.action
    {
        log.trial_id = session.trial_id().map(|id| id.to_string());
    }
    let outcome = match &event.action {
        Action::Paid(session) => paid(app, &event, session, now, log, false).await?,
        Action::AwaitingPayment(session) => awaiting(app, &event, session, now, log).await?,
        Action::Closed(session) => closed(app, &event, session, now).await?,
        Action::Subscription(sub) => {
            super::stripe_subscription::subscription(app, &event, sub, now, log).await?
        }
        Action::Invoice(invoice) => {
            super::stripe_subscription::invoice(app, &event, invoice, now, log).await?
        }
        Action::Ignored => Outcome::Ignored,
    };
    tracing::info!(
        stripe_event_id = %event.id,
        stripe_event_type = %event.kind,
        outcome = outcome.as_str(),
        reason = outcome.reason().unwrap_or("-"),
        "Stripe event"
    );
    crate::metrics::webhook_outcome(outcome.as_str());
    let mut body = json!({ "received": true, "event_id": event.id, "outcome": outcome.as_str() });
    if let Some(reason) = outcome.reason() {
        body["reason"] = reason.into();
    }
    Ok(Reply::json(200, &body))
}

/// The one answer to every signature failure: the cause is in the log only.
fn invalid_signature() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSignature,
        "The Stripe-Signature header is missing or does not verify",
    )
}

/// A completed payment: convert the trial its session was made for. Any state but CONVERTED
/// converts (money is never refused); a canceled trial converts too, flagged for review.
async fn paid(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    now: i64,
    log: &mut LogFields,
    after_cancel: bool,
) -> Result<Outcome, StoreError> {
    let Some(binding) = session.binding() else {
        return unmatched(app, event, session, Unmatched::NotOurSession, now).await;
    };
    log.org_id = Some(binding.org_id.to_string());
    let review = after_cancel.then_some("paid_after_cancel");
    let converted = DomainEvent::for_binding(
        EventKind::Converted,
        with_product(app, &binding),
        now,
        None,
        json!({
            "stripe_event_id": event.id,
            "checkout_session_id": session.id,
            "stripe_customer_id": session.customer,
            "stripe_subscription_id": session.subscription,
            "review": review,
            // The funnel's hours-to-convert (`store::stats`, counted from this event).
            "started_at": session.trial_started_at().map(crate::domain::time::rfc3339),
        }),
    );
    let store = &app.store;
    let payment = session.payment();
    let update = store.convert_update(&binding, &payment, now, after_cancel)?;
    let outcome = store
        .tx()
        .update(Slot::Trial, update)
        .put(
            Slot::StripeEvent,
            store.stripe_event_put(&event.id, &event.kind, now)?,
        )
        .event(&converted, now)?
        .commit()
        .await?;
    match outcome {
        Written::Committed => Ok(committed(event, session, &binding, after_cancel)),
        Written::Rejected(rejection) => {
            let paid = Paid {
                event,
                session,
                binding: &binding,
                now,
                after_cancel,
            };
            not_converted(app, &paid, &converted, rejection, log).await
        }
    }
}

/// A payment whose conversion committed: counted, and flagged when it follows a cancel.
fn committed(
    event: &Event,
    session: &CheckoutSession,
    binding: &SessionBinding,
    after_cancel: bool,
) -> Outcome {
    crate::metrics::trial_converted(&binding.plan);
    if !after_cancel {
        return Outcome::Converted;
    }
    tracing::warn!(
        trial_id = %binding.trial_id,
        stripe_event_id = %event.id,
        checkout_session_id = %session.id,
        "payment for a canceled trial: converted and flagged for review"
    );
    Outcome::ConvertedAfterCancel
}

/// One payment being applied.
struct Paid<'a> {
    event: &'a Event,
    session: &'a CheckoutSession,
    binding: &'a SessionBinding,
    now: i64,
    after_cancel: bool,
}

/// A payment whose conversion was rejected: a duplicate, a trial that is not the session's
/// (recorded unmatched), already converted, or canceled (converted again, flagged).
async fn not_converted(
    app: &App,
    payment: &Paid<'_>,
    converted: &DomainEvent,
    rejection: Rejection,
    log: &mut LogFields,
) -> Result<Outcome, StoreError> {
    let Paid {
        event,
        session,
        binding,
        now,
        after_cancel,
    } = *payment;
    if rejection.failed(Slot::StripeEvent) {
        return Ok(Outcome::Duplicate);
    }
    match rejected_trial(&rejection)? {
        _ if !rejection.failed(Slot::Trial) => {
            // Only the event's condition failed: `trial.converted` exists although the trial's
            // condition held, a conversion committed concurrently. Stripe's retry will find the
            // trial CONVERTED.
            Err(StoreError::Unavailable(format!(
                "{} already written: converted concurrently",
                converted.id
            )))
        }
        None => unmatched(app, event, session, Unmatched::TrialNotFound, now).await,
        Some(trial) if trial.org_id != binding.org_id || trial.trialled_plan() != &binding.plan => {
            unmatched(app, event, session, Unmatched::BindingMismatch, now).await
        }
        Some(trial) if trial.status == TrialStatus::Converted => {
            already_converted(app, event, session, &trial, now).await
        }
        Some(trial) if trial.status == TrialStatus::Canceled && !after_cancel => {
            Box::pin(paid(app, event, session, now, log, true)).await
        }
        Some(trial) => Err(StoreError::Unavailable(format!(
            "convert of {} refused in state {}",
            trial.id,
            trial.status.as_str()
        ))),
    }
}

/// The session completed but its payment is on its way (a bank debit): recorded on the trial,
/// so purge waits for it and convert answers it instead of opening another session; only while
/// the trial still holds this session (a late `completed` never revives a closed one).
async fn awaiting(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    now: i64,
    log: &mut LogFields,
) -> Result<Outcome, StoreError> {
    let Some(binding) = session.binding() else {
        return unmatched(app, event, session, Unmatched::NotOurSession, now).await;
    };
    log.org_id = Some(binding.org_id.to_string());
    let store = &app.store;
    let outcome = store
        .tx()
        .update(
            Slot::Trial,
            store.pending_update(&binding, &session.id, now)?,
        )
        .put(
            Slot::StripeEvent,
            store.stripe_event_put(&event.id, &event.kind, now)?,
        )
        .commit()
        .await?;
    let rejection = match outcome {
        Written::Committed => return Ok(Outcome::AwaitingPayment),
        Written::Rejected(rejection) => rejection,
    };
    if rejection.failed(Slot::StripeEvent) {
        return Ok(Outcome::Duplicate);
    }
    match rejected_trial(&rejection)? {
        // Money on its way for a trial we do not have: operators must know before it lands.
        None => unmatched(app, event, session, Unmatched::TrialNotFound, now).await,
        Some(trial) if trial.org_id != binding.org_id || trial.trialled_plan() != &binding.plan => {
            unmatched(app, event, session, Unmatched::BindingMismatch, now).await
        }
        // Already CONVERTED (by another session): the payment that follows is flagged then.
        Some(trial) if trial.status == TrialStatus::Converted => Ok(unless_duplicate(
            record(app, event, now).await?,
            Outcome::AwaitingPayment,
        )),
        // The trial no longer holds this session (its payment failed, it expired, or a newer
        // one replaced it; Stripe's events come in any order): nothing to wait for on the
        // trial. Should the payment land after all, it converts like any other.
        Some(_) => Ok(unless_duplicate(
            record(app, event, now).await?,
            Outcome::CheckoutUnchanged,
        )),
    }
}

/// A payment for a trial already CONVERTED. Its own session again (a late
/// `async_payment_succeeded` after `completed`): nothing new. Another session of the same trial
/// paid too: a second subscription the trial does not follow (likely a refund), so the money is
/// recorded unmatched and alarmed like any payment that converts nothing.
async fn already_converted(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    trial: &Trial,
    now: i64,
) -> Result<Outcome, StoreError> {
    let paid_with = trial.payment.as_ref().and_then(|p| p.session_id.as_deref());
    if paid_with.is_some_and(|s| s != session.id) {
        return unmatched(app, event, session, Unmatched::PaidTwice, now).await;
    }
    let fresh = record(app, event, now).await?;
    Ok(unless_duplicate(fresh, Outcome::AlreadyConverted))
}

/// Why a payment matched no trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unmatched {
    /// Not a session convert created (no or partial metadata, another mode, a reference that
    /// disagrees with the metadata): e.g. a Payment Link.
    NotOurSession,
    /// Ours, but the trial is gone (purged) or never existed.
    TrialNotFound,
    /// The trial exists but belongs to another org or plan than the session was made for.
    BindingMismatch,
    /// The trial was converted by another of its sessions: this one is a second subscription.
    PaidTwice,
}

impl Unmatched {
    fn as_str(self) -> &'static str {
        match self {
            Unmatched::NotOurSession => "not_our_session",
            Unmatched::TrialNotFound => "trial_not_found",
            Unmatched::BindingMismatch => "binding_mismatch",
            Unmatched::PaidTwice => "converted_by_another_session",
        }
    }
}

/// A payment we cannot match: the dedupe record and a `trial.payment_unmatched` event in one
/// transaction, and an error log. Never dropped, never converting anything.
async fn unmatched(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    reason: Unmatched,
    now: i64,
) -> Result<Outcome, StoreError> {
    let trial_id = session.trial_id();
    let unmatched = DomainEvent::unmatched_payment(
        &event.id,
        now,
        json!({
            "stripe_event_type": event.kind,
            "reason": reason.as_str(),
            "trial_id": trial_id.as_ref().map(TrialId::as_str),
            "client_reference_id": session.client_reference_id,
            "metadata": session.metadata.clone().map(Value::Object),
            "mode": session.mode,
            "checkout_session_id": session.id,
            "stripe_customer_id": session.customer,
            "stripe_subscription_id": session.subscription,
            "amount_total": session.amount_total,
            "currency": session.currency,
        }),
    );
    if !record_unmatched(app, event, &unmatched, now).await? {
        return Ok(Outcome::Duplicate);
    }
    tracing::error!(
        stripe_event_id = %event.id,
        stripe_event_type = %event.kind,
        reason = reason.as_str(),
        trial_id = trial_id.as_ref().map(TrialId::as_str).unwrap_or("-"),
        checkout_session_id = %session.id,
        stripe_customer_id = session.customer.as_deref().unwrap_or("-"),
        stripe_subscription_id = session.subscription.as_deref().unwrap_or("-"),
        amount_total = session.amount_total.unwrap_or_default(),
        currency = session.currency.as_deref().unwrap_or("-"),
        "payment received for no trial: review it (refund, or attach it by hand)"
    );
    crate::metrics::payment_unmatched();
    Ok(Outcome::Unmatched)
}

/// The session can no longer be paid (expired, or its delayed payment failed): forget it on the
/// trial, unless the trial converted or holds a newer session meanwhile, in which case only the
/// event is recorded.
async fn closed(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    now: i64,
) -> Result<Outcome, StoreError> {
    let Some(id) = session.binding().map(|b| b.trial_id) else {
        let fresh = record(app, event, now).await?;
        return Ok(unless_duplicate(fresh, Outcome::CheckoutUnchanged));
    };
    let store = &app.store;
    let outcome = store
        .tx()
        .update(Slot::Trial, store.clear_session_update(&id, &session.id)?)
        .put(
            Slot::StripeEvent,
            store.stripe_event_put(&event.id, &event.kind, now)?,
        )
        .commit()
        .await?;
    match outcome {
        Written::Committed => Ok(Outcome::CheckoutCleared),
        Written::Rejected(r) if r.failed(Slot::StripeEvent) => Ok(Outcome::Duplicate),
        Written::Rejected(_) => {
            let fresh = record(app, event, now).await?;
            Ok(unless_duplicate(fresh, Outcome::CheckoutUnchanged))
        }
    }
}
