//! `POST /v1/webhooks/stripe`: Stripe's deliveries, authenticated by their signature.
//!
//! Nothing is read or written before the `Stripe-Signature` header verifies over the raw body.
//! Then every delivery is deduplicated by Stripe's event id: the dedupe record commits in the
//! same transaction as the change the event makes, so an event either has had its whole effect
//! (and a redelivery is answered 200 with no effect) or none (and a 5xx makes Stripe retry).
//! Deliveries may come in any order; each write is conditional so an older event cannot undo a
//! newer state: a CONVERTED trial is never touched again, and only the session a trial still
//! holds can be cleared.
//!
//! At most two DynamoDB requests per delivery (plus deleting the published outbox item): for a
//! payment, a consistent read of the trial (the `trial.converted` event needs its org and plan)
//! then one transaction; for everything else, a transaction or a put, and a put after it when
//! the trial refused the change. A third only when the trial changed between the read and the
//! write (another delivery converted it, or the purge job deleted it).
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::reply::Reply;
use super::request::header;
use super::LogFields;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::{Trial, TrialId, TrialStatus};
use crate::store::trials::ConvertRejected;
use crate::store::StoreError;
use crate::stripe::event::{Action, CheckoutSession, Event};
use crate::stripe::signature::{self, SignatureError};
use crate::App;

/// What a delivery did, for the response and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Converted,
    AlreadyConverted,
    Unmatched,
    AwaitingPayment,
    CheckoutCleared,
    CheckoutUnchanged,
    Ignored,
    Duplicate,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Converted => "converted",
            Outcome::AlreadyConverted => "already_converted",
            Outcome::Unmatched => "unmatched",
            Outcome::AwaitingPayment => "awaiting_payment",
            Outcome::CheckoutCleared => "checkout_cleared",
            Outcome::CheckoutUnchanged => "checkout_unchanged",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }
}

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
            400,
            "invalid_payload",
            "The body must be a Stripe event: a JSON object with an id and a type",
        )
    })?;

    if let Action::Paid(session) | Action::AwaitingPayment(session) | Action::Closed(session) =
        &event.action
    {
        log.trial_id = session.trial_id().map(|id| id.to_string());
    }
    let outcome = match &event.action {
        Action::Paid(session) => paid(app, &event, session, now, log).await?,
        Action::AwaitingPayment(_) => {
            unless_duplicate(record(app, &event, now).await?, Outcome::AwaitingPayment)
        }
        Action::Closed(session) => closed(app, &event, session, now).await?,
        Action::Ignored => Outcome::Ignored,
    };
    tracing::info!(
        stripe_event_id = %event.id,
        stripe_event_type = %event.kind,
        outcome = outcome.as_str(),
        "Stripe event"
    );
    Ok(Reply::json(
        200,
        &json!({ "received": true, "event_id": event.id, "outcome": outcome.as_str() }),
    ))
}

/// The one answer to every signature failure: the cause is in the log only.
fn invalid_signature() -> ApiError {
    ApiError::new(
        400,
        "invalid_signature",
        "The Stripe-Signature header is missing or does not verify",
    )
}

/// A completed payment: convert the trial, whatever its state but CONVERTED. Money is never
/// dropped: a payment for a trial we do not have is recorded for operators.
async fn paid(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    now: i64,
    log: &mut LogFields,
) -> Result<Outcome, StoreError> {
    let Some(id) = session.trial_id() else {
        return unmatched(app, event, session, None, now).await;
    };
    let trial = match app.store.get_trial(&id).await? {
        None => return unmatched(app, event, session, Some(&id), now).await,
        Some(trial) => trial,
    };
    log.org_id = Some(trial.org_id.to_string());
    if trial.status == TrialStatus::Converted {
        return already_converted(app, event, session, &trial, now).await;
    }

    let converted = DomainEvent::for_trial(
        EventKind::Converted,
        &trial,
        now,
        None,
        json!({
            "stripe_event_id": event.id,
            "checkout_session_id": session.id,
            "stripe_customer_id": session.customer,
            "stripe_subscription_id": session.subscription,
        }),
    );
    let store = &app.store;
    let written = store
        .mark_converted(
            &id,
            &session.payment(),
            now,
            vec![
                put(store.stripe_event_put(&event.id, &event.kind, now)?),
                put(store.outbox_put(&converted, now)?),
            ],
        )
        .await?;
    match written {
        Ok(()) => {
            app.publish_committed(&[converted]).await;
            Ok(Outcome::Converted)
        }
        Err(ConvertRejected::Extra(0)) => Ok(Outcome::Duplicate),
        // The outbox already holds this trial's `trial.converted`: a conversion committed
        // since the read. Stripe's retry will find the trial CONVERTED.
        Err(ConvertRejected::Extra(_)) => Err(StoreError(format!(
            "{} already queued: converted concurrently",
            converted.id
        ))),
        // Between the read and the write: another event converted it, or the purge job ran.
        Err(ConvertRejected::AlreadyConverted(trial)) => {
            already_converted(app, event, session, &trial, now).await
        }
        Err(ConvertRejected::NotFound) => unmatched(app, event, session, Some(&id), now).await,
    }
}

