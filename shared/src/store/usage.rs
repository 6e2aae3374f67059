//! Usage of a trial's limited options: a map attribute `used` on the trial item (option
//! internal name -> number), changed by one conditional `UpdateItem` handed to a
//! [`Tx`](super::tx::Tx) with the idempotency record and the limit events.
//!
//! **Invariant.** The stored usage never exceeds the option's value, and the events the caller
//! decided from the value it read are exactly the ones this write crosses. Far from a
//! threshold the condition is a range (`used + q` stays below the warning threshold), so
//! concurrent callers all succeed; from there on it is the exact value read, so only one of
//! concurrent callers wins each step and the others re-read (cost: a retry per lost race, only
//! in the last 20 % of a limit).
use aws_sdk_dynamodb::types::Update;

use super::codec::{key, Values};
use super::conditions::state_condition;
use super::schema::{trial_pk, DueQueue, TRIAL_SK};
use super::trials::{EXPIRY_REASON, USED};
use super::{Store, StoreError};
use crate::domain::state_machine::Action;
use crate::domain::trial::EXPIRY_LIMIT_REACHED;
use crate::domain::usage::warning_threshold;
use crate::domain::{Trial, TrialStatus};

/// One recording, as decided from the trial read.
#[derive(Debug, Clone)]
pub struct UsageWrite<'a> {
    pub trial: &'a Trial,
    pub option: &'a str,
    pub value: i64,
    /// Usage as read (0 when absent).
    pub before: i64,
    pub quantity: i64,
    /// The recording reaches a limit that ends the trial: EXPIRED now, grace from now.
    pub ends_trial: bool,
}

impl Store {
    pub fn usage_update(&self, w: &UsageWrite<'_>, now: i64) -> Result<Update, StoreError> {
        let after = w.before + w.quantity;
        let range = after < warning_threshold(w.value);
        let state = state_condition(Action::Usage, now, w.trial.terms.grace_secs);
        let mut values = state
            .add_values(Values::new())
            .n(":q", w.quantity)
            .n(":zero", 0)
            .s(":org", w.trial.org_id.as_str())
            .s(":plan", w.trial.plan.as_str());
        let used = format!("{USED}.#opt");
        // On the plan whose limit was read: a plan change since the read fails it.
        let mut condition = format!(
            "attribute_exists(pk) AND org_id = :org AND #plan = :plan AND {} AND ",
            state.expression()
        );
        if range {
            // Below the warning threshold whatever others recorded since the read.
            values = values.n(":below", warning_threshold(w.value) - w.quantity);
            condition.push_str(&format!(
                "(attribute_not_exists({used}) OR {used} < :below)"
            ));
        } else if w.before == 0 {
            condition.push_str(&format!("attribute_not_exists({used})"));
        } else {
            values = values.n(":before", w.before);
            condition.push_str(&format!("{used} = :before"));
        }
        let mut set = format!("{used} = if_not_exists({used}, :zero) + :q");
        if w.ends_trial {
            values = values
                .n(":now", now)
                .s(":expired", TrialStatus::Expired.as_str())
                .s(":reason", EXPIRY_LIMIT_REACHED)
                .s(
                    ":due_pk",
                    DueQueue::Purge.partition_for(w.trial.id.as_str(), self.shards),
                )
                .n(":due_at", now + w.trial.terms.grace_secs);
            set.push_str(&format!(
                ", #status = :expired, expires_at = :now, {EXPIRY_REASON} = :reason, due_pk = :due_pk, due_at = :due_at"
            ));
        }
        // An ended trial's current active range ends now too (the ranges' invariant,
        // `domain::active_ranges`), conditioned on the ranges as read.
        let last_range = (w.trial.active_ranges.len())
            .checked_sub(1)
            .filter(|_| w.ends_trial);
        let mut update = Update::builder();
        if let Some(last) = last_range {
            values = values.n(":nranges", last as i64 + 1);
            condition.push_str(" AND size(active_ranges) = :nranges");
            set.push_str(&format!(", active_ranges[{last}].#range_end = :now"));
            update = update.expression_attribute_names("#range_end", "end");
        }
        Ok(update
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&w.trial.id), TRIAL_SK)))
            .update_expression(format!("SET {set}"))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_names("#opt", w.option)
            .set_expression_attribute_values(values.build())
            .build()?)
    }
}
