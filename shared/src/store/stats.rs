//! Funnel counters: what `trialctl stats` reads instead of scanning trials.
//!
//! **Invariant: each funnel event is counted exactly once, and no request writes a counter.**
//! The counters are aggregated from the table's stream by the `publish` function
//! ([`crate::publish::stream::handle`]), not written by the requests: a counter item is shared
//! by every org's trials, and under real DynamoDB a transaction touching it conflicts with every
//! other one that does, so starts of unrelated orgs would fail each other. A funnel event
//! (`trial.started`, `converted`, `expired` (also a usage-limit ending), `canceled`, `purged`,
//! and for a conversion's subscription `first_payment` (paid) and `subscription_lapsed`
//! (lapsed)) exists exactly when its change committed, so counting the events counts the
//! changes.
//!
//! Exactly once across the stream's at-least-once delivery: [`Store::count_once`] is one small
//! transaction per event, a conditional put of a marker `COUNTED#<event_id>` (TTL
//! [`COUNTED_TTL_SECS`], longer than the stream's 24 h retention, so every redelivery finds it)
//! and the counter's `ADD`. A marker that exists means the event was counted (a retried batch)
//! and nothing is added; a store error leaves nothing written and the record is reported as a
//! batch item failure, so the stream delivers it again.
//!
//! Counter items: `STATS#<day>#<shard>` / `PLAN#<plan>`, `<day>` the UTC day of the change (the
//! event's `occurred_at`), `<shard>` = FNV-1a(trial id) % [`STATS_SHARDS`], so a launch day's
//! counting spreads over several partitions. A conversion also adds 1 to `h<hours>`, the whole
//! hours from start to conversion (the event's `started_at`), for an exact-to-the-hour median.
//! The counts trail the trials by the stream's delay (normally under a second).
//!
//! Reading a window of D days for P plans is one `BatchGetItem` per 100 keys of the D × shards ×
//! P counter items (30 days, 8 shards, 3 plans: 720 small items, 8 requests), whatever the
//! number of trials. ACTIVE trials now are counted from the `due` index's EXPIRE queue (a
//! `Select=COUNT` query per shard: it reads the active trials' index entries, not the table).
//!
//! Cost: nothing on the request path. Per funnel event, in the publisher: one two-item
//! `TransactWriteItems` (4 write units: the marker and the counter, both under 1 KB); a
//! redelivered event costs the same transaction, cancelled by the marker's condition.
use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, Select, Update};
use chrono::{DateTime, Days, NaiveDate, Utc};

use super::codec::{key, n, Item};
use super::schema::{shard_of, DueQueue, DUE_INDEX, TTL};
use super::{Outcome, Slot, Store, StoreError};

/// Counter shards per day.
pub const STATS_SHARDS: u32 = 8;

/// How long a `COUNTED#<event_id>` marker is kept: longer than the stream keeps a record
/// (24 h), so any redelivery of a counted event finds its marker.
pub const COUNTED_TTL_SECS: i64 = 3 * 86_400;

/// One funnel event to count: `stage` for the plan on the day of `at`, sharded by the trial's
/// id. A conversion also records the hours since the trial started (`started_at`, when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The event's id: what makes a second delivery count nothing.
    pub event_id: String,
    pub stage: Stage,
    pub plan: String,
    pub trial_id: String,
    /// When the change happened (epoch seconds): its day is the counter's.
    pub at: i64,
    pub started_at: Option<i64>,
    /// A stage this event takes back (a first payment that revokes a lapse: `Lapsed`), on the
    /// same counter item.
    pub undo: Option<Stage>,
}

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Started,
    Converted,
    Expired,
    Canceled,
    Purged,
    /// A conversion's first invoice paid with money (`trial.first_payment`).
    Paid,
    /// A conversion whose subscription ended before any paid invoice
    /// (`trial.subscription_lapsed`).
    Lapsed,
    /// A PENDING trial's clock started (`trial.activated`).
    Activated,
    /// A reverse trial that dropped to its free plan (`trial.downgraded`).
    Downgraded,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Started,
        Stage::Converted,
        Stage::Expired,
        Stage::Canceled,
        Stage::Purged,
        Stage::Paid,
        Stage::Lapsed,
        Stage::Activated,
        Stage::Downgraded,
    ];

    pub fn attribute(self) -> &'static str {
        match self {
            Stage::Started => "started",
            Stage::Converted => "converted",
            Stage::Expired => "expired",
            Stage::Canceled => "canceled",
            Stage::Purged => "purged",
            Stage::Paid => "paid",
            Stage::Lapsed => "lapsed",
            Stage::Activated => "activated",
            Stage::Downgraded => "downgraded",
        }
    }
}

