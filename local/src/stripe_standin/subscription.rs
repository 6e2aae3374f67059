//! The subscription a paid subscription-mode session creates, and the events Stripe sends about
//! it, in the shape of API version `2025-03-31.basil` (the version the stand-in's events say):
//! the billing period on the subscription items (`items.data[].current_period_end`, no longer on
//! the subscription), an invoice's subscription and its metadata snapshot under
//! `parent.subscription_details`. The subscription carries `subscription_data[metadata]`, as
//! Stripe copies it. Nothing here sends anything unless asked
//! ([`super::StripeStandIn::subscription_event`]): the checkout flow's deliveries are unchanged.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trials::crypto::random_hex;

use super::session::Session;

/// A month, as the stand-in's prices bill.
const PERIOD_SECS: i64 = 30 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<String>,
    /// `trialing`, `active`, `past_due`, `canceled`, ...
    pub status: String,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    pub trial_end: Option<i64>,
    pub current_period_start: i64,
    pub current_period_end: i64,
    /// What each period costs, in the currency's minor unit.
    pub amount: i64,
    pub currency: String,
}

/// What happens to a subscription, and the event type it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// `customer.subscription.created`, as it was made (sent by Stripe when checkout completes).
    Created,
    /// `customer.subscription.updated` to `status` (e.g. `active` at the trial's end,
    /// `past_due` after a failed charge).
    Status(String),
    /// `customer.subscription.deleted`: canceled now (from the Dashboard or the API).
    Canceled,
    /// `invoice.paid`: a period charged; the subscription is `active` for the next period.
    InvoicePaid,
    /// `invoice.payment_failed`: the charge failed; the subscription is `past_due`.
    InvoicePaymentFailed,
}

impl SubscriptionChange {
    pub fn event_type(&self) -> &'static str {
        match self {
            SubscriptionChange::Created => "customer.subscription.created",
            SubscriptionChange::Status(_) => "customer.subscription.updated",
            SubscriptionChange::Canceled => "customer.subscription.deleted",
            SubscriptionChange::InvoicePaid => "invoice.paid",
            SubscriptionChange::InvoicePaymentFailed => "invoice.payment_failed",
        }
    }
}

impl Subscription {
    /// The subscription `session` creates when paid at `now`: `trialing` until the session's
    /// trial end, else `active` for a first period.
    pub fn for_session(session: &Session, id: String, now: i64) -> Subscription {
        let end = session.trial_end.unwrap_or(now + PERIOD_SECS);
        Subscription {
            id,
            customer: session.customer.clone(),
            status: if session.trial_end.is_some() {
                "trialing".into()
            } else {
                "active".into()
            },
            metadata: session.subscription_metadata.clone(),
            created: now,
            trial_end: session.trial_end,
            current_period_start: now,
            current_period_end: end,
            amount: session
                .line_item
                .as_ref()
                .map_or(0, |i| i.price.unit_amount * i.quantity),
            currency: session.currency().to_owned(),
        }
    }

    /// Applies `change` at `now`; the object the event carries (the subscription, or for the
    /// invoice events the invoice).
    pub fn apply(&mut self, change: &SubscriptionChange, now: i64) -> Value {
        match change {
            SubscriptionChange::Created => self.to_stripe(),
            SubscriptionChange::Status(status) => {
                self.status = status.clone();
                self.to_stripe()
            }
            SubscriptionChange::Canceled => {
                self.status = "canceled".into();
                self.to_stripe()
            }
            SubscriptionChange::InvoicePaid => {
                self.status = "active".into();
                self.current_period_start = now;
                self.current_period_end = now + PERIOD_SECS;
                self.invoice(now, true)
            }
            SubscriptionChange::InvoicePaymentFailed => {
                self.status = "past_due".into();
                self.invoice(now, false)
            }
        }
    }

    /// The Subscription object (basil: the period on the item).
    pub fn to_stripe(&self) -> Value {
        json!({
            "id": self.id,
            "object": "subscription",
            "customer": self.customer,
            "status": self.status,
            "metadata": self.metadata,
            "created": self.created,
            "trial_end": self.trial_end,
            "items": {
                "object": "list",
                "data": [{
                    "object": "subscription_item",
                    "current_period_start": self.current_period_start,
                    "current_period_end": self.current_period_end,
                    "quantity": 1,
                }],
            },
            "livemode": false,
        })
    }

    /// An invoice for the current period (basil: `parent.subscription_details`).
    fn invoice(&self, now: i64, paid: bool) -> Value {
        json!({
            "id": format!("in_{}", random_hex(12)),
            "object": "invoice",
            "customer": self.customer,
            "status": if paid { "paid" } else { "open" },
            "amount_due": self.amount,
            "amount_paid": if paid { self.amount } else { 0 },
            "currency": self.currency,
            "created": now,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": self.id,
                    "metadata": self.metadata,
                },
            },
            "livemode": false,
        })
    }
}
