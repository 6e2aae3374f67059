//! Usage of a trial's limited options: a map attribute `used` on the trial item (option
//! internal name -> number), changed by one conditional `UpdateItem` that also records the
//! request's key on the item (`usage_keys`, `usage_after`: see [`crate::domain::usage`]).
//!
//! **Invariant.** The stored usage never exceeds the option's value, a key is counted at most
//! once, and the events the caller decided from the value it read are exactly the ones this
//! write crosses. A recording that crosses nothing (the warning threshold, the limit) is
//! conditioned on a range (`used + q` stays below the next threshold) and on its key being new:
//! concurrent callers all succeed, and it goes as a single `UpdateItem`, which DynamoDB
//! serialises on the item without conflicts (no transaction holds it). Only a crossing
//! recording is conditioned on the exact value read and goes as a transaction with its limit
//! events (deterministic ids, each put on condition it does not exist): one per threshold per
//! option, so at most two or three transactions in a trial's life hold the item. A trial
//! stored before keys were recorded gets its first key by an exact write that creates the maps.
//!
//! **The first usage of a PENDING trial activates it** in the same write (ACTIVE from then,
//! its end, its first range; conditioned on the item still being PENDING, so two concurrent
//! first usages activate once and both count: the loser decides again on the ACTIVE trial).
//! That write is a transaction, not the single `UpdateItem`: `trial.activated` (and its
//! timeline entry) and the reminder cursor for the new end must commit with the activation, or
//! a crash between them would leave an activated trial without its event or reminders. It
//! happens once in a trial's life.
//!
//! Cost: one `UpdateItem` per recording, the item's size in write units (4 for a new trial of
//! the example catalog, 8 once it carries [`crate::domain::usage::KEPT_KEYS`] keys); a crossing
//! one, a transaction of the item and its events (twice that).
use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Update};

use super::codec::{key, n, s, Item, Values};
use super::conditions::state_condition;
use super::reminders::ReminderWrite;
use super::schema::{
    ranges_value, trial_pk, DueQueue, ACTIVATE_BY, ACTIVE_RANGES, EXPIRY_REASON, TRIAL_SK, USED,
};
use super::tx::{Outcome, Slot};
use super::{Store, StoreError};
use crate::domain::events::DomainEvent;
use crate::domain::state_machine::Action;
use crate::domain::trial::EXPIRY_LIMIT_REACHED;
use crate::domain::usage::{
    crosses, keys_to_prune, warning_threshold, RecordedKey, FINGERPRINT_CHARS, MAX_KEYS,
};
use crate::domain::{ActiveRange, Trial, TrialStatus};

/// The recorded keys: key id -> the request's fingerprint (its first 16 characters).
pub const USAGE_KEYS: &str = "usage_keys";
/// The usage after each recorded key's recording: key id -> number.
pub const USAGE_AFTER: &str = "usage_after";
/// Each recorded key's place in the commit order: key id -> number (what pruning orders by).
pub const USAGE_SEQ: &str = "usage_seq";
/// How many recordings the trial has had (the counter `usage_seq` takes its numbers from).
pub const RECORDINGS: &str = "usage_recordings";

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
    /// The request's key ([`crate::domain::usage::key_id`]) and fingerprint, recorded with it.
    pub key_id: &'a str,
    pub fingerprint: &'a str,
}

/// How a recording's write ended.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Counted; the option's usage right after it.
    Done { after: i64 },
    /// The trial's condition failed: the item as it was (`None`: no item).
    Refused(Option<Item>),
    /// A crossing recording's transaction was cancelled for a conflict (another transaction on
    /// the item, most likely another caller crossing the same threshold): nothing written. The
    /// caller reads the trial again rather than resend a transaction decided on a stale read.
    Conflict,
}

