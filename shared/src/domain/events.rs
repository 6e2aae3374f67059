//! Domain events: what happened to a trial, written to the table with the change and published
//! to EventBridge from the table's stream. Each has a deterministic id (subject + transition) so
//! consumers can deduplicate the repeats that at-least-once delivery brings.
use serde_json::{json, Value};

use super::time::rfc3339;
use super::trial::SessionBinding;
use super::{OrgId, Plan, Trial, TrialId};

/// EventBridge `Source` of every event.
pub const SOURCE: &str = "trials";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Expired,
    Canceled,
    CheckoutCreated,
    Converted,
    Purged,
    UnmatchedPayment,
    /// An option's usage first reached 80 % of its limit (once per trial and option).
    LimitWarning,
    /// An option's usage reached its limit (once per trial and option).
    LimitReached,
}

impl EventKind {
    /// The EventBridge `DetailType`.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::Started => "trial.started",
            EventKind::Expired => "trial.expired",
            EventKind::Canceled => "trial.canceled",
            EventKind::CheckoutCreated => "trial.checkout_created",
            EventKind::Converted => "trial.converted",
            EventKind::Purged => "trial.purged",
            EventKind::UnmatchedPayment => "trial.payment_unmatched",
            EventKind::LimitWarning => "trial.limit_warning",
            EventKind::LimitReached => "trial.limit_reached",
        }
    }

    fn suffix(self) -> &'static str {
        self.detail_type().trim_start_matches("trial.")
    }
}

/// An event ready to publish: `detail` is the JSON string EventBridge carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    pub id: String,
    pub kind: EventKind,
    pub detail: String,
}

impl DomainEvent {
    /// `occurred_at` is part of the detail; `discriminator` distinguishes repeatable transitions
    /// (each checkout session is its own `checkout_created`).
    pub fn for_trial(
        kind: EventKind,
        trial: &Trial,
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        DomainEvent::new(
            kind,
            &trial.id,
            &trial.org_id,
            &trial.plan,
            occurred_at,
            discriminator,
            extra,
        )
    }

    fn new(
        kind: EventKind,
        trial_id: &TrialId,
        org_id: &OrgId,
        plan: &Plan,
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        let id = match discriminator {
            Some(d) => format!("{}.{}.{}", trial_id, kind.suffix(), d),
            None => format!("{}.{}", trial_id, kind.suffix()),
        };
        let mut detail = json!({
            "event_id": id,
            "type": kind.detail_type(),
            "trial_id": trial_id.as_str(),
            "org_id": org_id.as_str(),
            "plan": plan.as_str(),
            "occurred_at": rfc3339(occurred_at),
        });
        merge(&mut detail, extra);
        DomainEvent {
            detail: detail.to_string(),
            id,
            kind,
        }
    }

    /// An event about the trial a Checkout Session is bound to, when only the binding is known
    /// (the webhook writes without reading the trial: the binding was checked in the write's
    /// condition).
    pub fn for_binding(
        kind: EventKind,
        binding: &SessionBinding,
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        DomainEvent::new(
            kind,
            &binding.trial_id,
            &binding.org_id,
            &binding.plan,
            occurred_at,
            discriminator,
            extra,
        )
    }

    /// A payment for a trial we no longer have (purged, or never ours): operators must see it.
    pub fn unmatched_payment(stripe_event_id: &str, occurred_at: i64, extra: Value) -> DomainEvent {
        let kind = EventKind::UnmatchedPayment;
        let id = format!("{stripe_event_id}.{}", kind.suffix());
        let mut detail = json!({
            "event_id": id,
            "type": kind.detail_type(),
            "stripe_event_id": stripe_event_id,
            "occurred_at": rfc3339(occurred_at),
        });
        merge(&mut detail, extra);
        DomainEvent {
            detail: detail.to_string(),
            id,
            kind,
        }
    }

    pub fn from_parts(id: String, detail_type: &str, detail: String) -> Option<DomainEvent> {
        let kind = [
            EventKind::Started,
            EventKind::Expired,
            EventKind::Canceled,
            EventKind::CheckoutCreated,
            EventKind::Converted,
            EventKind::Purged,
            EventKind::UnmatchedPayment,
            EventKind::LimitWarning,
            EventKind::LimitReached,
        ]
        .into_iter()
        .find(|k| k.detail_type() == detail_type)?;
        Some(DomainEvent { id, kind, detail })
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}
