//! The writes of the lifecycle moves (pause, resume, extend, automatic resume) and of the
//! reminder cursors.
//!
//! **Lifecycle update.** A move is computed in memory from the trial as read
//! (`Trial::pause`/`resume`/`extend`) and written with a condition that the item is still
//! exactly that trial's lifecycle: same status, same `expires_at`, same number of active ranges
//! (a pause and a resume within one second leave the first two unchanged, never the third).
//! The write replaces the lifecycle fields and moves the trial's one `due` entry: ACTIVE waits
//! in EXPIRE at `expires_at`, PAUSED in RESUME at `paused_at + pause_max`. A race with cancel,
//! convert, expire or another move fails the condition; the caller re-reads and decides again.
//!
//! **Reminder cursor.** A trial item has one `due_pk`, taken by its expiry, resume or purge; the
//! reminders need their own entry, so each trial has a small second item `REMIND#<trial_id>`
//! whose `due_at` is the time of its next reminder (`Trial::next_reminder`). Start, extend and
//! resume put it (re-arming for the new end), pause deletes it (a paused trial's end is not
//! known). Convert and cancel leave it: the reminder job reads the trial before publishing and
//! drops a cursor whose trial is converted, canceled, paused or gone, so those get no reminder
//! at the cost of one read per left-over cursor. The job advances the cursor in the same
//! transaction as the event it publishes, conditioned on the cursor it read: a run twice, or
//! two overlapping runs, publish once (the event id is deterministic too).
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, Update};

use super::codec::{get_n, get_s, key, n, s, Item, Values};
use super::schema::{reminder_pk, trial_pk, DueQueue, DUE_AT, DUE_PK, REMINDER_SK, TRIAL_SK, TTL};
use super::trials::{ranges_value, ACTIVE_RANGES, PAUSED_AT};
use super::{Store, StoreError};
use crate::domain::{LifecycleTerms, Trial, TrialId, TrialStatus};

/// A reminder cursor as read from the `due` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderCursor {
    pub trial_id: TrialId,
    /// When the next reminder is due (the item's `due_at`).
    pub at: i64,
}

impl ReminderCursor {
    pub fn from_item(item: &Item) -> Result<ReminderCursor, StoreError> {
        let trial_id = get_s(item, "trial_id")
            .and_then(TrialId::parse)
            .ok_or_else(|| StoreError::corrupt("reminder cursor without trial_id"))?;
        let at = get_n(item, DUE_AT)
            .ok_or_else(|| StoreError::corrupt("reminder cursor without due_at"))?;
        Ok(ReminderCursor { trial_id, at })
    }
}

/// Where a trial in `status` waits in the `due` index after a lifecycle move, if it does.
pub fn due_after_move(trial: &Trial, terms: &LifecycleTerms) -> Option<(DueQueue, i64)> {
    match trial.status {
        TrialStatus::Active => Some((DueQueue::Expire, trial.expires_at)),
        TrialStatus::Paused => trial.auto_resume_at(terms).map(|at| (DueQueue::Resume, at)),
        _ => None,
    }
}

