//! The writes of the lifecycle moves: pause, resume (asked, or automatic), extend and
//! activate.
//!
//! A move is computed in memory from the trial as read (`Trial::pause`/`resume`/`extend`, which
//! ask the state machine's table at `now`) and written with a condition that the item is still
//! exactly that trial's lifecycle: same status, same `expires_at`, same active ranges (their
//! number and the last one's start) and the same pause count (`pauses`, which names the pause
//! and resume events: a pause and a resume within one second leave the first two unchanged,
//! and past the bound on the ranges the ranges too, never the count).
//! This is how the state machine's rule reaches the write here: the table's answer is a
//! function of (status, `expires_at`, `now`), the condition pins the first two and the write
//! carries the same `now`, so the item cannot hold a state the table did not allow (the
//! integration test `state_machine` checks it for every pair). The write replaces the
//! lifecycle fields and moves the trial's one `due` entry: ACTIVE waits in EXPIRE at
//! `expires_at`, PAUSED in RESUME at `paused_at + pause_max`. A race with cancel, convert,
//! expire or another move fails the condition; the caller re-reads and decides again.
use aws_sdk_dynamodb::types::Update;

use super::codec::{key, n, s, Item, Values};
use super::conditions::state_condition;
use super::schema::{
    ranges_value, trial_pk, DueQueue, ACTIVATE_BY, ACTIVE_RANGES, DUE_AT, DUE_PK, TRIAL_SK,
};
use super::trials::{DOWNGRADE_TO, NO_PENDING, PAUSED_AT, PAUSES, TERMS, USED};
use super::{Store, StoreError};
use crate::domain::state_machine::Action;
use crate::domain::{LifecycleTerms, Trial, TrialStatus};

/// Where a trial in `status` waits in the `due` index after a lifecycle move, if it does.
pub fn due_after_move(trial: &Trial, terms: &LifecycleTerms) -> Option<(DueQueue, i64)> {
    match trial.status {
        TrialStatus::Active => Some((DueQueue::Expire, trial.expires_at)),
        TrialStatus::Paused => trial.auto_resume_at(terms).map(|at| (DueQueue::Resume, at)),
        _ => None,
    }
}

/// A lifecycle write in parts, so that a move with more to write (a plan change) adds its own
/// before the update is built.
struct LifecycleWrite {
    set: Vec<String>,
    remove: Vec<String>,
    values: Item,
    names: Vec<(String, String)>,
    condition: String,
}

