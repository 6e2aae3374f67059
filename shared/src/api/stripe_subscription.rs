//! The webhook's subscription and invoice events: the trial follows the Stripe subscription its
//! conversion created (`customer.subscription.created` / `.updated` / `.deleted`,
//! `invoice.paid`, `invoice.payment_failed`).
//!
//! Each event is bound by the subscription's metadata (trial, org, plan: convert sets them
//! through `subscription_data[metadata]`; an invoice carries them in
//! `parent.subscription_details.metadata`) and acts only on the trial that holds this
//! subscription (or none yet: Stripe sends `customer.subscription.created` and the first
//! `invoice.paid` in any order with the checkout's completion). The order of events is Stripe's
//! `created`, kept as a watermark in the write's condition, so an older event never undoes a
//! newer one and an ended subscription is never revived (`store::subscriptions`). Every event
//! commits with its dedupe record: a redelivery is `duplicate`.
//!
//! Steps: [`subscription`] writes the state (and first tries the lapse when the status ends it);
//! [`invoice`] writes the first paid invoice (`trial.first_payment`) or a failure. A rejected
//! write is explained by the trial as it was ([`Mismatch::of`]): money that matches no trial is
//! recorded as `trial.payment_unmatched`, anything else is answered with a reason.
use aws_sdk_dynamodb::types::Update;
use serde_json::json;

use super::stripe_delivery::{record, record_unmatched, unless_duplicate, with_product, Outcome};
use super::LogFields;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::state_machine::{subscription_ended, Billing};
use crate::domain::time::rfc3339;
use crate::domain::trial::SessionBinding;
use crate::domain::Trial;
use crate::store::subscriptions::SubscriptionWrite;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome as Written, Rejection, Slot, StoreError};
use crate::stripe::event::{Event, Invoice, SubscriptionState};
use crate::App;

/// Why a write bound to a trial was refused, from the trial as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    /// Purged, or never existed.
    TrialNotFound,
    /// Another org's or plan's trial than the metadata says.
    OtherBinding,
    /// The trial holds another subscription.
    OtherSubscription,
    /// The subscription lapsed before this payment.
    AfterLapse,
    /// The trial holds this subscription: the event is older, the subscription ended, or the
    /// change was made already.
    Unchanged,
}

impl Mismatch {
    fn of(trial: Option<&Trial>, binding: &SessionBinding, subscription: &str) -> Mismatch {
        let Some(trial) = trial else {
            return Mismatch::TrialNotFound;
        };
        if trial.org_id != binding.org_id || trial.trialled_plan() != &binding.plan {
            return Mismatch::OtherBinding;
        }
        match &trial.subscription {
            Some(held) if held.id != subscription => Mismatch::OtherSubscription,
            Some(held) if held.billing() == Billing::Lapsed => Mismatch::AfterLapse,
            _ => Mismatch::Unchanged,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Mismatch::TrialNotFound => "trial_not_found",
            Mismatch::OtherBinding => "binding_mismatch",
            Mismatch::OtherSubscription => "not_the_trials_subscription",
            Mismatch::AfterLapse => "subscription_lapsed",
            Mismatch::Unchanged => "unchanged",
        }
    }
}

/// The trial's write was refused (not the dedupe record): why.
fn mismatch(
    rejection: &Rejection,
    binding: &SessionBinding,
    subscription: &str,
) -> Result<Mismatch, StoreError> {
    if !rejection.failed(Slot::Trial) {
        // Only an event item's condition failed: written concurrently; Stripe's retry decides.
        return Err(StoreError::Unavailable(format!(
            "subscription event refused on {:?}",
            rejection.slots().collect::<Vec<_>>()
        )));
    }
    Ok(Mismatch::of(
        rejected_trial(rejection)?.as_ref(),
        binding,
        subscription,
    ))
}

/// Records the event only, answering `ignored` with `reason` (or `duplicate`).
async fn ignored(
    app: &App,
    event: &Event,
    reason: &'static str,
    now: i64,
) -> Result<Outcome, StoreError> {
    let fresh = record(app, event, now).await?;
    Ok(unless_duplicate(fresh, Outcome::IgnoredBecause(reason)))
}

/// `update` on the trial with the event's dedupe record (and `published`, if any) in one
/// transaction.
async fn commit(
    app: &App,
    event: &Event,
    update: Update,
    published: Option<&DomainEvent>,
    now: i64,
) -> Result<Written, StoreError> {
    let store = &app.store;
    let mut tx = store.tx().update(Slot::Trial, update).put(
        Slot::StripeEvent,
        store.stripe_event_put(&event.id, &event.kind, now)?,
    );
    if let Some(published) = published {
        tx = tx.event(published, now)?;
    }
    tx.commit().await
}

