//! The funnel's shape: what `GET /v1/stats` answers and `trialctl stats --json` prints, from
//! the counters of [`crate::store::stats`]. One function shapes a plan's or a day's counters
//! ([`view`]) so the two readers cannot drift apart; [`funnel`] reads a window of days.
//!
//! Invariant: the numbers are the counters', never recomputed from trials; the totals are the
//! sum of the days (and of the plans). Cost: [`funnel`] is the store's read of the window (one
//! `BatchGetItem` per 100 of the days × 8 shards × plans counter keys), nothing else.
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::store::stats::{total, PlanStats, Stage};
use crate::store::{Store, StoreError};

/// One plan's, one day's or the window's counters: the stages (a conversion's first paid
/// invoice, `paid`, apart from those with a card and nothing paid yet,
/// `awaiting_first_payment`, and those whose subscription ended unpaid, `lapsed`; reverse
/// trials that dropped to their free plan, `downgraded`), the
/// conversion rate
/// (converted / started, null when nothing started) and the median whole hours from start to
/// conversion (null when nothing converted).
pub fn view(s: &PlanStats) -> Value {
    json!({
        "started": s.count(Stage::Started),
        "converted": s.count(Stage::Converted),
        "expired": s.count(Stage::Expired),
        "canceled": s.count(Stage::Canceled),
        "purged": s.count(Stage::Purged),
        "paid": s.count(Stage::Paid),
        "lapsed": s.count(Stage::Lapsed),
        "activated": s.count(Stage::Activated),
        "downgraded": s.count(Stage::Downgraded),
        "awaiting_first_payment": s.awaiting_first_payment(),
        "conversion_rate": s.conversion_rate(),
        "median_hours_to_conversion": s.median_hours_to_convert(),
    })
}

/// The time-to-convert distribution the counters hold: conversions by whole hours from start,
/// `{"h<hours>": count}`, in hour order.
pub fn hours_to_convert(s: &PlanStats) -> Value {
    let buckets: Map<String, Value> = s
        .hours_to_convert
        .iter()
        .map(|(h, n)| (format!("h{h}"), json!(n)))
        .collect();
    Value::Object(buckets)
}

/// The funnel of `plans` from `from` to `to` (UTC days, inclusive): `{from, to, plans, days:
/// [{day, ...view}], total: view, plan_totals: {plan: view}, time_to_convert: {median_hours,
/// buckets}}`.
pub async fn funnel(
    store: &Store,
    plans: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Value, StoreError> {
    let by_day = store.read_stats_by_day(plans, from, to).await?;
    let mut by_plan: BTreeMap<String, PlanStats> = plans
        .iter()
        .map(|p| (p.clone(), PlanStats::default()))
        .collect();
    let days: Vec<Value> = by_day
        .iter()
        .map(|(day, day_plans)| {
            for (plan, stats) in day_plans {
                by_plan.entry(plan.clone()).or_default().merge(stats);
            }
            let mut shaped = view(&total(day_plans));
            shaped["day"] = json!(day);
            shaped
        })
        .collect();
    let all = total(&by_plan);
    let plan_totals: BTreeMap<&String, Value> = by_plan.iter().map(|(p, s)| (p, view(s))).collect();
    Ok(json!({
        "from": from.format("%Y-%m-%d").to_string(),
        "to": to.format("%Y-%m-%d").to_string(),
        "plans": plans,
        "days": days,
        "total": view(&all),
        "plan_totals": plan_totals,
        "time_to_convert": {
            "median_hours": all.median_hours_to_convert(),
            "buckets": hours_to_convert(&all),
        },
    }))
}