/// `2026-04-06` for an epoch time.
pub fn day_of(epoch_secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch_secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

fn stats_pk(day: &str, shard: u32) -> String {
    format!("STATS#{day}#{shard}")
}

fn stats_sk(plan: &str) -> String {
    format!("PLAN#{plan}")
}

fn counted_pk(event_id: &str) -> String {
    format!("COUNTED#{event_id}")
}

const COUNTED_SK: &str = "COUNTED";

impl Store {
    /// Counts `count` once: the marker `COUNTED#<event_id>` and the counter's `ADD` in one
    /// transaction. `Ok(true)`: counted now; `Ok(false)`: it was counted before (the marker
    /// exists), nothing added. `now` dates the marker's TTL.
    pub async fn count_once(&self, count: &Count, now: i64) -> Result<bool, StoreError> {
        let outcome = self
            .tx()
            .put(Slot::Counted, self.counted_put(&count.event_id, now)?)
            .update(Slot::Stats, self.stats_update(count)?)
            .commit()
            .await?;
        match outcome {
            Outcome::Committed => Ok(true),
            Outcome::Rejected(rejection) if rejection.failed(Slot::Counted) => Ok(false),
            Outcome::Rejected(rejection) => Err(StoreError::Unavailable(format!(
                "counting {} rejected on {:?}",
                count.event_id,
                rejection.slots().collect::<Vec<_>>()
            ))),
        }
    }

    fn counted_put(&self, event_id: &str, now: i64) -> Result<Put, StoreError> {
        let mut item = key(counted_pk(event_id), COUNTED_SK);
        item.insert(TTL.into(), n(now + COUNTED_TTL_SECS));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    /// Adds 1 to the count's stage for its plan on its day; a conversion also adds 1 to the
    /// whole hours since the trial started.
    fn stats_update(&self, count: &Count) -> Result<Update, StoreError> {
        let shard = shard_of(&count.trial_id, STATS_SHARDS);
        let mut expression = format!("ADD {} :one", count.stage.attribute());
        if let (Stage::Converted, Some(started)) = (count.stage, count.started_at) {
            expression.push_str(&format!(", h{} :one", (count.at - started).max(0) / 3600));
        }
        if let Some(undo) = count.undo {
            expression.push_str(&format!(", {} :minus_one", undo.attribute()));
        }
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                stats_pk(&day_of(count.at), shard),
                stats_sk(&count.plan),
            )))
            .update_expression(expression)
            .set_expression_attribute_values(Some(count_values(count)))
            .build()?)
    }

    /// The counters of `plans` over the `days` UTC days ending today (`now`).
    pub async fn read_stats(
        &self,
        plans: &[String],
        days: u32,
        now: i64,
    ) -> Result<BTreeMap<String, PlanStats>, StoreError> {
        let to = DateTime::<Utc>::from_timestamp(now, 0)
            .unwrap_or_default()
            .date_naive();
        let from = to
            .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
            .unwrap_or(to);
        let by_day = self.read_stats_by_day(plans, from, to).await?;
        let mut by_plan: BTreeMap<String, PlanStats> = plans
            .iter()
            .map(|p| (p.clone(), PlanStats::default()))
            .collect();
        for day in by_day.values() {
            for (plan, stats) in day {
                by_plan.entry(plan.clone()).or_default().merge(stats);
            }
        }
        Ok(by_plan)
    }

    /// The counters of `plans` for each UTC day from `from` to `to` (inclusive), by day
    /// (`YYYY-MM-DD`) and plan: every day and plan of the window has an entry, zero when
    /// nothing was counted. One `BatchGetItem` per 100 of the days × shards × plans keys.
    pub async fn read_stats_by_day(
        &self,
        plans: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeMap<String, BTreeMap<String, PlanStats>>, StoreError> {
        let empty: BTreeMap<String, PlanStats> = plans
            .iter()
            .map(|p| (p.clone(), PlanStats::default()))
            .collect();
        let mut by_day = BTreeMap::new();
        let mut keys = Vec::new();
        for day in from.iter_days().take_while(|day| *day <= to) {
            let day = day.format("%Y-%m-%d").to_string();
            for shard in 0..STATS_SHARDS {
                for plan in plans {
                    keys.push(key(stats_pk(&day, shard), stats_sk(plan)));
                }
            }
            by_day.insert(day, empty.clone());
        }
        for chunk in keys.chunks(100) {
            let items = self
                .batch_get(
                    KeysAndAttributes::builder()
                        .set_keys(Some(chunk.to_vec()))
                        .build()?,
                )
                .await?;
            for item in items {
                let (Some(pk), Some(sk)) = (
                    super::codec::get_s(&item, super::schema::PK),
                    super::codec::get_s(&item, super::schema::SK),
                ) else {
                    continue;
                };
                // `STATS#<day>#<shard>` / `PLAN#<plan>`.
                let day = pk.strip_prefix("STATS#").and_then(|d| d.split('#').next());
                let plan = sk.strip_prefix("PLAN#");
                if let Some(stats) = day
                    .and_then(|day| by_day.get_mut(day))
                    .zip(plan)
                    .and_then(|(plans, plan)| plans.get_mut(plan))
                {
                    stats.add_item(&item);
                }
            }
        }
        Ok(by_day)
    }

    /// Trials ACTIVE now, by counting the EXPIRE queue of the `due` index (no table scan).
    pub async fn count_active(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for shard in 0..self.shards {
            let mut start = None;
            loop {
                let out = self
                    .query()
                    .index_name(DUE_INDEX)
                    .key_condition_expression("due_pk = :queue")
                    .expression_attribute_values(
                        ":queue",
                        AttributeValue::S(DueQueue::Expire.partition(shard)),
                    )
                    .select(Select::Count)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(StoreError::from_sdk)?;
                total += out.count().max(0) as u64;
                match super::codec::next_page(out.last_evaluated_key) {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        Ok(total)
    }
}

/// One plan's counters over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanStats {
    pub counts: BTreeMap<Stage, u64>,
    /// Conversions by whole hours from start.
    pub hours_to_convert: BTreeMap<u64, u64>,
}

impl PlanStats {
    fn add_item(&mut self, item: &Item) {
        for stage in Stage::ALL {
            if let Some(n) = super::codec::get_n(item, stage.attribute()) {
                *self.counts.entry(stage).or_default() += n.max(0) as u64;
            }
        }
        for (name, value) in item {
            let hours = name.strip_prefix('h').and_then(|h| h.parse::<u64>().ok());
            if let (Some(hours), AttributeValue::N(n)) = (hours, value) {
                *self.hours_to_convert.entry(hours).or_default() += n.parse::<u64>().unwrap_or(0);
            }
        }
    }

    pub fn count(&self, stage: Stage) -> u64 {
        self.counts.get(&stage).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &PlanStats) {
        for (stage, n) in &other.counts {
            *self.counts.entry(*stage).or_default() += n;
        }
        for (h, n) in &other.hours_to_convert {
            *self.hours_to_convert.entry(*h).or_default() += n;
        }
    }

    /// Converted / started in the window; `None` when nothing started.
    pub fn conversion_rate(&self) -> Option<f64> {
        let started = self.count(Stage::Started);
        (started > 0).then(|| self.count(Stage::Converted) as f64 / started as f64)
    }

    /// Conversions with a card and no paid invoice yet: converted, less those paid and those
    /// lapsed (never below 0: a payment may be counted on a later day than its conversion).
    pub fn awaiting_first_payment(&self) -> u64 {
        self.count(Stage::Converted)
            .saturating_sub(self.count(Stage::Paid) + self.count(Stage::Lapsed))
    }

    /// The median whole hours from start to conversion (the lower median), if any converted.
    pub fn median_hours_to_convert(&self) -> Option<u64> {
        let total: u64 = self.hours_to_convert.values().sum();
        if total == 0 {
            return None;
        }
        let middle = total.div_ceil(2);
        let mut seen = 0;
        self.hours_to_convert.iter().find_map(|(h, n)| {
            seen += n;
            (seen >= middle).then_some(*h)
        })
    }
}

/// `:one`, and `:minus_one` when the count takes a stage back.
fn count_values(count: &Count) -> Item {
    let mut values = Item::from([(":one".to_owned(), AttributeValue::N("1".into()))]);
    if count.undo.is_some() {
        values.insert(":minus_one".into(), AttributeValue::N("-1".into()));
    }
    values
}

/// Sums plans into one total.
pub fn total(by_plan: &BTreeMap<String, PlanStats>) -> PlanStats {
    let mut sum = PlanStats::default();
    for stats in by_plan.values() {
        sum.merge(stats);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_rates_come_from_the_counters() {
        let mut s = PlanStats::default();
        assert_eq!(s.conversion_rate(), None);
        assert_eq!(s.median_hours_to_convert(), None);
        s.counts.insert(Stage::Started, 4);
        s.counts.insert(Stage::Converted, 3);
        s.hours_to_convert = BTreeMap::from([(2, 1), (30, 1), (100, 1)]);
        assert_eq!(s.conversion_rate(), Some(0.75));
        assert_eq!(s.median_hours_to_convert(), Some(30));
        s.hours_to_convert.insert(200, 1);
        assert_eq!(s.median_hours_to_convert(), Some(30), "the lower median");
        assert_eq!(day_of(1_775_469_600), "2026-04-06");
    }

    #[test]
    fn plans_add_up_to_the_total() {
        let mut a = PlanStats::default();
        a.counts.insert(Stage::Started, 2);
        a.hours_to_convert = BTreeMap::from([(5, 1)]);
        let mut b = PlanStats::default();
        b.counts.insert(Stage::Started, 1);
        b.counts.insert(Stage::Converted, 3);
        b.hours_to_convert = BTreeMap::from([(5, 1), (9, 2)]);
        let sum = total(&BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]));
        assert_eq!(sum.count(Stage::Started), 3);
        assert_eq!(sum.count(Stage::Converted), 3);
        assert_eq!(sum.hours_to_convert, BTreeMap::from([(5, 2), (9, 2)]));
        assert_eq!(sum.median_hours_to_convert(), Some(5));
    }
}
