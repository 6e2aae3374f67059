//! The admin's change to a trial (`PATCH /v1/trials/{id}`): a new `expires_at`, which moves the
//! trial's entry in the `due` index (the expire job finds it at its new time), and `notes`.
//! Conditional on the trial still being the org's, ACTIVE and unexpired at the moment of the
//! write, like cancel: a racing expiry, cancel or conversion fails the condition. A new
//! `expires_at` also moves the end of the current active range (issue 16's ranges, as
//! [`Trial::ending_at`] computes them), so the write is conditioned, like a lifecycle move, on
//! the end and the number of ranges it read: a racing extension or `PATCH` fails it too.
use aws_sdk_dynamodb::types::Update;

use super::codec::{key, Values};
use super::conditions::state_condition;
use super::schema::{ranges_value, trial_pk, DueQueue, ACTIVE_RANGES, DUE_AT, DUE_PK, TRIAL_SK};
use super::{Store, StoreError};
use crate::domain::state_machine::Action;
use crate::domain::Trial;

/// What a `PATCH` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminChange {
    pub expires_at: Option<i64>,
    /// `Some(None)` removes the notes.
    pub notes: Option<Option<String>>,
}

impl Store {
    /// `trial` as read; `after`, the trial with the change applied (its ranges are written when
    /// `expires_at` changes).
    pub fn admin_update(
        &self,
        trial: &Trial,
        after: &Trial,
        change: &AdminChange,
        now: i64,
    ) -> Result<Update, StoreError> {
        let state = state_condition(Action::AdminChange, now, trial.terms.grace_secs);
        let mut values = state
            .add_values(Values::new())
            .s(":org", trial.org_id.as_str());
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut condition = format!(
            "attribute_exists(pk) AND org_id = :org AND {}",
            state.expression()
        );
        if let Some(at) = change.expires_at {
            set.push(format!(
                "expires_at = :exp, {DUE_PK} = :due_pk, {DUE_AT} = :exp, {ACTIVE_RANGES} = :ranges"
            ));
            values = values
                .n(":exp", at)
                .s(
                    ":due_pk",
                    DueQueue::Expire.partition_for(trial.id.as_str(), self.shards),
                )
                .n(":from_expires", trial.expires_at);
            condition.push_str(" AND expires_at = :from_expires");
            // An item stored before ranges were (no attribute) reads as one range.
            if trial.active_ranges.is_empty() {
                condition.push_str(&format!(" AND attribute_not_exists({ACTIVE_RANGES})"));
            } else {
                values = values.n(":nranges", trial.active_ranges.len() as i64);
                condition.push_str(&format!(" AND size({ACTIVE_RANGES}) = :nranges"));
            }
        }
        match &change.notes {
            Some(Some(notes)) => {
                set.push("notes = :notes".to_owned());
                values = values.s(":notes", notes);
            }
            Some(None) => remove.push("notes"),
            None => {}
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression.push_str(&format!("SET {}", set.join(", ")));
        }
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut values = values.build().unwrap_or_default();
        if change.expires_at.is_some() {
            values.insert(":ranges".into(), ranges_value(&after.ranges()));
        }
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(expression.trim())
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .build()?)
    }
}