/// `customer.subscription.*`: the subscription's state, on the trial that holds it.
pub(super) async fn subscription(
    app: &App,
    event: &Event,
    sub: &SubscriptionState,
    now: i64,
    log: &mut LogFields,
) -> Result<Outcome, StoreError> {
    let Some(binding) = sub.binding() else {
        return ignored(app, event, "not_our_subscription", now).await;
    };
    log.trial_id = Some(binding.trial_id.to_string());
    log.org_id = Some(binding.org_id.to_string());
    let write = SubscriptionWrite {
        id: &sub.id,
        status: &sub.status,
        current_period_end: sub.current_period_end,
        at: sub.event_created,
        lapse: subscription_ended(&sub.status),
    };
    if write.lapse {
        if let Some(outcome) = lapse(app, event, &binding, write, now).await? {
            return Ok(outcome);
        }
    }
    let store = &app.store;
    let plain = SubscriptionWrite {
        lapse: false,
        ..write
    };
    let written = commit(
        app,
        event,
        store.subscription_update(&binding, plain)?,
        None,
        now,
    )
    .await?;
    let rejection = match written {
        Written::Committed => return Ok(Outcome::SubscriptionUpdated),
        Written::Rejected(r) if r.failed(Slot::StripeEvent) => return Ok(Outcome::Duplicate),
        Written::Rejected(r) => r,
    };
    match mismatch(&rejection, &binding, &sub.id)? {
        Mismatch::Unchanged | Mismatch::AfterLapse => Ok(unless_duplicate(
            record(app, event, now).await?,
            Outcome::SubscriptionUnchanged,
        )),
        other => ignored(app, event, other.reason(), now).await,
    }
}

/// The subscription ended: if the trial is CONVERTED and was never paid, it lapses, with
/// `trial.subscription_lapsed`, in one transaction. `None`: it did not (the plain write says
/// what the event does instead).
async fn lapse(
    app: &App,
    event: &Event,
    binding: &SessionBinding,
    write: SubscriptionWrite<'_>,
    now: i64,
) -> Result<Option<Outcome>, StoreError> {
    let lapsed = DomainEvent::for_binding(
        EventKind::SubscriptionLapsed,
        with_product(app, binding),
        write.at,
        None,
        json!({
            "stripe_event_id": event.id,
            "stripe_subscription_id": write.id,
            "subscription_status": write.status,
        }),
    );
    let store = &app.store;
    let update = store.subscription_update(binding, write)?;
    let written = commit(app, event, update, Some(&lapsed), now).await?;
    Ok(match written {
        Written::Committed => {
            tracing::warn!(
                trial_id = %binding.trial_id,
                stripe_event_id = %event.id,
                stripe_subscription_id = write.id,
                "the subscription ended before its first payment: the conversion lapsed"
            );
            Some(Outcome::SubscriptionLapsed)
        }
        Written::Rejected(r) if r.failed(Slot::StripeEvent) => Some(Outcome::Duplicate),
        Written::Rejected(_) => None,
    })
}

/// `invoice.paid` / `invoice.payment_failed` of the subscription a trial holds. Money that
/// matches no trial is recorded unmatched; a failure or a 0-amount invoice that matches
/// nothing is ignored with a reason.
pub(super) async fn invoice(
    app: &App,
    event: &Event,
    invoice: &Invoice,
    now: i64,
    log: &mut LogFields,
) -> Result<Outcome, StoreError> {
    let (Some(binding), Some(sub)) = (invoice.binding(), invoice.subscription.as_deref()) else {
        return no_trial(app, event, invoice, "not_our_subscription", now).await;
    };
    log.trial_id = Some(binding.trial_id.to_string());
    log.org_id = Some(binding.org_id.to_string());
    let paid = Paid {
        event,
        invoice,
        binding: &binding,
        sub,
        now,
    };
    if !invoice.paid {
        return payment_failed(app, &paid).await;
    }
    if !invoice.carries_money() {
        // A trial's 0-amount invoice: the subscription is trialing, nothing was paid.
        return ignored(app, event, "no_amount_paid", now).await;
    }
    let rejection = match first_payment(app, &paid, None).await? {
        Ok(outcome) => return Ok(outcome),
        Err(rejection) => rejection,
    };
    let trial = rejected_trial(&rejection)?;
    let held = trial.as_ref().and_then(|t| t.subscription.as_ref());
    let revokes_lapse = held.is_some_and(|h| {
        h.id == sub
            && h.first_paid_at.is_none()
            && h.lapsed_at.is_some_and(|at| at >= invoice.event_created)
    });
    if let (true, Some(lapsed_at)) = (revokes_lapse, held.and_then(|h| h.lapsed_at)) {
        if let Ok(outcome) = first_payment(app, &paid, Some(lapsed_at)).await? {
            return Ok(outcome);
        }
    }
    match mismatch(&rejection, &binding, sub)? {
        // Already paid once: a later invoice on the trial's own subscription.
        Mismatch::Unchanged => Ok(unless_duplicate(
            record(app, event, now).await?,
            Outcome::InvoicePaid,
        )),
        other => no_trial(app, event, invoice, other.reason(), now).await,
    }
}

