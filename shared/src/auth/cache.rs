//! Verified API keys, remembered by a warm function for `API_KEY_CACHE_TTL` so steady traffic
//! pays no DynamoDB read for authentication. Entries are keyed by the key's SHA-256, so the
//! cache never holds a key. A revocation is seen once the entry expires: within the TTL.
//!
//! Refused keys (unknown, revoked, wrong secret) are remembered too, for the same time: a
//! client retrying with a revoked key costs one read per window, not one per request. Both
//! maps are capped so a flood of distinct made-up keys cannot grow memory: when a map is full,
//! expired entries go, and if that frees nothing the map starts over (costing at most one read
//! per key seen again).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::api_key::KeyInfo;

/// How many verified keys one function instance remembers.
pub const MAX_VERIFIED: usize = 4096;
/// How many refused keys one function instance remembers.
pub const MAX_REFUSED: usize = 1024;
pub const DEFAULT_TTL_SECS: i64 = 60;

/// What the cache knows about a key hash at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Verified(KeyInfo),
    Refused,
    Unknown,
}

#[derive(Debug, Default)]
struct Entries {
    /// hash -> (key, valid until, epoch ms)
    verified: HashMap<String, (KeyInfo, i64)>,
    /// hash -> valid until, epoch ms
    refused: HashMap<String, i64>,
}

/// Shared by every clone (one per process, cloned into each handler).
#[derive(Clone, Debug)]
pub struct KeyCache {
    ttl_secs: i64,
    entries: Arc<Mutex<Entries>>,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(DEFAULT_TTL_SECS)
    }
}

impl KeyCache {
    /// `ttl_secs <= 0` disables caching: every request reads its key.
    pub fn new(ttl_secs: i64) -> KeyCache {
        KeyCache {
            ttl_secs,
            entries: Arc::default(),
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update leaves the maps consistent, so a panic elsewhere cannot poison them.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.ttl_secs.saturating_mul(1000))
    }

    pub fn get(&self, hash: &str, now_ms: i64) -> Cached {
        if self.ttl_secs <= 0 {
            return Cached::Unknown;
        }
        let entries = self.lock();
        if let Some((info, until)) = entries.verified.get(hash) {
            if now_ms < *until {
                return Cached::Verified(info.clone());
            }
        }
        match entries.refused.get(hash) {
            Some(until) if now_ms < *until => Cached::Refused,
            _ => Cached::Unknown,
        }
    }

    pub fn put_verified(&self, hash: String, info: KeyInfo, now_ms: i64) {
        if self.ttl_secs <= 0 {
            return;
        }
        let until = self.until(now_ms);
        let mut entries = self.lock();
        entries.refused.remove(&hash);
        make_room(&mut entries.verified, MAX_VERIFIED, now_ms, |(_, until)| {
            *until
        });
        entries.verified.insert(hash, (info, until));
    }

    pub fn put_refused(&self, hash: String, now_ms: i64) {
        if self.ttl_secs <= 0 {
            return;
        }
        let until = self.until(now_ms);
        let mut entries = self.lock();
        entries.verified.remove(&hash);
        make_room(&mut entries.refused, MAX_REFUSED, now_ms, |until| *until);
        entries.refused.insert(hash, until);
    }

