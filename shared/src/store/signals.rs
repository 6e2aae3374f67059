//! Abuse-signal items, the operator's one-off allowance and the record of why an org was
//! refused. Every check is a condition of the start's own transaction, like the org guard, so
//! two orgs racing with the same email cannot both pass.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | signal | `SIGNAL#<kind>#<hmac>[#<product>]` | `SIGNAL` | `org_id`, `last_used_at` (the HMAC only: never the value) |
//! | allowance | `ORG#<org_id>` | `ALLOW` | `created_at` (`trialctl trials allow`; consumed by the start it lets through) |
//! | refusal | `ORG#<org_id>` | `REFUSAL[#<product>]` | `reason`, `signal_kind`, `at` (the last refused start: `trialctl trials why`) |
//!
//! **Per product**: one person may have one trial of each product, so signals and refusals are
//! keyed by product as the org guard is (`#<product>` appended for any product but the
//! catalog's default, whose keys are the ones written before products). The allowance stays
//! per org: an operator lets the org's next start through, whatever its product.
//!
//! Cost: one more item written per signal at start (at most four), in the same transaction.
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put};

use super::codec::{get_n, get_s, key, n, s, Item, Values};
use super::org_guard::Guard;
use super::schema::{guard_sk, org_pk, PK, SK};
use super::{Slot, Store, StoreError};
use crate::domain::catalog::ProductKey;
use crate::domain::signals::{Signal, SignalKind};
use crate::domain::OrgId;

pub const SIGNAL_SK: &str = "SIGNAL";
pub const ALLOW_SK: &str = "ALLOW";
pub const REFUSAL_SK: &str = "REFUSAL";

pub fn signal_pk(signal: &Signal, product: &ProductKey) -> String {
    format!(
        "SIGNAL#{}#{}{}",
        signal.kind.as_str(),
        signal.hmac,
        product.suffix()
    )
}

/// The org's refusal record for `product`.
pub fn refusal_sk(product: &ProductKey) -> String {
    format!("{REFUSAL_SK}{}", product.suffix())
}

/// Why an org's last start was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The eligibility reason (`signal_reused`).
    pub reason: String,
    pub signal_kind: Option<SignalKind>,
    pub at: i64,
}

/// What eligibility and `trialctl trials why` read about an org, in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgStanding {
    pub guard: Option<Guard>,
    pub refusal: Option<Refusal>,
    /// An operator's allowance not yet used.
    pub allowed: bool,
}

impl Store {
    /// Records `signal` as used by `org` at `now`. With `window_start`, only if no other org used
    /// it after `window_start` (the condition fails otherwise, and `ALL_OLD` shows who); without,
    /// unconditionally (a kind whose reuse is ignored, or a flagged reuse being let through).
    pub fn signal_put(
        &self,
        signal: &Signal,
        product: &ProductKey,
        org: &OrgId,
        now: i64,
        window_start: Option<i64>,
    ) -> Result<Put, StoreError> {
        let mut item = key(signal_pk(signal, product), SIGNAL_SK);
        item.insert("org_id".into(), s(org.as_str()));
        item.insert("signal_kind".into(), s(signal.kind.as_str()));
        item.insert("last_used_at".into(), n(now));
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(start) = window_start {
            put = put
                .condition_expression(
                    "attribute_not_exists(pk) OR org_id = :org OR last_used_at <= :window_start",
                )
                .set_expression_attribute_values(
                    Values::new()
                        .s(":org", org.as_str())
                        .n(":window_start", start)
                        .build(),
                );
        }
        Ok(put.build()?)
    }

    /// `trialctl trials allow`: the org's next start passes the signal check once.
    pub async fn put_allowance(&self, org: &OrgId, now: i64) -> Result<(), StoreError> {
        let mut item = key(org_pk(org), ALLOW_SK);
        item.insert("created_at".into(), n(now));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()?;
        // Unconditional: it always commits.
        self.tx().put(Slot::Allowance, put).commit().await?;
        Ok(())
    }

    /// Whether the operator allowed the org's next start (read only after a blocked attempt).
    pub async fn has_allowance(&self, org: &OrgId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(org), ALLOW_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(out.item.is_some())
    }

    /// Consumes the org's allowance in the start's transaction (fails if there is none).
    pub fn allowance_delete(&self, org: &OrgId) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(org), ALLOW_SK)))
            .condition_expression("attribute_exists(pk)")
            .build()?)
    }

    /// The refusal record, written with the refused start's `trial.blocked` event.
    pub fn refusal_put(
        &self,
        org: &OrgId,
        product: &ProductKey,
        refusal: &Refusal,
    ) -> Result<Put, StoreError> {
        let mut item = key(org_pk(org), refusal_sk(product));
        item.insert("reason".into(), s(&refusal.reason));
        if let Some(kind) = refusal.signal_kind {
            item.insert("signal_kind".into(), s(kind.as_str()));
        }
        item.insert("at".into(), n(refusal.at));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()?)
    }

    /// The org's guard and last refusal for `product`, and its allowance: one consistent
    /// `BatchGetItem`.
    pub async fn org_standing(
        &self,
        org: &OrgId,
        product: &ProductKey,
    ) -> Result<OrgStanding, StoreError> {
        let pk = org_pk(org);
        let (guard, refusal) = (guard_sk(product), refusal_sk(product));
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        for sk in [guard.as_str(), refusal.as_str(), ALLOW_SK] {
            request = request.keys(key(pk.clone(), sk));
        }
        let mut standing = OrgStanding::default();
        for item in self.batch_get(request.build()?).await? {
            read_standing(&mut standing, &item, (&guard, &refusal));
        }
        Ok(standing)
    }
}

/// One item of the standing; `(guard, refusal)` are the product's sort keys.
fn read_standing(standing: &mut OrgStanding, item: &Item, (guard, refusal): (&str, &str)) {
    if get_s(item, PK).is_none() {
        return;
    }
    match get_s(item, SK) {
        Some(sk) if sk == guard => standing.guard = Some(Guard::from_item(item)),
        Some(sk) if sk == refusal => {
            standing.refusal = Some(Refusal {
                reason: get_s(item, "reason").unwrap_or("signal_reused").to_owned(),
                signal_kind: get_s(item, "signal_kind").and_then(SignalKind::parse),
                at: get_n(item, "at").unwrap_or(0),
            })
        }
        Some(ALLOW_SK) => standing.allowed = true,
        _ => {}
    }
}

/// The org that used a signal, from the item as it was when the condition failed.
pub fn signal_owner(item: &Item) -> Option<&str> {
    match item.get("org_id") {
        Some(AttributeValue::S(org)) => Some(org),
        _ => None,
    }
}
