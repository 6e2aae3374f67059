//! Usage against a limited option: what recording `quantity` more does, decided from the value
//! read. Pure; the store's write re-checks the read in its condition (see `store::usage`).
//!
//! **Invariant.** Usage never exceeds the option's value, and each of `trial.limit_warning`
//! (the first time usage reaches 80 % of the value, rounded up) and `trial.limit_reached` is
//! emitted by exactly the one recording that crosses it.
//!
//! **Keys recorded on the trial** (issue 25 item 3). A recording carries its own idempotency:
//! the request's key ([`key_id`], a hash) is written into the trial item by the same
//! conditional `UpdateItem` that counts it, and that write's condition refuses a key already
//! recorded; so a lost response retried (by the SDK or the client) finds its key and is
//! answered again, never counted twice. The item stays bounded: a write prunes the oldest keys
//! beyond the newest [`KEPT_KEYS`] (as it read them), and its condition keeps the map at
//! [`MAX_KEYS`] at most whatever the concurrency (a write that raced many others decides again
//! on the item as it is, and prunes more): under 10 KB, far below DynamoDB's 400 KB item limit. A key is also stored as
//! an ordinary idempotency record right after the write, which answers for it for the
//! idempotency TTL; the trial's copy only covers the time between the two writes (and a
//! function that died between them). So a retry goes wrong only if its function died between
//! the two writes and [`KEPT_KEYS`] other recordings on the trial happened before the retry:
//! then it runs afresh and counts again. The SDK's own retry of a lost response comes within
//! the same request (2 retries, backoff from 25 ms), while [`KEPT_KEYS`] later recordings take
//! at least a quarter of a second even at the item's ceiling (1,000 write units a second for
//! one item, 8 units a recording with a full map: 125 recordings a second).
use std::collections::BTreeMap;

/// The largest quantity one call may record (documented in openapi.yaml): far above any real
/// batch, far below the largest option value, so `used + quantity` never overflows.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// The usage at which the warning fires: 80 % of `value`, rounded up (at least 1).
pub fn warning_threshold(value: i64) -> i64 {
    ((value.saturating_mul(4) + 4) / 5).max(1)
}

/// What adding `quantity` to `used` does to an option of limit `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStep {
    /// Over the limit: nothing is recorded; `remaining` is what is left.
    Exceeded { remaining: i64 },
    /// Recorded: `after` is the new usage; `warns` / `reaches` say whether this step crosses
    /// the warning threshold / the limit.
    Recorded {
        after: i64,
        warns: bool,
        reaches: bool,
    },
}

/// The newest keys a usage write keeps on the trial item (32 keys add 4 KB to it, as
/// `tests/integration/capacity.rs` measures): a key survives at least `KEPT_KEYS - 1` later
/// recordings.
pub const KEPT_KEYS: usize = 32;

/// A write is refused (and decided again on the trial as it is) when the trial item holds this
/// many keys or more: the hard bound, whatever the concurrency.
pub const MAX_KEYS: usize = 2 * KEPT_KEYS;

/// How much of a request's fingerprint a recorded key keeps (64 bits: two different bodies
/// under one key of one trial never share it in practice).
pub const FINGERPRINT_CHARS: usize = 16;

/// A request's key as recorded on the trial: 64 bits of its SHA-256 (hex), whatever its length.
pub fn key_id(key: &str) -> String {
    let mut id = crate::crypto::sha256_hex(key.as_bytes());
    id.truncate(16);
    id
}

/// What the trial item remembers of a recording's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    /// The first [`FINGERPRINT_CHARS`] of the request's fingerprint.
    pub fingerprint: String,
    /// Its place among the trial's recordings (1, 2, ...: a counter on the item, incremented
    /// by the write itself, so the order is the commit order whatever the callers' clocks).
    pub seq: i64,
    /// The option's usage right after this recording: its answer's `used_value`.
    pub after: i64,
}

/// The keys a write removes: the oldest, so that with its own key there are [`KEPT_KEYS`].
pub fn keys_to_prune(keys: &BTreeMap<String, RecordedKey>) -> Vec<&str> {
    let excess = (keys.len() + 1).saturating_sub(KEPT_KEYS);
    let mut by_age: Vec<(&i64, &str)> = keys.iter().map(|(k, r)| (&r.seq, k.as_str())).collect();
    by_age.sort();
    by_age.into_iter().take(excess).map(|(_, k)| k).collect()
}

/// Whether recording `quantity` on `used` crosses the warning threshold or reaches the limit
/// (the recordings whose write must be exact, with their events).
pub fn crosses(value: i64, used: i64, quantity: i64) -> bool {
    match step(value, used, quantity) {
        UsageStep::Recorded { warns, reaches, .. } => warns || reaches,
        UsageStep::Exceeded { .. } => true,
    }
}

pub fn step(value: i64, used: i64, quantity: i64) -> UsageStep {
    let remaining = (value - used).max(0);
    if quantity > remaining {
        return UsageStep::Exceeded { remaining };
    }
    let after = used + quantity;
    let threshold = warning_threshold(value);
    UsageStep::Recorded {
        after,
        warns: used < threshold && after >= threshold,
        reaches: used < value && after == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_up() {
        assert_eq!(warning_threshold(100), 80);
        assert_eq!(warning_threshold(3), 3);
        assert_eq!(warning_threshold(10), 8);
        assert_eq!(warning_threshold(1), 1);
        assert!(warning_threshold(9_007_199_254_740_991) > 0);
    }

    #[test]
    fn each_crossing_happens_once() {
        assert_eq!(
            step(100, 0, 79),
            UsageStep::Recorded {
                after: 79,
                warns: false,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 79, 1),
            UsageStep::Recorded {
                after: 80,
                warns: true,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 80, 19),
            UsageStep::Recorded {
                after: 99,
                warns: false,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 0, 100),
            UsageStep::Recorded {
                after: 100,
                warns: true,
                reaches: true
            }
        );
        assert_eq!(step(100, 99, 2), UsageStep::Exceeded { remaining: 1 });
        assert_eq!(step(100, 100, 1), UsageStep::Exceeded { remaining: 0 });
        assert!(!crosses(100, 0, 79) && crosses(100, 79, 1) && !crosses(100, 80, 19));
        assert!(crosses(100, 99, 1));
    }

    #[test]
    fn pruning_keeps_the_newest_keys() {
        let key = |seq| RecordedKey {
            fingerprint: "f".into(),
            seq,
            after: 1,
        };
        let mut keys: BTreeMap<String, RecordedKey> = (0..KEPT_KEYS as i64 - 1)
            .map(|i| (format!("k{i:03}"), key(1000 + i)))
            .collect();
        assert!(keys_to_prune(&keys).is_empty(), "room for one more");
        keys.insert("old".into(), key(5));
        keys.insert("older".into(), key(1));
        assert_eq!(keys_to_prune(&keys), vec!["older", "old"]);
        assert_eq!(key_id("abc").len(), 16);
        assert_eq!(key_id("abc"), key_id("abc"));
        assert_ne!(key_id("abc"), key_id("abd"));
    }
}