    /// Entries held (verified, refused), expired ones included until they are swept.
    pub fn len(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.verified.len(), entries.refused.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

fn make_room<V>(map: &mut HashMap<String, V>, cap: usize, now_ms: i64, until: impl Fn(&V) -> i64) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| now_ms < until(v));
    if map.len() >= cap {
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::Projects;
    use crate::domain::OrgId;

    fn info(id: &str) -> KeyInfo {
        KeyInfo {
            key_id: id.into(),
            org: OrgId::parse("org_a").unwrap(),
            projects: Projects::All,
            created_at: 0,
            revoked_at: None,
            admin: false,
        }
    }

    #[test]
    fn entries_live_exactly_the_ttl() {
        let cache = KeyCache::new(60);
        cache.put_verified("h1".into(), info("k1"), 1_000);
        assert_eq!(cache.get("h1", 1_000), Cached::Verified(info("k1")));
        assert_eq!(cache.get("h1", 60_999), Cached::Verified(info("k1")));
        assert_eq!(cache.get("h1", 61_000), Cached::Unknown);
        cache.put_refused("h2".into(), 1_000);
        assert_eq!(cache.get("h2", 60_999), Cached::Refused);
        assert_eq!(cache.get("h2", 61_000), Cached::Unknown);
        assert_eq!(cache.get("h3", 1_000), Cached::Unknown);
    }

    #[test]
    fn a_later_verdict_replaces_the_earlier_one() {
        let cache = KeyCache::new(60);
        cache.put_verified("h".into(), info("k"), 0);
        cache.put_refused("h".into(), 1);
        assert_eq!(cache.get("h", 2), Cached::Refused);
        cache.put_verified("h".into(), info("k"), 3);
        assert_eq!(cache.get("h", 4), Cached::Verified(info("k")));
        assert_eq!(cache.len(), (1, 0));
        assert!(!cache.is_empty());
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = KeyCache::new(0);
        cache.put_verified("h".into(), info("k"), 0);
        cache.put_refused("r".into(), 0);
        assert_eq!(cache.get("h", 0), Cached::Unknown);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_caps() {
        let cache = KeyCache::new(60);
        cache.put_verified("good".into(), info("k"), 0);
        for i in 0..10 * MAX_REFUSED {
            cache.put_refused(format!("bad{i}"), 0);
            // The cap holds after every insert, not only on average.
            assert!(cache.len().1 <= MAX_REFUSED, "{} after {i}", cache.len().1);
        }
        let (verified, refused) = cache.len();
        assert!(refused <= MAX_REFUSED, "{refused}");
        // Made-up keys never push a verified one out.
        assert_eq!(verified, 1);
        assert_eq!(cache.get("good", 1), Cached::Verified(info("k")));
        for i in 0..2 * MAX_VERIFIED {
            cache.put_verified(format!("v{i}"), info("k"), 0);
            assert!(cache.len().0 <= MAX_VERIFIED, "{} after {i}", cache.len().0);
        }
    }

    #[test]
    fn a_full_map_drops_its_expired_entries_and_keeps_the_live_ones() {
        let cache = KeyCache::new(60);
        let half = MAX_REFUSED / 2;
        // Half the map expires at exactly 61 s (expired then: an entry lives [put, put + ttl)).
        for i in 0..half {
            cache.put_refused(format!("early{i}"), 1_000);
        }
        // The other half lives until 110 s.
        for i in 0..MAX_REFUSED - half {
            cache.put_refused(format!("late{i}"), 50_000);
        }
        assert_eq!(cache.len().1, MAX_REFUSED);
        cache.put_refused("new".into(), 61_000);
        // Only the expired half went: the live refusals are still answered from memory.
        assert_eq!(cache.len().1, MAX_REFUSED - half + 1);
        assert_eq!(cache.get("late0", 61_000), Cached::Refused);
        assert_eq!(cache.get("new", 61_000), Cached::Refused);
        assert_eq!(cache.get("early0", 61_000), Cached::Unknown);
    }

    #[test]
    fn a_map_with_room_sweeps_nothing() {
        // Below the cap a put is O(1): expired entries stay (unanswered by `get`) until the map
        // fills, rather than every put scanning the map.
        let cache = KeyCache::new(60);
        cache.put_refused("old".into(), 0);
        cache.put_refused("new".into(), 61_000);
        assert_eq!(cache.len(), (0, 2));
        assert_eq!(cache.get("old", 61_000), Cached::Unknown);
        assert_eq!(cache.get("new", 61_000), Cached::Refused);
    }

    #[test]
    fn clones_share_one_cache() {
        let cache = KeyCache::new(60);
        cache.clone().put_verified("h".into(), info("k"), 0);
        assert_eq!(cache.get("h", 1), Cached::Verified(info("k")));
    }
}
