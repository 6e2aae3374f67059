//! A Checkout Session as the stand-in keeps it, and as Stripe shows it (`to_stripe`).
//!
//! The stand-in keeps what `POST /v1/checkout/sessions` was given (mode, line item, metadata,
//! `client_reference_id`, `subscription_data[trial_end]`, the URLs) and the session's life:
//! `open` until it is paid (`complete`) or expired (`expired`), never back. Stripe's object has
//! no `subscription_data`: the trial end is kept here for the page and the amounts only.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Stripe's `status` of a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Complete,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Complete => "complete",
            Status::Expired => "expired",
        }
    }
}

/// Stripe's `payment_status` of a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Unpaid,
    Paid,
    /// Nothing to pay now: a subscription that starts with a trial (Stripe charges at its end).
    NoPaymentRequired,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Unpaid => "unpaid",
            PaymentStatus::Paid => "paid",
            PaymentStatus::NoPaymentRequired => "no_payment_required",
        }
    }
}

/// A price of the stand-in's "account": what a Stripe account's catalog says of a price id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub id: String,
    /// The product's name, shown on the page.
    pub product: String,
    /// In the currency's smallest unit (cents).
    pub unit_amount: i64,
    pub currency: String,
    /// `month`, `year`...
    pub interval: String,
}

impl Price {
    /// `$29.00`: two decimals, the currency's symbol when it is a common one.
    pub fn format_amount(amount: i64, currency: &str) -> String {
        let symbol = match currency {
            "usd" => "$",
            "eur" => "€",
            "gbp" => "£",
            _ => "",
        };
        let whole = format!("{}.{:02}", amount / 100, amount % 100);
        if symbol.is_empty() {
            format!("{whole} {}", currency.to_uppercase())
        } else {
            format!("{symbol}{whole}")
        }
    }
}

/// The stand-in's catalog: the prices it knows by id. A price it does not know is still
/// accepted (tests use made-up ids) at [`Catalog::FALLBACK_AMOUNT`], named after the id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    prices: Vec<Price>,
}

impl Catalog {
    pub const FALLBACK_AMOUNT: i64 = 1_000;

    pub fn new(prices: Vec<Price>) -> Catalog {
        Catalog { prices }
    }

    /// The default price ids of `trials::config` (`price_starter`, `price_growth`,
    /// `price_pro`), priced as a made-up monthly plan list.
    pub fn trials_defaults() -> Catalog {
        Catalog::for_plans(&[
            ("price_starter", "Starter"),
            ("price_growth", "Growth"),
            ("price_pro", "Pro"),
        ])
    }

    /// `(price id, product name)` pairs, priced by position: $9, $29, $99 a month, then $10.
    pub fn for_plans(plans: &[(&str, &str)]) -> Catalog {
        const AMOUNTS: [i64; 3] = [900, 2_900, 9_900];
        Catalog::new(
            plans
                .iter()
                .enumerate()
                .map(|(i, (id, product))| Price {
                    id: (*id).to_owned(),
                    product: (*product).to_owned(),
                    unit_amount: AMOUNTS.get(i).copied().unwrap_or(Catalog::FALLBACK_AMOUNT),
                    currency: "usd".into(),
                    interval: "month".into(),
                })
                .collect(),
        )
    }

    pub fn price(&self, id: &str) -> Price {
        self.prices
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .unwrap_or_else(|| Price {
                id: id.to_owned(),
                product: id.to_owned(),
                unit_amount: Catalog::FALLBACK_AMOUNT,
                currency: "usd".into(),
                interval: "month".into(),
            })
    }
}

/// The one line item a subscription session of ours has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub price: Price,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub mode: String,
    pub status: Status,
    pub payment_status: PaymentStatus,
    /// The page the customer pays on (on loopback); Stripe shows it only while `open`.
    pub url: String,
    pub created: i64,
    pub expires_at: i64,
    pub client_reference_id: Option<String>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    /// `metadata[k]=v`, as sent.
    pub metadata: BTreeMap<String, String>,
    /// `subscription_data[metadata][k]=v`, as sent: the subscription carries it.
    pub subscription_metadata: BTreeMap<String, String>,
    /// `subscription_data[trial_end]`: no charge before this instant.
    pub trial_end: Option<i64>,
    pub line_item: Option<LineItem>,
    /// Set when the customer pays (a subscription session creates both).
    pub customer: Option<String>,
    pub subscription: Option<String>,
}