/// The condition that the item still holds `before`'s lifecycle and org, its values added to
/// `values` (`#status` and, with ranges, `#range_start` are the caller's names).
fn lifecycle_read(before: &Trial, values: &mut Item) -> String {
    values.insert(":org".into(), s(before.org_id.as_str()));
    values.insert(":from".into(), s(before.status.as_str()));
    values.insert(":from_expires".into(), n(before.expires_at));
    // An item stored before ranges were (no attribute) reads as one range.
    // The count, and the last range's start: once the ranges are bounded
    // (`domain::active_ranges::MAX_RANGES`) a resume no longer changes the count, but it
    // always opens a range that starts later.
    let ranges = match before.active_ranges.last() {
        None => format!("attribute_not_exists({ACTIVE_RANGES})"),
        Some(last) => {
            let at = before.active_ranges.len() - 1;
            values.insert(":nranges".into(), n(before.active_ranges.len() as i64));
            values.insert(":last_start".into(), n(last.start));
            format!(
                "size({ACTIVE_RANGES}) = :nranges AND {ACTIVE_RANGES}[{at}].#range_start = :last_start"
            )
        }
    };
    // The pause count as read: an item without one (never paused, or from before the count)
    // must still have none. A pause and a resume within one second past the bound on the
    // ranges leave everything else as it was.
    let pauses = match before.pauses {
        Some(pauses) => {
            values.insert(":from_pauses".into(), n(pauses));
            format!("{PAUSES} = :from_pauses")
        }
        None => format!("attribute_not_exists({PAUSES})"),
    };
    format!(
        "attribute_exists(pk) AND org_id = :org AND #status = :from \
         AND expires_at = :from_expires AND {ranges} AND {pauses}"
    )
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
        self.build_lifecycle(before, self.lifecycle_write(before, after, terms))
    }

    /// A plan change (`domain::plan_change`): `after`'s lifecycle as [`Store::lifecycle_update`]
    /// writes it, its plan and terms, on condition that the state machine allows
    /// [`Action::ChangePlan`] at `now`, the item is still on `before`'s plan with no payable
    /// session and no payment on its way, and, unless
    /// `force`, no use so far is above a limit of the new plan (a usage recorded since the read
    /// counts: the invariant is in the condition).
    pub fn plan_change_update(
        &self,
        before: &Trial,
        after: &Trial,
        force: bool,
        now: i64,
        terms: &LifecycleTerms,
    ) -> Result<Update, StoreError> {
        let mut write = self.lifecycle_write(before, after, terms);
        let state = state_condition(Action::ChangePlan, now, before.terms.grace_secs);
        write.values = state
            .add_values(Values::new())
            .s(":plan", after.plan.as_str())
            .s(":from_plan", before.plan.as_str())
            .s(":terms", after.terms.to_json())
            .extend(std::mem::take(&mut write.values))
            .build()
            .unwrap_or_default();
        write.values.insert(":now".into(), n(now));
        write
            .values
            .insert(":stale".into(), n(self.pending_stale_at(now)));
        write.set.push(format!("#plan = :plan, {TERMS} = :terms"));
        write.names.push(("#plan".into(), "plan".into()));
        // The new plan's end: a plan that downgrades marks the item so (`store::conditions`).
        match &after.terms.downgrade_to {
            Some(free) => {
                write.set.push(format!("{DOWNGRADE_TO} = :downgrade_to"));
                write
                    .values
                    .insert(":downgrade_to".into(), s(free.plan.as_str()));
            }
            None => write.remove.push(DOWNGRADE_TO.to_owned()),
        }
        // A payable session or a payment on its way is for the plan as it is (see
        // `domain::plan_change`).
        write.condition.push_str(&format!(
            " AND #plan = :from_plan AND {} AND {NO_PENDING} \
             AND (attribute_not_exists(checkout_session_id) OR checkout_expires_at <= :now)",
            state.expression()
        ));
        let limits = after.terms.options.iter().filter(|o| o.is_limit && !force);
        for (i, option) in limits.enumerate() {
            let (name, value) = (format!("#lim{i}"), format!(":lim{i}"));
            write.condition.push_str(&format!(
                " AND (attribute_not_exists({USED}.{name}) OR {USED}.{name} <= {value})"
            ));
            write.names.push((name, option.internal_name.clone()));
            write.values.insert(value, n(option.value));
        }
        self.build_lifecycle(before, write)
    }

    /// An activation (`Trial::activate`): `after`'s lifecycle as [`Store::lifecycle_update`]
    /// writes it (ACTIVE, its end, its first range, the EXPIRE entry at the end), on condition
    /// that the state machine allows [`Action::Activate`] at `now` (PENDING, before its
    /// deadline), besides the lifecycle read.
    pub fn activation_update(
        &self,
        before: &Trial,
        after: &Trial,
        now: i64,
        terms: &LifecycleTerms,
    ) -> Result<Update, StoreError> {
        let mut write = self.lifecycle_write(before, after, terms);
        let state = state_condition(Action::Activate, now, before.terms.grace_secs);
        write.condition = format!("{} AND {}", write.condition, state.expression());
        let state_values = state.add_values(Values::new()).build();
        write.values.extend(state_values.unwrap_or_default());
        self.build_lifecycle(before, write)
    }

    fn lifecycle_write(
        &self,
        before: &Trial,
        after: &Trial,
        terms: &LifecycleTerms,
    ) -> LifecycleWrite {
        let mut values = Values::new()
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
        if let Some(pauses) = after.pauses {
            values.insert(":pauses".into(), n(pauses));
            set.push(format!("{PAUSES} = :pauses"));
        }
        let mut remove = Vec::new();
        // Activated (or revived by an extension) at last: no longer awaiting activation.
        if before.activate_by.is_some() && after.activate_by.is_none() {
            remove.push(ACTIVATE_BY.to_owned());
        }
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
        let mut names = vec![("#status".to_owned(), "status".to_owned())];
        if !before.active_ranges.is_empty() {
            names.push(("#range_start".into(), "start".into()));
        }
        let condition = lifecycle_read(before, &mut values);
        LifecycleWrite {
            set,
            remove,
            values,
            names,
            condition,
        }
    }

    fn build_lifecycle(&self, before: &Trial, write: LifecycleWrite) -> Result<Update, StoreError> {
        let mut expression = format!("SET {}", write.set.join(", "));
        if !write.remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", write.remove.join(", ")));
        }
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&before.id), TRIAL_SK)))
            .update_expression(expression)
            .condition_expression(write.condition)
            .set_expression_attribute_names(Some(write.names.into_iter().collect()))
            .set_expression_attribute_values(Some(write.values))
            .build()?)
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
