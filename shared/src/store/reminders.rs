//! The reminder cursors: a trial item has one `due_pk`, taken by its expiry, resume or purge;
//! the reminders need their own entry, so each trial has a small second item
//! `REMIND#<trial_id>` whose `due_at` is the time of its next reminder (`Trial::next_reminder`).
//! Start, extend and resume put it (re-arming for the new end), pause deletes it (a paused
//! trial's end is not known). Convert and cancel leave it: the reminder job reads the trial
//! before publishing and drops a cursor whose trial is converted, canceled, paused or gone, so
//! those get no reminder at the cost of one read per left-over cursor. The job advances the
//! cursor in the same transaction as the event it publishes, conditioned on the cursor it
//! read: a run twice, or two overlapping runs, publish once (the event id is deterministic too).
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, Update};

use super::codec::{get_n, get_s, key, n, s, Item, Values};
use super::schema::{reminder_pk, trial_pk, DueQueue, DUE_AT, DUE_PK, REMINDER_SK, TRIAL_SK, TTL};
use super::{Store, StoreError};
use crate::domain::{LifecycleTerms, Trial, TrialId};

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

impl Store {
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