impl Store {
    /// Writes `after`'s lifecycle (status, `expires_at`, `paused_at`, ranges, `due` entry) over
    /// `before`, if the item still holds `before`'s lifecycle and org (see the module docs).
    pub fn lifecycle_update(
        &self,
        before: &Trial,
        after: &Trial,
        terms: &LifecycleTerms,
    ) -> Result<Update, StoreError> {
        let mut values = Values::new()
            .s(":org", before.org_id.as_str())
            .s(":from", before.status.as_str())
            .n(":from_expires", before.expires_at)
            .s(":status", after.status.as_str())
            .n(":expires", after.expires_at)
            .build()
            .unwrap_or_default();
        values.insert(":ranges".into(), ranges_value(&after.ranges()));
        let mut set = vec![
            "#status = :status".to_owned(),
            "expires_at = :expires".to_owned(),
            format!("{ACTIVE_RANGES} = :ranges"),
        ];
        let mut remove = Vec::new();
        match after
            .paused_at
            .filter(|_| after.status == TrialStatus::Paused)
        {
            Some(at) => {
                values.insert(":paused_at".into(), n(at));
                set.push(format!("{PAUSED_AT} = :paused_at"));
            }
            None => remove.push(PAUSED_AT.to_owned()),
        }
        match due_after_move(after, terms) {
            Some((queue, at)) => {
                values.insert(
                    ":due_pk".into(),
                    s(queue.partition_for(after.id.as_str(), self.shards)),
                );
                values.insert(":due_at".into(), n(at));
                set.push(format!("{DUE_PK} = :due_pk, {DUE_AT} = :due_at"));
            }
            None => remove.push(format!("{DUE_PK}, {DUE_AT}")),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        // An item stored before ranges were (no attribute) reads as one range.
        let ranges_condition = if before.active_ranges.is_empty() {
            format!("attribute_not_exists({ACTIVE_RANGES})")
        } else {
            values.insert(":nranges".into(), n(before.active_ranges.len() as i64));
            format!("size({ACTIVE_RANGES}) = :nranges")
        };
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&before.id), TRIAL_SK)))
            .update_expression(expression)
            .condition_expression(format!(
                "attribute_exists(pk) AND org_id = :org AND #status = :from AND expires_at = :from_expires AND {ranges_condition}"
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .build()?)
    }

    /// The reminder cursor of `trial` at `at` (unconditional: the latest end set wins, and it is
    /// written in the same transaction as the move that set it).
    pub fn reminder_put(&self, trial: &Trial, at: i64, ttl_at: i64) -> Result<Put, StoreError> {
        let mut item = key(reminder_pk(&trial.id), REMINDER_SK);
        item.insert("trial_id".into(), s(trial.id.as_str()));
        item.insert(
            DUE_PK.into(),
            s(DueQueue::Remind.partition_for(trial.id.as_str(), self.shards)),
        );
        item.insert(DUE_AT.into(), n(at));
        // A cursor nobody advances (the trial was purged) disappears by itself.
        item.insert(TTL.into(), n(ttl_at));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()?)
    }

    /// The cursor of `trial` for what comes after the move to `after` at `now`: a put at its
    /// next reminder, or a delete when there is none (paused, or nothing left to remind).
    pub fn reminder_rearm(
        &self,
        after: &Trial,
        now: i64,
        terms: &LifecycleTerms,
        policy: crate::domain::TrialPolicy,
    ) -> Result<ReminderWrite, StoreError> {
        Ok(match after.next_reminder(now, terms, policy) {
            Some(next) => ReminderWrite::Put(self.reminder_put(
                after,
                next.at(),
                after.lifecycle(policy).grace_ends_at() + 86_400,
            )?),
            None => ReminderWrite::Delete(self.reminder_delete(&after.id, None)?),
        })
    }

    /// Deletes `id`'s cursor; with `cursor`, only if it still waits at that time.
    pub fn reminder_delete(&self, id: &TrialId, cursor: Option<i64>) -> Result<Delete, StoreError> {
        let builder = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(reminder_pk(id), REMINDER_SK)));
        let builder = match cursor {
            Some(at) => builder
                .condition_expression("due_at = :cursor")
                .set_expression_attribute_values(Values::new().n(":cursor", at).build()),
            None => builder,
        };
        Ok(builder.build()?)
    }

    /// Moves `id`'s cursor from `cursor` to `next`, only if it still waits at `cursor`.
    pub fn reminder_advance(
        &self,
        id: &TrialId,
        cursor: i64,
        next: i64,
    ) -> Result<Update, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(reminder_pk(id), REMINDER_SK)))
            .update_expression("SET due_at = :next")
            .condition_expression("due_at = :cursor")
            .set_expression_attribute_values(
                Values::new().n(":cursor", cursor).n(":next", next).build(),
            )
            .build()?)
    }

    /// A check that the trial still has the status and end a reminder was computed from.
    pub fn trial_unchanged_check(&self, trial: &Trial) -> Result<ConditionCheck, StoreError> {
        Ok(ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .condition_expression("#status = :status AND expires_at = :expires")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":status", trial.status.as_str())
                    .n(":expires", trial.expires_at)
                    .build(),
            )
            .build()?)
    }
}

/// A reminder cursor write that goes with a lifecycle move.
pub enum ReminderWrite {
    Put(Put),
    Delete(Delete),
}

impl<'a> super::Tx<'a> {
    /// Adds the cursor write in slot `Reminder`.
    pub fn reminder(self, write: ReminderWrite) -> super::Tx<'a> {
        match write {
            ReminderWrite::Put(put) => self.put(super::Slot::Reminder, put),
            ReminderWrite::Delete(delete) => self.delete(super::Slot::Reminder, delete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ActiveRange;
    use crate::store::trials::trial_from_item;

    fn item(extra: &[(&str, aws_sdk_dynamodb::types::AttributeValue)]) -> Item {
        let mut item = key("TRIAL#trial_0123456789abcdef01234567", TRIAL_SK);
        for (name, value) in [
            ("trial_id", s("trial_0123456789abcdef01234567")),
            ("org_id", s("org_a")),
            ("plan", s("growth")),
            ("status", s("PAUSED")),
            ("started_at", n(100)),
            ("expires_at", n(700)),
        ] {
            item.insert(name.into(), value);
        }
        for (name, value) in extra {
            item.insert((*name).into(), value.clone());
        }
        item
    }

    #[test]
    fn ranges_and_paused_at_round_trip_and_old_items_read_as_one_range() {
        let ranges = [ActiveRange::new(100, 300), ActiveRange::new(400, 600)];
        let trial = trial_from_item(&item(&[
            (ACTIVE_RANGES, ranges_value(&ranges)),
            (PAUSED_AT, n(300)),
        ]))
        .unwrap();
        assert_eq!(trial.active_ranges, ranges.to_vec());
        assert_eq!(trial.paused_at, Some(300));
        let legacy = trial_from_item(&item(&[])).unwrap();
        assert!(legacy.active_ranges.is_empty());
        assert_eq!(legacy.ranges(), vec![ActiveRange::new(100, 700)]);
        assert_eq!(legacy.paused_at, None);
        let corrupt = trial_from_item(&item(&[(ACTIVE_RANGES, s("soon"))]));
        assert!(corrupt.is_err());
    }

    #[test]
    fn a_paused_trial_waits_in_resume_and_an_active_one_in_expire() {
        let terms = LifecycleTerms::default();
        let mut trial = trial_from_item(&item(&[(PAUSED_AT, n(300))])).unwrap();
        assert_eq!(
            due_after_move(&trial, &terms),
            Some((DueQueue::Resume, 300 + terms.pause_max_secs))
        );
        trial.status = TrialStatus::Active;
        assert_eq!(
            due_after_move(&trial, &terms),
            Some((DueQueue::Expire, 700))
        );
        trial.status = TrialStatus::Canceled;
        assert_eq!(due_after_move(&trial, &terms), None);
    }
}