impl Store {
    /// Writes the recording `w` (and its limit `events`, when it crosses a threshold, with
    /// their timeline entries by `actor`, the request's key id; and, for the first usage of a
    /// PENDING trial, `trial.activated` and the reminder cursor armed for its new end).
    pub async fn record_usage(
        &self,
        w: &UsageWrite<'_>,
        (events, reminder): (&[DomainEvent], Option<ReminderWrite>),
        actor: &str,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        let update = self.usage_update(w, now)?;
        if events.is_empty() && reminder.is_none() {
            return Ok(match self.update_returning(update).await? {
                Ok(new) => Recorded::Done {
                    after: used_after(&new, w.option)
                        .ok_or_else(|| StoreError::corrupt("usage update without its usage"))?,
                },
                Err(old) => Recorded::Refused(old),
            });
        }
        let mut tx = self.tx().update(Slot::Trial, update).by(actor);
        for event in events {
            tx = tx.event(event, now)?;
        }
        if let Some(reminder) = reminder {
            tx = tx.reminder(reminder);
        }
        match tx.commit_once().await? {
            None => Ok(Recorded::Conflict),
            Some(Outcome::Committed) => Ok(Recorded::Done {
                after: w.before + w.quantity,
            }),
            Some(Outcome::Rejected(r)) if r.failed(Slot::Trial) => {
                Ok(Recorded::Refused(r.old(Slot::Trial).cloned()))
            }
            // The exact condition makes the crossing recording the only one that writes its
            // events: an event alone refused is a broken invariant, not an answer.
            Some(Outcome::Rejected(r)) => Err(StoreError::Unavailable(format!(
                "usage rejected on {:?}",
                r.slots().collect::<Vec<_>>()
            ))),
        }
    }