async fn already_converted(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    trial: &Trial,
    now: i64,
) -> Result<Outcome, StoreError> {
    let paid_with = trial.payment.as_ref().and_then(|p| p.session_id.as_deref());
    let fresh = record(app, event, now).await?;
    if fresh && paid_with.is_some_and(|s| s != session.id) {
        // A second checkout session paid for one trial: likely a second subscription to refund.
        tracing::warn!(
            trial_id = %trial.id,
            stripe_event_id = %event.id,
            checkout_session_id = %session.id,
            converted_by_session_id = paid_with.unwrap_or_default(),
            stripe_customer_id = session.customer.as_deref().unwrap_or("-"),
            stripe_subscription_id = session.subscription.as_deref().unwrap_or("-"),
            "payment for a trial already converted by another checkout session"
        );
    }
    Ok(unless_duplicate(fresh, Outcome::AlreadyConverted))
}

/// A payment whose trial we cannot find (no usable reference, or the trial is gone): the
/// dedupe record and a `trial.payment_unmatched` event in one transaction, and an error log.
async fn unmatched(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    trial_id: Option<&TrialId>,
    now: i64,
) -> Result<Outcome, StoreError> {
    let reason = match trial_id {
        Some(_) => "trial_not_found",
        None => "no_trial_reference",
    };
    let unmatched = DomainEvent::unmatched_payment(
        &event.id,
        now,
        json!({
            "stripe_event_type": event.kind,
            "reason": reason,
            "trial_id": trial_id.map(TrialId::as_str),
            "client_reference_id": session.client_reference_id,
            "metadata": session.metadata.clone().map(Value::Object),
            "checkout_session_id": session.id,
            "stripe_customer_id": session.customer,
            "stripe_subscription_id": session.subscription,
            "amount_total": session.amount_total,
            "currency": session.currency,
        }),
    );
    let store = &app.store;
    let items = vec![
        put(store.stripe_event_put(&event.id, &event.kind, now)?),
        put(store.outbox_put(&unmatched, now)?),
    ];
    match store.transact(items).await? {
        Ok(()) => {}
        Err(reasons) if reasons.first().is_some_and(|r| r.condition_failed()) => {
            return Ok(Outcome::Duplicate)
        }
        Err(reasons) => {
            return Err(StoreError(format!(
                "unmatched payment not recorded: {reasons:?}"
            )))
        }
    }
    tracing::error!(
        stripe_event_id = %event.id,
        stripe_event_type = %event.kind,
        reason,
        trial_id = trial_id.map(TrialId::as_str).unwrap_or("-"),
        checkout_session_id = %session.id,
        stripe_customer_id = session.customer.as_deref().unwrap_or("-"),
        stripe_subscription_id = session.subscription.as_deref().unwrap_or("-"),
        amount_total = session.amount_total.unwrap_or_default(),
        currency = session.currency.as_deref().unwrap_or("-"),
        "payment received for no trial: review it (refund, or attach it by hand)"
    );
    app.publish_committed(&[unmatched]).await;
    Ok(Outcome::Unmatched)
}

/// The session can no longer be paid: forget it on the trial, unless the trial converted or
/// holds a newer session meanwhile, in which case only the event is recorded.
async fn closed(
    app: &App,
    event: &Event,
    session: &CheckoutSession,
    now: i64,
) -> Result<Outcome, StoreError> {
    let Some(id) = session.trial_id() else {
        let fresh = record(app, event, now).await?;
        return Ok(unless_duplicate(fresh, Outcome::CheckoutUnchanged));
    };
    let store = &app.store;
    let items = vec![
        update(store.clear_checkout_update(&id, &session.id)?),
        put(store.stripe_event_put(&event.id, &event.kind, now)?),
    ];
    match store.transact(items).await? {
        Ok(()) => Ok(Outcome::CheckoutCleared),
        Err(reasons) if reasons.get(1).is_some_and(|r| r.condition_failed()) => {
            Ok(Outcome::Duplicate)
        }
        Err(reasons) if reasons.first().is_some_and(|r| r.condition_failed()) => {
            let fresh = record(app, event, now).await?;
            Ok(unless_duplicate(fresh, Outcome::CheckoutUnchanged))
        }
        Err(reasons) => Err(StoreError(format!(
            "checkout not cleared without a failed condition: {reasons:?}"
        ))),
    }
}

/// Records the event as processed, with no other change; `false` if it already was.
async fn record(app: &App, event: &Event, now: i64) -> Result<bool, StoreError> {
    let store = &app.store;
    store
        .put_conditional(store.stripe_event_put(&event.id, &event.kind, now)?)
        .await
}

fn unless_duplicate(fresh: bool, outcome: Outcome) -> Outcome {
    if fresh {
        outcome
    } else {
        Outcome::Duplicate
    }
}

fn put(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

fn update(update: Update) -> TransactWriteItem {
    TransactWriteItem::builder().update(update).build()
}
