//! The few fields of a Stripe event the webhook acts on, parsed strictly enough to trust and
//! loosely enough that Stripe adding fields (or API versions moving them around) changes nothing.
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::trial::{Payment, SessionBinding};
use crate::domain::{OrgId, Plan, TrialId};

/// Longest event id we store as a key (Stripe's are ~30 characters).
const MAX_ID_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub action: Action,
}

/// What an event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The session's payment is complete: convert its trial.
    Paid(CheckoutSession),
    /// The session completed but its payment is still pending (bank debits and the like):
    /// `checkout.session.async_payment_succeeded` or `_failed` follows.
    AwaitingPayment(CheckoutSession),
    /// The session can no longer be paid (expired, or its async payment failed): forget it.
    Closed(CheckoutSession),
    /// `customer.subscription.created`, `.updated` or `.deleted`: the subscription's state now.
    Subscription(SubscriptionState),
    /// `invoice.paid` or `invoice.payment_failed` of a subscription's invoice.
    Invoice(Invoice),
    /// Not an event we act on.
    Ignored,
}

/// The trial, org and plan a subscription (or its invoice) names in its metadata: convert sets
/// them through `subscription_data[metadata]`, as on the session. All three, or none.
fn metadata_binding(metadata: Option<&Map<String, Value>>) -> Option<SessionBinding> {
    let metadata = metadata?;
    let field = |name: &str| metadata.get(name).and_then(Value::as_str);
    Some(SessionBinding {
        trial_id: TrialId::parse(field("trial_id")?)?,
        org_id: OrgId::parse(field("org_id")?)?,
        plan: Plan::parse(field("plan")?)?,
    })
}

/// A Stripe Subscription as a `customer.subscription.*` event carries it, with the event's
/// `created` (Stripe's order of changes: events are not delivered in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub id: String,
    pub status: String,
    /// The subscription's `current_period_end` (API versions before 2025-03-31.basil), else
    /// the latest of its items' (basil moved it to the subscription items).
    pub current_period_end: Option<i64>,
    pub metadata: Option<Map<String, Value>>,
    pub customer: Option<String>,
    /// The event's `created` (epoch seconds).
    pub event_created: i64,
}

impl SubscriptionState {
    pub fn binding(&self) -> Option<SessionBinding> {
        metadata_binding(self.metadata.as_ref())
    }
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    status: String,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    items: Option<RawList>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default)]
    data: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    current_period_end: Option<i64>,
}

/// An invoice of a subscription, as `invoice.paid` / `invoice.payment_failed` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    /// `parent.subscription_details.subscription` (2025-03-31.basil and later), else the
    /// top-level `subscription` of earlier versions.
    pub subscription: Option<String>,
    /// The subscription's metadata as the invoice snapshots it: `parent.subscription_details
    /// .metadata`, else `subscription_details.metadata` (invoices from 2023-06-29 on).
    pub metadata: Option<Map<String, Value>>,
    pub amount_paid: i64,
    pub currency: Option<String>,
    pub customer: Option<String>,
    /// `invoice.paid` (true) or `invoice.payment_failed`.
    pub paid: bool,
    pub event_created: i64,
}

impl Invoice {
    pub fn binding(&self) -> Option<SessionBinding> {
        metadata_binding(self.metadata.as_ref())
    }

    /// Money was received: a trial's 0-amount invoice is "paid" too, and is not a payment.
    pub fn carries_money(&self) -> bool {
        self.paid && self.amount_paid > 0
    }
}

#[derive(Deserialize)]
struct RawInvoice {
    id: String,
    #[serde(default)]
    parent: Option<RawParent>,
    #[serde(default, deserialize_with = "expandable")]
    subscription: Option<String>,
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
    #[serde(default)]
    amount_paid: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
}