/// One invoice event bound to a trial.
struct Paid<'a> {
    event: &'a Event,
    invoice: &'a Invoice,
    binding: &'a SessionBinding,
    sub: &'a str,
    now: i64,
}

/// The first paid invoice, with `trial.first_payment`, in one transaction; `lapsed_at`: over
/// the lapse of then, which it revokes (the event is dated the lapse's time, so the funnel
/// takes the lapse back on the day it counted it). `Err`: the trial's write was refused.
async fn first_payment(
    app: &App,
    paid: &Paid<'_>,
    lapsed_at: Option<i64>,
) -> Result<Result<Outcome, Rejection>, StoreError> {
    let Paid {
        event,
        invoice,
        binding,
        sub,
        now,
    } = *paid;
    let store = &app.store;
    let after_lapse = lapsed_at.is_some();
    let first = DomainEvent::for_binding(
        EventKind::FirstPayment,
        with_product(app, binding),
        lapsed_at.unwrap_or(invoice.event_created),
        None,
        json!({
            "stripe_event_id": event.id,
            "stripe_subscription_id": sub,
            "stripe_invoice_id": invoice.id,
            "amount_paid": invoice.amount_paid,
            "currency": invoice.currency,
            "first_paid_at": rfc3339(invoice.event_created),
            "lapse_revoked": after_lapse,
        }),
    );
    let update = store.first_payment_update(binding, sub, invoice.event_created, after_lapse)?;
    let written = commit(app, event, update, Some(&first), now).await?;
    Ok(match written {
        Written::Committed => Ok(Outcome::FirstPayment),
        Written::Rejected(r) if r.failed(Slot::StripeEvent) => Ok(Outcome::Duplicate),
        Written::Rejected(r) => Err(r),
    })
}

/// A failed invoice payment of the subscription the trial holds: recorded on the trial (the
/// status follows in `customer.subscription.updated`).
async fn payment_failed(app: &App, paid: &Paid<'_>) -> Result<Outcome, StoreError> {
    let (event, binding, sub, now) = (paid.event, paid.binding, paid.sub, paid.now);
    let update = app
        .store
        .payment_failed_update(binding, sub, paid.invoice.event_created)?;
    let written = commit(app, event, update, None, now).await?;
    let rejection = match written {
        Written::Committed => return Ok(Outcome::PaymentFailed),
        Written::Rejected(r) if r.failed(Slot::StripeEvent) => return Ok(Outcome::Duplicate),
        Written::Rejected(r) => r,
    };
    let reason = mismatch(&rejection, binding, sub)?.reason();
    ignored(app, event, reason, now).await
}

/// An invoice for no trial that holds its subscription: money is recorded unmatched (never
/// dropped), anything else ignored with `reason`.
async fn no_trial(
    app: &App,
    event: &Event,
    invoice: &Invoice,
    reason: &'static str,
    now: i64,
) -> Result<Outcome, StoreError> {
    if !invoice.carries_money() {
        return ignored(app, event, reason, now).await;
    }
    let trial_id = invoice.binding().map(|b| b.trial_id.to_string());
    let unmatched = DomainEvent::unmatched_payment(
        &event.id,
        now,
        json!({
            "stripe_event_type": event.kind,
            "reason": reason,
            "trial_id": trial_id,
            "stripe_invoice_id": invoice.id,
            "stripe_subscription_id": invoice.subscription,
            "stripe_customer_id": invoice.customer,
            "amount_paid": invoice.amount_paid,
            "currency": invoice.currency,
        }),
    );
    if !record_unmatched(app, event, &unmatched, now).await? {
        return Ok(Outcome::Duplicate);
    }
    tracing::error!(
        stripe_event_id = %event.id,
        stripe_event_type = %event.kind,
        reason,
        trial_id = trial_id.as_deref().unwrap_or("-"),
        stripe_invoice_id = %invoice.id,
        stripe_subscription_id = invoice.subscription.as_deref().unwrap_or("-"),
        amount_paid = invoice.amount_paid,
        currency = invoice.currency.as_deref().unwrap_or("-"),
        "invoice paid for no trial: review it (refund, or attach it by hand)"
    );
    crate::metrics::payment_unmatched();
    Ok(Outcome::Unmatched)
}
