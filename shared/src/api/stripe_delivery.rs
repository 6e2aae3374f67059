//! What every Stripe event handler shares: one outcome vocabulary ([`Outcome`], the webhook's
//! answer, log field and metric) and the dedupe record each handler commits.
//!
//! The invariant: an event's dedupe record (keyed by Stripe's event id) commits in the same
//! transaction as whatever the event changes, or alone when it changes nothing ([`record`]), or
//! with a `trial.payment_unmatched` event ([`record_unmatched`]); a failed dedupe condition is a
//! redelivery, answered `duplicate` ([`unless_duplicate`]). Kept here, below both the checkout
//! (`stripe_webhook`) and the subscription (`stripe_subscription`) handlers, so the two never
//! import each other. The cost: every event writes a dedupe item, an event whose change was
//! refused takes a second transaction to record it, and a new outcome is added here, away from
//! the handler that returns it.
use crate::domain::events::DomainEvent;
use crate::domain::trial::SessionBinding;
use crate::store::{Outcome as Written, Slot, StoreError};
use crate::stripe::event::Event;
use crate::App;

/// What a delivery did, for the response and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Converted,
    AlreadyConverted,
    Unmatched,
    AwaitingPayment,
    /// A payment for a canceled trial: kept, the trial converted, flagged for review.
    ConvertedAfterCancel,
    CheckoutCleared,
    CheckoutUnchanged,
    Ignored,
    Duplicate,
    /// A subscription event written on the trial that holds it (`stripe_subscription`).
    SubscriptionUpdated,
    /// The subscription ended before its first paid invoice: the conversion lapsed.
    SubscriptionLapsed,
    /// An event older than what the trial holds, or about an ended subscription: recorded only.
    SubscriptionUnchanged,
    /// The subscription's first invoice paid with money.
    FirstPayment,
    /// A later paid invoice.
    InvoicePaid,
    /// An invoice payment failed (recorded on the trial).
    PaymentFailed,
    /// Not acted on, and why (a code: `not_our_subscription`, `trial_not_found`, ...).
    IgnoredBecause(&'static str),
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Converted => "converted",
            Outcome::AlreadyConverted => "already_converted",
            Outcome::Unmatched => "unmatched",
            Outcome::AwaitingPayment => "awaiting_payment",
            Outcome::ConvertedAfterCancel => "converted_after_cancel",
            Outcome::CheckoutCleared => "checkout_cleared",
            Outcome::CheckoutUnchanged => "checkout_unchanged",
            Outcome::Ignored | Outcome::IgnoredBecause(_) => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::SubscriptionUpdated => "subscription_updated",
            Outcome::SubscriptionLapsed => "subscription_lapsed",
            Outcome::SubscriptionUnchanged => "subscription_unchanged",
            Outcome::FirstPayment => "first_payment",
            Outcome::InvoicePaid => "invoice_paid",
            Outcome::PaymentFailed => "payment_failed",
        }
    }

    /// Why an event was ignored, when we say.
    pub(super) fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::IgnoredBecause(reason) => Some(reason),
            _ => None,
        }
    }
}

/// `binding` with its plan's product from the catalog (`None`: a plan the catalog no longer
/// has), as [`DomainEvent::for_binding`] takes it: every event carries the product.
pub(super) fn with_product<'a>(
    app: &'a App,
    binding: &'a SessionBinding,
) -> (&'a SessionBinding, Option<&'a str>) {
    let plan = app.config.catalog.get(binding.plan.as_str());
    (binding, plan.map(|p| p.product.id.as_str()))
}

/// Records the event as processed, with no other change; `false` if it already was.
pub(super) async fn record(app: &App, event: &Event, now: i64) -> Result<bool, StoreError> {
    let store = &app.store;
    Ok(store
        .tx()
        .put(
            Slot::StripeEvent,
            store.stripe_event_put(&event.id, &event.kind, now)?,
        )
        .commit()
        .await?
        .committed())
}

/// Records `unmatched` (a `trial.payment_unmatched` event) with the dedupe record, in one
/// transaction; `false` when the event was processed before (nothing written).
pub(super) async fn record_unmatched(
    app: &App,
    event: &Event,
    unmatched: &DomainEvent,
    now: i64,
) -> Result<bool, StoreError> {
    let store = &app.store;
    let outcome = store
        .tx()
        .put(
            Slot::StripeEvent,
            store.stripe_event_put(&event.id, &event.kind, now)?,
        )
        .event(unmatched, now)?
        .commit()
        .await?;
    match outcome {
        Written::Committed => Ok(true),
        Written::Rejected(rejection) if rejection.failed(Slot::StripeEvent) => Ok(false),
        Written::Rejected(rejection) => Err(StoreError::Unavailable(format!(
            "unmatched payment not recorded: {:?}",
            rejection.slots().collect::<Vec<_>>()
        ))),
    }
}

/// `outcome` when the dedupe record was fresh, else `duplicate` (a redelivery had no effect).
pub(super) fn unless_duplicate(fresh: bool, outcome: Outcome) -> Outcome {
    if fresh {
        outcome
    } else {
        Outcome::Duplicate
    }
}
