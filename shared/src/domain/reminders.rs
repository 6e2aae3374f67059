//! Ending-soon and grace-ending reminders: when each is due, and the deterministic event id that
//! makes it publish at most once per trial, end time and offset.
//!
//! A reminder is named by what it is about, not by when it was sent: `trial.ending_soon` by
//! `(trial, expires_at, offset)`, `trial.grace_ending` by `(trial, purge time)`. A retried job
//! therefore writes the same id (the conditional write refuses the repeat), while an extension or
//! a resume, which moves `expires_at`, re-arms every reminder under new ids.
//!
//! The job holds one cursor per trial in the `due` index: the time of the next reminder
//! ([`Trial::next_reminder`]). When it comes, [`Trial::reminder_due`] says which reminder to
//! publish; if the job ran late and several have come, only the latest goes out (an older
//! "72 hours left" is wrong by then), and one whose moment has passed (an ending-soon reminder
//! after expiry, a grace-ending one after the purge time) goes out not at all. Cost: one read of
//! the trial per due reminder; nothing scans.
use super::active_ranges::LifecycleTerms;
use super::ids::TrialId;
use super::state_machine::TrialStatus;
use super::trial::{Trial, TrialPolicy};

/// An ending-soon reminder: `offset_secs` before the end, at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reminder {
    pub offset_secs: i64,
    pub at: i64,
}

/// The ending-soon reminders for an end time, in time order (the largest offset first).
/// `armed_at` is when this end was set (start, extension, resume): offsets already past then
/// are skipped, one due exactly then is kept. Non-positive and repeated offsets are ignored.
pub fn reminders_due(expires_at: i64, offsets_secs: &[i64], armed_at: i64) -> Vec<Reminder> {
    let mut offsets: Vec<i64> = offsets_secs.iter().copied().filter(|&o| o > 0).collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.dedup();
    offsets
        .into_iter()
        .map(|offset_secs| Reminder {
            offset_secs,
            at: expires_at - offset_secs,
        })
        .filter(|r| r.at >= armed_at)
        .collect()
}

/// `<trial_id>.ending_soon.<expires_at>.<offset_secs>` (epoch seconds, seconds).
pub fn ending_soon_event_id(trial: &TrialId, expires_at: i64, offset_secs: i64) -> String {
    format!("{trial}.ending_soon.{expires_at}.{offset_secs}")
}

/// `<trial_id>.grace_ending.<purge_at>` (epoch seconds).
pub fn grace_ending_event_id(trial: &TrialId, purge_at: i64) -> String {
    format!("{trial}.grace_ending.{purge_at}")
}

/// When the grace-ending reminder goes out: `lead_secs` before the purge, but never before the
/// trial has expired (with a grace shorter than the lead, at expiry), so an expired trial always
/// gets its one warning.
pub fn grace_reminder_at(expires_at: i64, purge_at: i64, lead_secs: i64) -> i64 {
    (purge_at - lead_secs).max(expires_at)
}

/// One reminder of a trial's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledReminder {
    /// `trial.ending_soon`, `offset_secs` before `expires_at`.
    EndingSoon {
        at: i64,
        offset_secs: i64,
        expires_at: i64,
    },
    /// `trial.grace_ending`, before the expired trial is purged at `purge_at`.
    GraceEnding { at: i64, purge_at: i64 },
}

impl ScheduledReminder {
    pub fn at(&self) -> i64 {
        match *self {
            ScheduledReminder::EndingSoon { at, .. }
            | ScheduledReminder::GraceEnding { at, .. } => at,
        }
    }

    /// The event id's tail after `<trial_id>.<kind>.` (see `DomainEvent::for_trial`).
    pub fn discriminator(&self) -> String {
        match *self {
            ScheduledReminder::EndingSoon {
                offset_secs,
                expires_at,
                ..
            } => format!("{expires_at}.{offset_secs}"),
            ScheduledReminder::GraceEnding { purge_at, .. } => purge_at.to_string(),
        }
    }

    pub fn event_id(&self, trial: &TrialId) -> String {
        match *self {
            ScheduledReminder::EndingSoon {
                offset_secs,
                expires_at,
                ..
            } => ending_soon_event_id(trial, expires_at, offset_secs),
            ScheduledReminder::GraceEnding { purge_at, .. } => {
                grace_ending_event_id(trial, purge_at)
            }
        }
    }
}