#[derive(Deserialize)]
struct RawParent {
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionDetails {
    #[serde(default, deserialize_with = "expandable")]
    subscription: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

fn subscription_state(object: Value, created: i64) -> Result<SubscriptionState, Malformed> {
    let raw: RawSubscription = serde_json::from_value(object)
        .map_err(|e| Malformed(format!("data.object is not a subscription: {e}")))?;
    let from_items = raw
        .items
        .iter()
        .flat_map(|list| list.data.iter())
        .filter_map(|item| item.current_period_end)
        .max();
    Ok(SubscriptionState {
        id: raw.id,
        status: raw.status,
        current_period_end: raw.current_period_end.or(from_items),
        metadata: raw.metadata,
        customer: raw.customer,
        event_created: created,
    })
}

fn invoice(object: Value, created: i64, paid: bool) -> Result<Invoice, Malformed> {
    let raw: RawInvoice = serde_json::from_value(object)
        .map_err(|e| Malformed(format!("data.object is not an invoice: {e}")))?;
    let parent = raw.parent.and_then(|p| p.subscription_details);
    let (parent_subscription, parent_metadata) = match parent {
        Some(d) => (d.subscription, d.metadata),
        None => (None, None),
    };
    let (old_subscription, old_metadata) = match raw.subscription_details {
        Some(d) => (d.subscription, d.metadata),
        None => (None, None),
    };
    Ok(Invoice {
        id: raw.id,
        subscription: parent_subscription
            .or(raw.subscription)
            .or(old_subscription),
        metadata: parent_metadata.or(old_metadata),
        amount_paid: raw.amount_paid.unwrap_or(0),
        currency: raw.currency,
        customer: raw.customer,
        paid,
        event_created: created,
    })
}

/// The fields of a Checkout Session we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub payment_status: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    pub subscription: Option<String>,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// `subscription` for every session convert creates.
    #[serde(default)]
    pub mode: Option<String>,
}

impl CheckoutSession {
    /// The trial this session pays for: `client_reference_id`, else `metadata.trial_id`; the
    /// first that is an id we could have issued.
    pub fn trial_id(&self) -> Option<TrialId> {
        let from_metadata = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("trial_id"))
            .and_then(Value::as_str);
        [self.client_reference_id.as_deref(), from_metadata]
            .into_iter()
            .flatten()
            .find_map(TrialId::parse)
    }

    /// The trial, org and plan this session was created for, if it is one of ours: a
    /// subscription session whose metadata (which only the merchant sets) names all three, and
    /// whose `client_reference_id`, when present, names the same trial.
    pub fn binding(&self) -> Option<SessionBinding> {
        if self.mode.as_deref() != Some("subscription") {
            return None;
        }
        let metadata = self.metadata.as_ref()?;
        let field = |name: &str| metadata.get(name).and_then(Value::as_str);
        let binding = SessionBinding {
            trial_id: TrialId::parse(field("trial_id")?)?,
            org_id: OrgId::parse(field("org_id")?)?,
            plan: Plan::parse(field("plan")?)?,
        };
        match self.client_reference_id.as_deref() {
            Some(reference) if reference != binding.trial_id.as_str() => None,
            _ => Some(binding),
        }
    }

    /// When the trial started, as convert wrote it into the metadata (`trial_started_at`, epoch
    /// seconds): for the funnel's time-to-convert, without reading the trial.
    pub fn trial_started_at(&self) -> Option<i64> {
        self.metadata
            .as_ref()?
            .get("trial_started_at")?
            .as_str()?
            .parse()
            .ok()
    }

    pub fn payment(&self) -> Payment {
        Payment {
            session_id: Some(self.id.clone()),
            customer_id: self.customer.clone(),
            subscription_id: self.subscription.clone(),
        }
    }
}

/// Why a body is not an event we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<Data>,
    /// When Stripe created the event: the order of a subscription's changes.
    #[serde(default)]
    created: Option<i64>,
}

#[derive(Deserialize)]
struct Data {
    object: Value,
}

impl Event {
    /// Parses the raw body of a delivery. `Malformed` when it is not JSON, has no string `id`
    /// and `type`, or is a checkout event whose object is not a session.
    pub fn parse(body: &[u8]) -> Result<Event, Malformed> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| Malformed(e.to_string()))?;
        if envelope.id.is_empty() || envelope.id.len() > MAX_ID_LEN {
            return Err(Malformed("id must be 1-255 characters".into()));
        }
        if envelope.kind.is_empty() {
            return Err(Malformed("type is empty".into()));
        }
        let object = envelope.data.map(|d| d.object);
        if let Some(action) = billing_action(&envelope.kind, object.clone(), envelope.created)? {
            return Ok(Event {
                id: envelope.id,
                kind: envelope.kind,
                action,
            });
        }
        let session = move || -> Result<CheckoutSession, Malformed> {
            let object = object.ok_or_else(|| Malformed("no data.object".into()))?;
            serde_json::from_value(object)
                .map_err(|e| Malformed(format!("data.object is not a checkout session: {e}")))
        };
        let action = match envelope.kind.as_str() {
            "checkout.session.completed" => {
                let session = session()?;
                match session.payment_status.as_deref() {
                    Some("paid" | "no_payment_required") => Action::Paid(session),
                    _ => Action::AwaitingPayment(session),
                }
            }
            "checkout.session.async_payment_succeeded" => Action::Paid(session()?),
            "checkout.session.expired" | "checkout.session.async_payment_failed" => {
                Action::Closed(session()?)
            }
            _ => Action::Ignored,
        };
        Ok(Event {
            id: envelope.id,
            kind: envelope.kind,
            action,
        })
    }
}

