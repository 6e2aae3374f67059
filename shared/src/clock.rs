//! Time is injected so tests can stand one second either side of a boundary.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Lambda's longest timeout, plus slack for clock skew.
const MAX_INVOCATION_MS: i64 = 16 * 60 * 1000;

/// The invocation deadline (epoch ms) if it looks like one. Emulators do not all send an epoch
/// time (`cargo lambda watch` sends the timeout, `600000`); read as an epoch, that deadline
/// passed in 1970 and a job would stop before it started. An implausible value counts as none.
pub fn plausible_deadline(deadline_ms: i64, now_ms: i64) -> Option<i64> {
    let plausible =
        deadline_ms > now_ms - MAX_INVOCATION_MS && deadline_ms <= now_ms + MAX_INVOCATION_MS;
    plausible.then_some(deadline_ms)
}

/// A clock that moves only when told to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(epoch_secs: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(epoch_secs * 1000)))
    }

    pub fn set(&self, epoch_secs: i64) {
        self.0.store(epoch_secs * 1000, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_epoch_deadlines_near_now_count() {
        let now = 1_775_469_600_000;
        assert_eq!(plausible_deadline(now + 30_000, now), Some(now + 30_000));
        assert_eq!(plausible_deadline(now - 1_000, now), Some(now - 1_000));
        assert_eq!(plausible_deadline(600_000, now), None);
        assert_eq!(plausible_deadline(0, now), None);
        assert_eq!(plausible_deadline(now + 86_400_000, now), None);
    }
}