impl Trial {
    /// Every reminder of the current end, in time order: the ending-soon ones not already past
    /// at `armed_at`, then the grace-ending one (none for an activated reverse trial, never purged).
    /// Empty unless the stored status is ACTIVE, EXPIRED or PENDING (a paused trial's end is not
    /// known until it resumes; converted, canceled and downgraded trials get none); an EXPIRED
    /// or PENDING trial has only the grace-ending one.
    pub fn reminder_schedule(
        &self,
        armed_at: i64,
        terms: &LifecycleTerms,
        policy: TrialPolicy,
    ) -> Vec<ScheduledReminder> {
        let purge_at = self.lifecycle(policy).grace_ends_at();
        let grace = ScheduledReminder::GraceEnding {
            at: grace_reminder_at(self.expires_at, purge_at, terms.grace_reminder_secs),
            purge_at,
        };
        // A reverse trial is never purged: no grace-ending reminder follows its end (unless it
        // was never activated: unused, it lapses and is purged like any other).
        let purged = self.terms.downgrade_to.is_none() || self.activate_by.is_some();
        let grace = Some(grace).filter(|_| purged);
        match self.status {
            TrialStatus::Active => {
                reminders_due(self.expires_at, &terms.reminder_offsets_secs, armed_at)
                    .into_iter()
                    .map(|r| ScheduledReminder::EndingSoon {
                        at: r.at,
                        offset_secs: r.offset_secs,
                        expires_at: self.expires_at,
                    })
                    .chain(grace)
                    .collect()
            }
            // PENDING: no ending-soon reminder (its end is not known until activation; the
            // deadline is not an end), but the grace-ending one of the lapse it is headed for,
            // should it stay unused (an activation re-arms the reminders for the real end).
            TrialStatus::Expired | TrialStatus::Pending => grace.into_iter().collect(),
            TrialStatus::Paused
            | TrialStatus::Converted
            | TrialStatus::Canceled
            | TrialStatus::Downgraded => Vec::new(),
        }
    }

    /// The reminder the `due` index should wait for: the first at or after `from`. Write it with
    /// `from` = now when the end is set (start, extend, resume), and `from` = now + 1 after
    /// publishing a reminder at `now`. `None`: remove the trial from the reminder queue.
    pub fn next_reminder(
        &self,
        from: i64,
        terms: &LifecycleTerms,
        policy: TrialPolicy,
    ) -> Option<ScheduledReminder> {
        self.reminder_schedule(from, terms, policy)
            .into_iter()
            .find(|r| r.at() >= from)
    }

