//! What a plan allows in a trial's lifecycle (pause, extend, reminders) and the record of when the
//! trial was active (Gcore's `active_ranges`).
//!
//! Invariants the trial keeps on its ranges (`Trial::pause`, `resume`, `extend` maintain them):
//! - they are closed `[start, end]` intervals in epoch seconds, ordered, not overlapping, never
//!   empty as a list (a trial starts with `[started_at, expires_at]`), each with `start <= end`;
//! - while the trial is ACTIVE the last range is the current one and ends at `expires_at`, the
//!   *planned* end (Gcore's ranges always have both ends, so an open range is not an option);
//! - while PAUSED the last range ended at `paused_at`; resume opens the next one;
//! - once EXPIRED the last range ended at `expires_at`, which is when the trial stopped.
//!
//! The sum of the ranges' lengths is therefore the trial's total active time, past and planned:
//! pausing then resuming leaves it unchanged (the new range is exactly the time that was left),
//! an extension adds to it, and it is what the plan's maximum total trial length bounds. Time
//! spent paused or expired (in grace) does not count.
//!
//! **Bounded.** Every resume (and every revival from grace) opens a range, so a trial paused
//! and resumed for ever would grow its item towards DynamoDB's 400 KB and its events past
//! EventBridge's 256 KB. Past [`MAX_RANGES`] the two oldest ranges become one
//! ([`bound_ranges`]): it starts where the first did and lasts as long as both together, so the
//! total active time, the current range and the order stay exact, and only the oldest history
//! is summarised. 64 ranges are about 3 KB in the item and 4 KB in an event.
use serde_json::{json, Value};

use super::time::rfc3339;

const DAY_SECS: i64 = 86_400;
const HOUR_SECS: i64 = 3_600;

/// Per-plan lifecycle limits. The plan catalog supplies them; `Default` is the product default
/// for a plan that says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleTerms {
    /// How long a trial may stay paused before it resumes by itself.
    pub pause_max_secs: i64,
    /// The most active time a trial may have in total, extensions included (see the module doc).
    pub max_total_secs: i64,
    /// How long before `expires_at` each `trial.ending_soon` reminder goes out.
    pub reminder_offsets_secs: Vec<i64>,
    /// How long before an expired trial is purged its `trial.grace_ending` reminder goes out.
    pub grace_reminder_secs: i64,
}

impl Default for LifecycleTerms {
    fn default() -> Self {
        LifecycleTerms {
            pause_max_secs: 30 * DAY_SECS,
            max_total_secs: 90 * DAY_SECS,
            reminder_offsets_secs: vec![72 * HOUR_SECS, 24 * HOUR_SECS],
            grace_reminder_secs: 24 * HOUR_SECS,
        }
    }
}

/// One period during which the trial was (or is planned to be) active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveRange {
    pub start: i64,
    pub end: i64,
}

impl ActiveRange {
    pub fn new(start: i64, end: i64) -> ActiveRange {
        ActiveRange { start, end }
    }

    pub fn duration_secs(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    /// `{"start": "...", "end": "..."}`, as Gcore shows it.
    pub fn view(&self) -> Value {
        json!({ "start": rfc3339(self.start), "end": rfc3339(self.end) })
    }
}

/// Total active time of a set of ranges.
pub fn total_active_secs(ranges: &[ActiveRange]) -> i64 {
    ranges.iter().map(ActiveRange::duration_secs).sum()
}

/// The most ranges a trial keeps (see the module doc).
pub const MAX_RANGES: usize = 64;

/// `ranges` with at most [`MAX_RANGES`] ranges: the oldest merged, their total kept.
pub fn bound_ranges(mut ranges: Vec<ActiveRange>) -> Vec<ActiveRange> {
    while ranges.len() > MAX_RANGES {
        let second = ranges.remove(1);
        let first = &mut ranges[0];
        // Ends no later than `second` did (it started after `first` ended): no overlap.
        first.end = first.start + first.duration_secs() + second.duration_secs();
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_past_the_bound_merge_their_oldest_and_keep_the_total() {
        let ranges: Vec<ActiveRange> = (0..MAX_RANGES as i64 + 3)
            .map(|i| ActiveRange::new(i * 100, i * 100 + 10 + i))
            .collect();
        let total = total_active_secs(&ranges);
        let bounded = bound_ranges(ranges.clone());
        assert_eq!(bounded.len(), MAX_RANGES);
        assert_eq!(total_active_secs(&bounded), total);
        assert_eq!(bounded.last(), ranges.last());
        assert_eq!(bounded[0].start, 0);
        assert!(
            bounded.windows(2).all(|w| w[0].end <= w[1].start),
            "{bounded:?}"
        );
        // At or under the bound nothing changes.
        let few = ranges[..MAX_RANGES].to_vec();
        assert_eq!(bound_ranges(few.clone()), few);
    }

    #[test]
    fn defaults_are_the_issue_defaults() {
        let terms = LifecycleTerms::default();
        assert_eq!(terms.pause_max_secs, 2_592_000);
        assert_eq!(terms.max_total_secs, 7_776_000);
        assert_eq!(terms.reminder_offsets_secs, vec![259_200, 86_400]);
        assert_eq!(terms.grace_reminder_secs, 86_400);
    }

    #[test]
    fn total_is_the_sum_of_range_lengths() {
        let ranges = [ActiveRange::new(0, 10), ActiveRange::new(20, 25)];
        assert_eq!(total_active_secs(&ranges), 15);
        assert_eq!(total_active_secs(&[]), 0);
        assert_eq!(
            ActiveRange::new(1_775_469_600, 1_775_473_200).view(),
            json!({ "start": "2026-04-06T10:00:00Z", "end": "2026-04-06T11:00:00Z" })
        );
    }
}
