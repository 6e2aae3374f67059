//! The table's key design. Every item lives under `pk`/`sk`; one sparse GSI (`due`) lists work
//! by due time so the scheduled jobs never scan.
//!
//! | item             | pk                        | sk        | in GSI `due` as                  |
//! |------------------|---------------------------|-----------|----------------------------------|
//! | trial            | `TRIAL#<trial_id>`        | `TRIAL`   | `EXPIRE#<s>` / `PURGE#<s>` / `RESUME#<s>` @ due |
//! | reminder cursor  | `REMIND#<trial_id>`       | `REMIND`  | `REMIND#<s>` @ next reminder     |
//! | trial number     | `TRIALNUM#<n>`            | `TRIALNUM` | - (the integer id's reservation) |
//! | org guard        | `ORG#<org_id>`            | `GUARD` (default product), `GUARD#<product>` | - |
//! | api key listing  | `ORG#<org_id>`            | `KEY#<key_id>` | -                           |
//! | api key          | `APIKEY#<key_id>`         | `APIKEY`  | -                                |
//! | idempotency      | `IDEM#<org_id>#<key>`     | `IDEM`    | - (TTL `ttl`)                    |
//! | domain event     | `EVENT#<event_id>`        | `EVENT`   | - (TTL `ttl`; the stream publishes it) |
//! | Stripe event     | `STRIPE_EVENT#<event_id>` | `STRIPE_EVENT` | - (TTL `ttl`)               |
//! | session to expire | `SESSION_EXPIRE#<cs_id>` | `SESSION_EXPIRE` | `SESSION_EXPIRE#<s>` @ next attempt (TTL `ttl`) |
//! | funnel counter   | `STATS#<day>#<shard>`     | `PLAN#<plan>` | - (written by `publish` only) |
//! | event counted    | `COUNTED#<event_id>`      | `COUNTED` | - (TTL `ttl`; written by `publish` only) |
//!
//! `<s>` is a shard, `hash(id) % DUE_SHARDS`, so no single GSI partition takes every write at
//! millions of trials; the jobs query each shard.
use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::catalog::ProductKey;
use crate::domain::ActiveRange;
use crate::domain::{OrgId, TrialId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const TTL: &str = "ttl";
pub const DUE_INDEX: &str = "due";
pub const DUE_PK: &str = "due_pk";
pub const DUE_AT: &str = "due_at";

pub fn trial_pk(id: &TrialId) -> String {
    format!("TRIAL#{id}")
}
pub const TRIAL_SK: &str = "TRIAL";

pub fn org_pk(org: &OrgId) -> String {
    format!("ORG#{org}")
}
pub const GUARD_SK: &str = "GUARD";
/// The org guard of `product`: `GUARD` for the catalog's default product (the key written
/// before products existed), `GUARD#<product>` for any other.
pub fn guard_sk(product: &ProductKey) -> String {
    format!("{GUARD_SK}{}", product.suffix())
}

pub fn api_key_pk(key_id: &str) -> String {
    format!("APIKEY#{key_id}")
}
pub const API_KEY_SK: &str = "APIKEY";
pub fn api_key_listing_sk(key_id: &str) -> String {
    format!("KEY#{key_id}")
}
pub const API_KEY_LISTING_PREFIX: &str = "KEY#";

pub fn idempotency_pk(org: &OrgId, key: &str) -> String {
    format!("IDEM#{org}#{key}")
}
pub const IDEMPOTENCY_SK: &str = "IDEM";

pub const EVENT_PREFIX: &str = "EVENT#";
pub fn event_pk(event_id: &str) -> String {
    format!("{EVENT_PREFIX}{event_id}")
}
pub const EVENT_SK: &str = "EVENT";

pub fn stripe_event_pk(event_id: &str) -> String {
    format!("STRIPE_EVENT#{event_id}")
}
pub const STRIPE_EVENT_SK: &str = "STRIPE_EVENT";

/// The trial item's usage per limited option: a map of option internal name to number.
pub const USED: &str = "used";
/// Why the trial item's trial ended early (a usage limit reached with `end_trial`).
pub const EXPIRY_REASON: &str = "expiry_reason";
/// The trial item's attribute for `Trial::active_ranges`: a list of `{start, end}` maps.
pub const ACTIVE_RANGES: &str = "active_ranges";
/// A trial never activated: its activation deadline (removed by the activation).
pub const ACTIVATE_BY: &str = "activate_by";

/// `ranges` as the trial item stores them under [`ACTIVE_RANGES`].
pub fn ranges_value(ranges: &[ActiveRange]) -> AttributeValue {
    AttributeValue::L(
        ranges
            .iter()
            .map(|r| {
                AttributeValue::M(
                    [
                        // Numbers as `codec::n` writes them (codec reads this module's keys).
                        ("start".to_owned(), AttributeValue::N(r.start.to_string())),
                        ("end".to_owned(), AttributeValue::N(r.end.to_string())),
                    ]
                    .into(),
                )
            })
            .collect(),
    )
}

/// A Checkout Session that a canceled trial left open, waiting to be expired at Stripe (see
/// `jobs::session_expiry`).
pub fn session_expiry_pk(session_id: &str) -> String {
    format!("SESSION_EXPIRE#{session_id}")
}
pub const SESSION_EXPIRY_SK: &str = "SESSION_EXPIRE";
/// The reservation of a trial's integer id (see `TrialId::number`): it keeps the number unique.
pub fn trial_number_pk(number: i64) -> String {
    format!("TRIALNUM#{number}")
}
pub const TRIAL_NUMBER_SK: &str = "TRIALNUM";

/// A trial's reminder cursor: a second item because the trial item's one `due` entry is taken
/// by its expiry, resume or purge (see `store::reminders`).
pub fn reminder_pk(id: &TrialId) -> String {
    format!("REMIND#{id}")
}
pub const REMINDER_SK: &str = "REMIND";

/// Which queue of the `due` index an item waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueQueue {
    Expire,
    Purge,
    /// Checkout Sessions to expire at Stripe (their subject is the session id).
    SessionExpire,
    /// PAUSED trials, at the time their pause maximum resumes them.
    Resume,
    /// Reminder cursors, at their next reminder's time.
    Remind,
}

impl DueQueue {
    fn prefix(self) -> &'static str {
        match self {
            DueQueue::Expire => "EXPIRE",
            DueQueue::Purge => "PURGE",
            DueQueue::SessionExpire => "SESSION_EXPIRE",
            DueQueue::Resume => "RESUME",
            DueQueue::Remind => "REMIND",
        }
    }

    /// The GSI partition for `subject` (the trial id; the session id for `SessionExpire`).
    pub fn partition_for(self, subject: &str, shards: u32) -> String {
        self.partition(shard_of(subject, shards))
    }

    pub fn partition(self, shard: u32) -> String {
        format!("{}#{shard}", self.prefix())
    }
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
pub fn shard_of(subject: &str, shards: u32) -> u32 {
    let hash = subject.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_and_stay_in_range() {
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            let s = shard_of(&format!("trial_{i:024x}"), 4);
            seen[s as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(DueQueue::Expire.partition(3), "EXPIRE#3");
    }
}