/// The subscription and invoice events we follow; `None` for any other type. They need the
/// event's `created`, which orders them.
fn billing_action(
    kind: &str,
    object: Option<Value>,
    created: Option<i64>,
) -> Result<Option<Action>, Malformed> {
    if !matches!(
        kind,
        "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "invoice.paid"
            | "invoice.payment_failed"
    ) {
        return Ok(None);
    }
    let object = object.ok_or_else(|| Malformed("no data.object".into()))?;
    let created = created.ok_or_else(|| Malformed("no created".into()))?;
    Ok(Some(match kind {
        "invoice.paid" => Action::Invoice(invoice(object, created, true)?),
        "invoice.payment_failed" => Action::Invoice(invoice(object, created, false)?),
        _ => Action::Subscription(subscription_state(object, created)?),
    }))
}

/// Stripe sends a related object as its id, or as the object itself when expanded.
fn expandable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(id)) => Some(id),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRIAL: &str = "trial_0123456789abcdef01234567";

    fn event(kind: &str, object: Value) -> Result<Event, Malformed> {
        Event::parse(
            json!({ "id": "evt_1", "type": kind, "data": { "object": object } })
                .to_string()
                .as_bytes(),
        )
    }

    #[test]
    fn completed_converts_only_when_paid() {
        for (status, paid) in [
            ("paid", true),
            ("no_payment_required", true),
            ("unpaid", false),
        ] {
            let e = event(
                "checkout.session.completed",
                json!({ "id": "cs_1", "payment_status": status, "client_reference_id": TRIAL }),
            )
            .unwrap();
            assert_eq!(matches!(e.action, Action::Paid(_)), paid, "{status}");
            assert_eq!(
                matches!(e.action, Action::AwaitingPayment(_)),
                !paid,
                "{status}"
            );
        }
        let e = event(
            "checkout.session.async_payment_succeeded",
            json!({ "id": "cs_1", "payment_status": "paid" }),
        )
        .unwrap();
        assert!(matches!(e.action, Action::Paid(_)));
        for kind in [
            "checkout.session.expired",
            "checkout.session.async_payment_failed",
        ] {
            assert!(matches!(
                event(kind, json!({ "id": "cs_1" })).unwrap().action,
                Action::Closed(_)
            ));
        }
        let other = event("invoice.created", json!({ "id": "in_1" })).unwrap();
        assert_eq!(
            (other.id.as_str(), other.action),
            ("evt_1", Action::Ignored)
        );
    }

    #[test]
    fn trial_id_from_reference_else_metadata() {
        let session =
            |object: Value| -> CheckoutSession { serde_json::from_value(object).unwrap() };
        let other = "trial_ffffffffffffffffffffffff";
        assert_eq!(
            session(json!({ "id": "cs", "client_reference_id": TRIAL, "metadata": { "trial_id": other } }))
                .trial_id()
                .unwrap()
                .as_str(),
            TRIAL
        );
        assert_eq!(
            session(json!({ "id": "cs", "client_reference_id": null, "metadata": { "trial_id": other } }))
                .trial_id()
                .unwrap()
                .as_str(),
            other
        );
        assert_eq!(
            session(json!({ "id": "cs", "client_reference_id": "nope", "metadata": { "trial_id": other } }))
                .trial_id()
                .unwrap()
                .as_str(),
            other
        );
        assert_eq!(
            session(json!({ "id": "cs", "client_reference_id": "nope" })).trial_id(),
            None
        );
        assert_eq!(
            session(json!({ "id": "cs", "metadata": {} })).trial_id(),
            None
        );
    }

    #[test]
    fn customer_and_subscription_as_ids_or_expanded() {
        let s: CheckoutSession = serde_json::from_value(json!({
            "id": "cs_1", "customer": "cus_1", "subscription": { "id": "sub_1", "object": "subscription" }
        }))
        .unwrap();
        assert_eq!(
            s.payment(),
            Payment {
                session_id: Some("cs_1".into()),
                customer_id: Some("cus_1".into()),
                subscription_id: Some("sub_1".into()),
            }
        );
        let s: CheckoutSession =
            serde_json::from_value(json!({ "id": "cs_1", "customer": null })).unwrap();
        assert_eq!(s.customer, None);
        assert_eq!(s.subscription, None);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":"checkout.session.completed"}"#,
            r#"{"id":"evt_1"}"#,
            r#"{"id":"","type":"x"}"#,
            r#"{"id":"evt_1","type":""}"#,
            r#"{"id":7,"type":"x"}"#,
            r#"{"id":"evt_1","type":"checkout.session.completed"}"#,
            r#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"object":"checkout.session"}}}"#,
        ] {
            assert!(Event::parse(body.as_bytes()).is_err(), "{body}");
        }
        let long = json!({ "id": "e".repeat(256), "type": "x" }).to_string();
        assert!(Event::parse(long.as_bytes()).is_err());
        // Unknown types need no data at all.
        assert!(Event::parse(br#"{"id":"evt_1","type":"customer.created"}"#).is_ok());
    }

    #[test]
    fn the_committed_sample_event_parses() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../events/stripe-webhook.json")).unwrap();
        let e = Event::parse(sample["body"].as_str().unwrap().as_bytes()).unwrap();
        let Action::Paid(session) = e.action else {
            panic!("{:?}", e.action)
        };
        assert_eq!(session.trial_id().unwrap().as_str(), TRIAL);
        assert_eq!(
            session.subscription.as_deref(),
            Some("sub_1RXk2lLocal0000000000001")
        );
    }

    fn billing_event(kind: &str, object: Value) -> Result<Event, Malformed> {
        Event::parse(
            json!({ "id": "evt_1", "type": kind, "created": 1_000, "data": { "object": object } })
                .to_string()
                .as_bytes(),
        )
    }

    #[test]
    fn subscriptions_read_their_period_end_where_the_api_version_puts_it() {
        let metadata = json!({ "trial_id": TRIAL, "org_id": "org_a", "plan": "growth" });
        // 2025-03-31.basil: on the items only.
        let basil = billing_event(
            "customer.subscription.updated",
            json!({ "id": "sub_1", "status": "active", "metadata": metadata,
                    "items": { "data": [ { "current_period_end": 5 }, { "current_period_end": 9 } ] } }),
        )
        .unwrap();
        let Action::Subscription(s) = basil.action else {
            panic!("{:?}", basil.action)
        };
        assert_eq!((s.current_period_end, s.event_created), (Some(9), 1_000));
        assert_eq!(s.binding().unwrap().trial_id.as_str(), TRIAL);
        // Before basil: on the subscription.
        let old = billing_event(
            "customer.subscription.deleted",
            json!({ "id": "sub_1", "status": "canceled", "current_period_end": 7 }),
        )
        .unwrap();
        let Action::Subscription(s) = old.action else {
            panic!()
        };
        assert_eq!((s.current_period_end, s.binding()), (Some(7), None));
        // No `created`, no status: not an event we can order.
        assert!(Event::parse(
            json!({ "id": "e", "type": "customer.subscription.updated",
                    "data": { "object": { "id": "sub_1", "status": "active" } } })
            .to_string()
            .as_bytes()
        )
        .is_err());
        assert!(billing_event("customer.subscription.updated", json!({ "id": "sub_1" })).is_err());
    }

    #[test]
    fn invoices_read_their_subscription_from_parent_or_the_older_fields() {
        let metadata = json!({ "trial_id": TRIAL, "org_id": "org_a", "plan": "growth" });
        let basil = billing_event(
            "invoice.paid",
            json!({ "id": "in_1", "amount_paid": 4900, "currency": "usd",
                    "parent": { "type": "subscription_details",
                                "subscription_details": { "subscription": "sub_1", "metadata": metadata } } }),
        )
        .unwrap();
        let Action::Invoice(i) = basil.action else {
            panic!()
        };
        assert_eq!(i.subscription.as_deref(), Some("sub_1"));
        assert!(i.carries_money() && i.binding().is_some());
        let old = billing_event(
            "invoice.payment_failed",
            json!({ "id": "in_2", "amount_paid": 0, "subscription": "sub_2",
                    "subscription_details": { "metadata": metadata } }),
        )
        .unwrap();
        let Action::Invoice(i) = old.action else {
            panic!()
        };
        assert_eq!(i.subscription.as_deref(), Some("sub_2"));
        assert!(!i.carries_money() && i.binding().is_some());
        let trial_invoice =
            billing_event("invoice.paid", json!({ "id": "in_3", "amount_paid": 0 })).unwrap();
        let Action::Invoice(i) = trial_invoice.action else {
            panic!()
        };
        assert!(
            !i.carries_money(),
            "a trial's 0-amount invoice is not a payment"
        );
    }
}