impl Session {
    /// What the customer pays at checkout: nothing when the subscription starts with a trial.
    pub fn amount_total(&self) -> i64 {
        match (&self.line_item, self.trial_end) {
            (Some(_), Some(_)) => 0,
            (Some(item), None) => item.price.unit_amount * item.quantity,
            (None, _) => 0,
        }
    }

    pub fn currency(&self) -> &str {
        self.line_item
            .as_ref()
            .map_or("usd", |i| i.price.currency.as_str())
    }

    /// The `payment_status` a completed payment gives this session.
    pub fn paid_status(&self) -> PaymentStatus {
        if self.amount_total() == 0 {
            PaymentStatus::NoPaymentRequired
        } else {
            PaymentStatus::Paid
        }
    }

    /// `success_url` with `{CHECKOUT_SESSION_ID}` replaced by the session id, as Stripe does.
    pub fn success_redirect(&self) -> String {
        self.success_url.replace("{CHECKOUT_SESSION_ID}", &self.id)
    }

    /// The Checkout Session object as Stripe's API and events show it (the fields we model).
    pub fn to_stripe(&self) -> Value {
        json!({
            "id": self.id,
            "object": "checkout.session",
            "mode": self.mode,
            "status": self.status.as_str(),
            "payment_status": self.payment_status.as_str(),
            "url": (self.status == Status::Open).then_some(&self.url),
            "created": self.created,
            "expires_at": self.expires_at,
            "client_reference_id": self.client_reference_id,
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
            "metadata": self.metadata,
            "customer": self.customer,
            "subscription": self.subscription,
            "amount_subtotal": self.amount_total(),
            "amount_total": self.amount_total(),
            "currency": self.currency(),
            "livemode": false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(trial_end: Option<i64>) -> Session {
        Session {
            id: "cs_test_1".into(),
            mode: "subscription".into(),
            status: Status::Open,
            payment_status: PaymentStatus::Unpaid,
            url: "http://127.0.0.1:1/checkout/pay/cs_test_1".into(),
            created: 100,
            expires_at: 100 + 86_400,
            client_reference_id: Some("trial_x".into()),
            success_url: "http://127.0.0.1:1/ok?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: None,
            metadata: BTreeMap::from([("plan".to_owned(), "growth".to_owned())]),
            subscription_metadata: BTreeMap::new(),
            trial_end,
            line_item: Some(LineItem {
                price: Catalog::trials_defaults().price("price_growth"),
                quantity: 2,
            }),
            customer: None,
            subscription: None,
        }
    }

    #[test]
    fn amounts_follow_the_catalog_and_a_trial_defers_the_charge() {
        let now = session(None);
        assert_eq!(now.amount_total(), 5_800);
        assert_eq!(now.paid_status(), PaymentStatus::Paid);
        let later = session(Some(1_000_000));
        assert_eq!(later.amount_total(), 0);
        assert_eq!(later.paid_status(), PaymentStatus::NoPaymentRequired);
        assert_eq!(Catalog::default().price("price_x").unit_amount, 1_000);
        assert_eq!(Price::format_amount(2_900, "usd"), "$29.00");
        assert_eq!(Price::format_amount(1_005, "chf"), "10.05 CHF");
    }

    #[test]
    fn the_stripe_object_hides_the_url_once_the_session_is_closed() {
        let mut s = session(None);
        let open = s.to_stripe();
        assert_eq!(open["url"], s.url.as_str());
        assert_eq!(open["metadata"]["plan"], "growth");
        assert_eq!(open["status"], "open");
        assert!(open.get("subscription_data").is_none());
        s.status = Status::Expired;
        assert_eq!(s.to_stripe()["url"], Value::Null);
        assert_eq!(
            s.success_redirect(),
            "http://127.0.0.1:1/ok?session_id=cs_test_1"
        );
    }
}