    /// What to publish at `now` for a due entry whose cursor is `cursor` (the time
    /// [`Trial::next_reminder`] returned when it was written): the latest reminder in
    /// `[cursor, now]`, if it still holds at `now`. An ending-soon reminder holds while the
    /// trial is ACTIVE at `now`, a grace-ending one while it is EXPIRED before its purge time.
    /// Settle the trial first (`Trial::settled_at`) so a pause past its maximum counts as resumed.
    pub fn reminder_due(
        &self,
        cursor: i64,
        now: i64,
        terms: &LifecycleTerms,
        policy: TrialPolicy,
    ) -> Option<ScheduledReminder> {
        let lifecycle = self.lifecycle(policy);
        let latest = self
            .reminder_schedule(cursor, terms, policy)
            .into_iter()
            .rev()
            .find(|r| (cursor..=now).contains(&r.at()))?;
        let holds = match latest {
            ScheduledReminder::EndingSoon { .. } => lifecycle.status_at(now) == TrialStatus::Active,
            ScheduledReminder::GraceEnding { purge_at, .. } => {
                lifecycle.status_at(now) == TrialStatus::Expired && now < purge_at
            }
        };
        holds.then_some(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrgId;

    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;

    fn policy() -> TrialPolicy {
        TrialPolicy {
            length_secs: 7 * DAY,
            grace_secs: 3 * DAY,
        }
    }

    fn trial() -> Trial {
        Trial::start(
            TrialId::parse("trial_0123456789abcdef01234567").unwrap(),
            OrgId::parse("org_a").unwrap(),
            0,
            crate::domain::catalog::Catalog::builtin()
                .get("growth")
                .unwrap()
                .snapshot(),
        )
    }

    #[test]
    fn reminders_in_time_order_skipping_those_past_at_start() {
        let offsets = [24 * HOUR, 72 * HOUR, 0, -HOUR, 24 * HOUR];
        assert_eq!(
            reminders_due(7 * DAY, &offsets, 0),
            vec![
                Reminder {
                    offset_secs: 72 * HOUR,
                    at: 4 * DAY
                },
                Reminder {
                    offset_secs: 24 * HOUR,
                    at: 6 * DAY
                },
            ]
        );
        // A 2-day trial: 72 h before its end is before it started.
        assert_eq!(
            reminders_due(2 * DAY, &offsets, 0),
            vec![Reminder {
                offset_secs: 24 * HOUR,
                at: DAY
            }]
        );
        // Due exactly when armed: kept. A second later: skipped.
        assert_eq!(reminders_due(DAY, &[DAY], 0).len(), 1);
        assert_eq!(reminders_due(DAY, &[DAY], 1), vec![]);
    }

    #[test]
    fn event_ids_are_stable_and_name_the_end_and_offset() {
        let t = trial();
        let first = t.next_reminder(0, &LifecycleTerms::default(), policy());
        let again = t.next_reminder(0, &LifecycleTerms::default(), policy());
        assert_eq!(first, again);
        let first = first.unwrap();
        assert_eq!(
            first.event_id(&t.id),
            "trial_0123456789abcdef01234567.ending_soon.604800.259200"
        );
        assert_eq!(first.discriminator(), "604800.259200");
        let grace = ScheduledReminder::GraceEnding {
            at: 9 * DAY,
            purge_at: 10 * DAY,
        };
        assert_eq!(
            grace.event_id(&t.id),
            "trial_0123456789abcdef01234567.grace_ending.864000"
        );
    }

    #[test]
    fn an_active_trial_walks_through_its_reminders_then_the_grace_warning() {
        let (t, terms, policy) = (trial(), LifecycleTerms::default(), policy());
        let mut cursor = 0;
        let mut published = Vec::new();
        while let Some(next) = t.next_reminder(cursor, &terms, policy) {
            let now = next.at();
            if let Some(due) = t.reminder_due(next.at(), now, &terms, policy) {
                published.push(due.event_id(&t.id));
            }
            cursor = now + 1;
        }
        let id = t.id.as_str();
        assert_eq!(
            published,
            vec![
                format!("{id}.ending_soon.604800.259200"),
                format!("{id}.ending_soon.604800.86400"),
                // Purge at 7 d + 3 d grace, warned 24 h before.
                format!("{id}.grace_ending.864000"),
            ]
        );
        let grace = t.next_reminder(7 * DAY, &terms, policy).unwrap();
        assert_eq!(grace.at(), 9 * DAY);
    }

    #[test]
    fn a_late_job_publishes_only_the_latest_reminder_and_nothing_stale() {
        let (t, terms, policy) = (trial(), LifecycleTerms::default(), policy());
        // Cursor at the 72 h reminder, job runs after the 24 h one: only the 24 h one.
        let due = t.reminder_due(4 * DAY, 6 * DAY + 5, &terms, policy);
        assert!(matches!(
            due,
            Some(ScheduledReminder::EndingSoon { offset_secs, .. }) if offset_secs == 24 * HOUR
        ));
        // After expiry, an ending-soon reminder is stale.
        assert_eq!(t.reminder_due(6 * DAY, 7 * DAY, &terms, policy), None);
        // Before the cursor nothing is due.
        assert_eq!(t.reminder_due(4 * DAY, 4 * DAY - 1, &terms, policy), None);
        // The grace warning only while the trial is still there to convert.
        assert!(t.reminder_due(9 * DAY, 9 * DAY, &terms, policy).is_some());
        assert_eq!(t.reminder_due(9 * DAY, 10 * DAY, &terms, policy), None);
    }

    #[test]
    fn converted_canceled_and_paused_trials_get_no_reminders() {
        let (terms, policy) = (LifecycleTerms::default(), policy());
        for status in [
            TrialStatus::Converted,
            TrialStatus::Canceled,
            TrialStatus::Paused,
        ] {
            let t = Trial { status, ..trial() };
            assert_eq!(t.next_reminder(0, &terms, policy), None, "{status:?}");
            assert_eq!(
                t.reminder_due(0, 6 * DAY, &terms, policy),
                None,
                "{status:?}"
            );
        }
        let expired = Trial {
            status: TrialStatus::Expired,
            ..trial()
        };
        assert!(matches!(
            expired.next_reminder(0, &terms, policy),
            Some(ScheduledReminder::GraceEnding { at, .. }) if at == 9 * DAY
        ));
    }

    #[test]
    fn a_grace_shorter_than_the_warning_warns_at_expiry() {
        assert_eq!(grace_reminder_at(100, 190, 24 * HOUR), 100);
        assert_eq!(grace_reminder_at(100, 3 * DAY, DAY), 2 * DAY);
    }
}