    pub fn usage_update(&self, w: &UsageWrite<'_>, now: i64) -> Result<Update, StoreError> {
        let state = state_condition(Action::Usage, now, w.trial.terms.grace_secs);
        let mut values = state
            .add_values(Values::new())
            .n(":q", w.quantity)
            .n(":zero", 0)
            .s(":org", w.trial.org_id.as_str())
            .s(":plan", w.trial.plan.as_str());
        // On the plan whose limit was read: a plan change since the read fails it.
        let mut condition = format!(
            "attribute_exists(pk) AND org_id = :org AND #plan = :plan AND {} AND ",
            state.expression()
        );
        let (keys, mut usage) = self.key_record(w, &mut values, &mut condition);
        let used = format!("{USED}.#opt");
        let threshold = warning_threshold(w.value);
        let exact = w.trial.usage_keys.is_none() || crosses(w.value, w.before, w.quantity);
        if !exact {
            // Below the next threshold whatever others recorded since the read (usage only
            // grows, so one read at or past the warning threshold stays past it).
            let next = match w.before + w.quantity < threshold {
                true => threshold,
                false => w.value,
            };
            values = values.n(":below", next - w.quantity);
            condition.push_str(&format!(
                " AND (attribute_not_exists({used}) OR {used} < :below)"
            ));
        } else if w.before == 0 {
            // Absent, or stored as 0 (by a write that set the map): both read as 0.
            values = values.n(":before", 0);
            condition.push_str(&format!(
                " AND (attribute_not_exists({used}) OR {used} = :before)"
            ));
        } else {
            values = values.n(":before", w.before);
            condition.push_str(&format!(" AND {used} = :before"));
        }
        let mut set = format!("{used} = if_not_exists({used}, :zero) + :q, {keys}");
        if w.ends_trial {
            let (with_end, clauses) = self.end_clauses(w, now, values);
            values = with_end;
            set.push_str(&clauses);
        }
        // An ended trial's current active range ends now too (the ranges' invariant,
        // `domain::active_ranges`), conditioned on the ranges as read.
        let last_range = (w.trial.active_ranges.len())
            .checked_sub(1)
            .filter(|_| w.ends_trial);
        let mut update = Update::builder();
        values = self.activation(w, now, values, &mut set, &mut condition, &mut usage.remove);
        if let Some(last) = last_range {
            values = values.n(":nranges", last as i64 + 1);
            condition.push_str(" AND size(active_ranges) = :nranges");
            set.push_str(&format!(", active_ranges[{last}].#range_end = :now"));
            update = update.expression_attribute_names("#range_end", "end");
        }
        for (name, attribute) in usage.names {
            update = update.expression_attribute_names(name, attribute);
        }
        Ok(update
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&w.trial.id), TRIAL_SK)))
            .update_expression(format!("SET {set}{}", usage.remove))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_names("#opt", w.option)
            .set_expression_attribute_values(values.build())
            .build()?)
    }

    /// The activation's part of a first usage of a PENDING trial (`Trial::activate` at `now`):
    /// on condition the item is still PENDING (two first usages activate once: the second is
    /// refused, reads the ACTIVE trial and counts on it), ACTIVE from `now` with its end, first
    /// range and EXPIRE entry, and no longer awaiting activation. A usage that reaches a limit
    /// ending the trial leaves it EXPIRED (its own part), with the range `[now, now]`. Nothing
    /// for a trial read in another state.
    fn activation(
        &self,
        w: &UsageWrite<'_>,
        now: i64,
        values: Values,
        set: &mut String,
        condition: &mut String,
        remove: &mut String,
    ) -> Values {
        if w.trial.status != TrialStatus::Pending {
            return values;
        }
        let end = match w.ends_trial {
            true => now,
            false => now + w.trial.terms.trial_length_secs,
        };
        let mut values = values.s(":pending", TrialStatus::Pending.as_str()).extend(
            [(
                ":act_ranges".to_owned(),
                ranges_value(&[ActiveRange::new(now, end)]),
            )]
            .into(),
        );
        condition.push_str(" AND #status = :pending");
        set.push_str(&format!(", {ACTIVE_RANGES} = :act_ranges"));
        if !w.ends_trial {
            values = values
                .s(":active", TrialStatus::Active.as_str())
                .n(":act_end", end)
                .s(
                    ":act_due_pk",
                    DueQueue::Expire.partition_for(w.trial.id.as_str(), self.shards),
                );
            set.push_str(
                ", #status = :active, expires_at = :act_end, due_pk = :act_due_pk, due_at = :act_end",
            );
        }
        if w.ends_trial && w.trial.terms.downgrade_to.is_some() {
            // A reverse trial's limit ends its time, not its status (`end_clauses`): ACTIVE and
            // ending, downgraded by the expire job.
            values = values.s(":active", TrialStatus::Active.as_str());
            set.push_str(", #status = :active");
        }
        match remove.is_empty() {
            true => remove.push_str(&format!(" REMOVE {ACTIVATE_BY}")),
            false => remove.push_str(&format!(", {ACTIVATE_BY}")),
        }
        values
    }

    /// The `SET` clauses, and their values, of a recording that reaches a limit ending the
    /// trial: EXPIRED now, its grace from now. A reverse trial's time ends now instead (ending:
    /// DOWNGRADED to callers at once) and the expire job, due now, writes its downgrade.
    fn end_clauses(&self, w: &UsageWrite<'_>, now: i64, values: Values) -> (Values, String) {
        let id = w.trial.id.as_str();
        let values = values.n(":now", now).s(":reason", EXPIRY_LIMIT_REACHED);
        let ended = format!("expires_at = :now, {EXPIRY_REASON} = :reason");
        if w.trial.terms.downgrade_to.is_some() {
            let due = DueQueue::Expire.partition_for(id, self.shards);
            let values = values.s(":due_pk", due).n(":due_at", now);
            return (
                values,
                format!(", {ended}, due_pk = :due_pk, due_at = :due_at"),
            );
        }
        let values = values
            .s(":expired", TrialStatus::Expired.as_str())
            .s(":due_pk", DueQueue::Purge.partition_for(id, self.shards))
            .n(":due_at", now + w.trial.terms.grace_secs);
        let clauses = format!(", #status = :expired, {ended}, due_pk = :due_pk, due_at = :due_at");
        (values, clauses)
    }

    /// The key's part of the update: its `SET` clauses (returned), its condition (appended),
    /// and the names and `REMOVE` clause of the keys it prunes.
    fn key_record(
        &self,
        w: &UsageWrite<'_>,
        values: &mut Values,
        condition: &mut String,
    ) -> (String, KeyNames) {
        let entry = s(short(w.fingerprint));
        *values = std::mem::take(values).n(":one", 1);
        let Some(recorded) = &w.trial.usage_keys else {
            // The first key of a trial stored before keys were: the write that creates the
            // maps is exact, so the usage after it is known here.
            let after = n(w.before + w.quantity);
            let one = |v| AttributeValue::M([(w.key_id.to_owned(), v)].into());
            let maps = [
                (":keys", one(entry)),
                (":afters", one(after)),
                (":seqs", one(n(1))),
            ];
            *values = std::mem::take(values).extend(maps.map(|(k, v)| (k.to_owned(), v)).into());
            condition.push_str(&format!("attribute_not_exists({USAGE_KEYS})"));
            let set = format!(
                "{USAGE_KEYS} = :keys, {USAGE_AFTER} = :afters, {USAGE_SEQ} = :seqs, {RECORDINGS} = :one"
            );
            let (names, remove) = (Vec::new(), String::new());
            return (set, KeyNames { names, remove });
        };
        let mut names = vec![("#k".to_owned(), w.key_id.to_owned())];
        *values = std::mem::take(values).extend([(":entry".to_owned(), entry)].into());
        condition.push_str(&format!("attribute_not_exists({USAGE_KEYS}.#k) AND "));
        if recorded.len() + 1 < MAX_KEYS {
            // Room: whatever others added since the read, at most MAX_KEYS after this write.
            *values = std::mem::take(values).n(":max_keys", MAX_KEYS as i64);
            condition.push_str(&format!("size({USAGE_KEYS}) < :max_keys"));
        } else {
            // Full (concurrent writes pushed it there): this write may not grow the map. No
            // more keys than read, and the oldest it prunes still there (so it removes at
            // least one while it adds one): the map never exceeds MAX_KEYS.
            *values = std::mem::take(values).n(":read_keys", recorded.len() as i64);
            condition.push_str(&format!(
                "size({USAGE_KEYS}) <= :read_keys AND attribute_exists({USAGE_KEYS}.#p0)"
            ));
        }
        let mut removed = Vec::new();
        for (i, old) in keys_to_prune(recorded).into_iter().enumerate() {
            names.push((format!("#p{i}"), old.to_owned()));
            removed.push(format!(
                "{USAGE_KEYS}.#p{i}, {USAGE_AFTER}.#p{i}, {USAGE_SEQ}.#p{i}"
            ));
        }
        let remove = match removed.is_empty() {
            true => String::new(),
            false => format!(" REMOVE {}", removed.join(", ")),
        };
        let set = format!(
            "{USAGE_KEYS}.#k = :entry, {USAGE_AFTER}.#k = if_not_exists({USED}.#opt, :zero) + :q, \
             {USAGE_SEQ}.#k = if_not_exists({RECORDINGS}, :zero) + :one, \
             {RECORDINGS} = if_not_exists({RECORDINGS}, :zero) + :one"
        );
        (set, KeyNames { names, remove })
    }
}

/// The names of the key's update and its `REMOVE` clause (empty, or ` REMOVE ...`).
struct KeyNames {
    names: Vec<(String, String)>,
    remove: String,
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..FINGERPRINT_CHARS).unwrap_or(fingerprint)
}

/// Whether `fingerprint` is the one a key was recorded with.
pub fn same_request(recorded: &RecordedKey, fingerprint: &str) -> bool {
    recorded.fingerprint == short(fingerprint)
}

/// `used.<option>` in a `ReturnValues = UPDATED_NEW` answer.
fn used_after(new: &Item, option: &str) -> Option<i64> {
    new.get(USED)?
        .as_m()
        .ok()?
        .get(option)?
        .as_n()
        .ok()?
        .parse()
        .ok()
}

/// The recorded keys of a trial item; `None` when it has none (stored before they were).
pub fn recorded_keys(item: &Item) -> Option<BTreeMap<String, RecordedKey>> {
    let keys = item.get(USAGE_KEYS)?.as_m().ok()?;
    let number = |map: &str, id: &str| -> Option<i64> {
        item.get(map)?
            .as_m()
            .ok()?
            .get(id)?
            .as_n()
            .ok()?
            .parse()
            .ok()
    };
    let decoded = keys.iter().filter_map(|(id, fingerprint)| {
        let recorded = RecordedKey {
            fingerprint: fingerprint.as_s().ok()?.clone(),
            seq: number(USAGE_SEQ, id)?,
            after: number(USAGE_AFTER, id)?,
        };
        Some((id.clone(), recorded))
    });
    Some(decoded.collect())
}

/// The maps a new trial item starts with (so a recording can set one entry of each).
pub fn keys_attributes(keys: &BTreeMap<String, RecordedKey>, item: &mut Item) {
    let map = |f: &dyn Fn(&RecordedKey) -> AttributeValue| {
        AttributeValue::M(keys.iter().map(|(id, r)| (id.clone(), f(r))).collect())
    };
    item.insert(USAGE_KEYS.into(), map(&|r| s(&r.fingerprint)));
    item.insert(USAGE_AFTER.into(), map(&|r| n(r.after)));
    item.insert(USAGE_SEQ.into(), map(&|r| n(r.seq)));
    if let Some(last) = keys.values().map(|r| r.seq).max() {
        item.insert(RECORDINGS.into(), n(last));
    }
}
