//! `trialctl stats`: the funnel from the table's counters (see `trials::store::stats`): trials
//! started, converted, expired, canceled and purged in a window, by plan and overall, the
//! conversion rate and the median time from start to conversion; and the trials ACTIVE now.
//! `--chart` draws the window per day as plain-text bars ([`chart`]) from the very document
//! `GET /v1/stats` answers for those days ([`funnel_per_day`]).
//! Reads the counter items of the window (one `BatchGetItem` per 100) and counts the `due`
//! index's EXPIRE queue: never a scan of the trials.
//!
//! Every trial counts, whatever the catalog says: the plans are the catalog's (`PLANS_FILE`
//! or the built-in one) plus every plan that has a counter in the window, found by a keys-only
//! `Query` of each day's counter partitions (days × `STATS_SHARDS` small queries, 16 at a
//! time). A plan the catalog does not know (a retired plan, or a deployment's `PLANS_FILE` that
//! this shell lacks) is listed by its id and named as unknown, so the totals are never short.
use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use serde_json::{json, Value};
use trials::clock::{Clock, SystemClock};
use trials::domain::time::parse_duration_secs;
use trials::services::stats::view;
use trials::store::schema::{PK, SK};
use trials::store::stats::{day_of, total, PlanStats, Stage, STATS_SHARDS};
use trials::store::{Store, StoreError};

use super::{Ctx, Open};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The window, back from today (whole UTC days; e.g. 30d, 7d)
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = days)]
    since: u32,
    /// Only this plan
    #[arg(long, value_name = "PLAN")]
    plan: Option<String>,
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
    /// A bar chart per day (plain text), from the funnel `GET /v1/stats` answers
    #[arg(long, conflicts_with = "json")]
    chart: bool,
}

fn days(raw: &str) -> Result<u32, String> {
    let secs = parse_duration_secs(raw)?;
    u32::try_from((secs + 86_399) / 86_400).map_err(|_| format!("{raw} is too long"))
}

/// What `trialctl stats` shows: the window's counters by plan, the trials ACTIVE now, and the
/// plans with counters that the catalog does not know.
pub struct Report {
    pub since: u32,
    pub active: u64,
    pub by_plan: BTreeMap<String, PlanStats>,
    pub unknown: Vec<String>,
}

impl Report {
    /// Reads the report: `known` is the catalog's plans; `plan` keeps one plan; `since` days
    /// ending today (`now`).
    pub async fn read(
        store: &Store,
        known: &BTreeSet<String>,
        plan: Option<&str>,
        since: u32,
        now: i64,
    ) -> Result<Report, StoreError> {
        let plans = plans(store, known, plan, since, now).await?;
        let unknown = plans
            .iter()
            .filter(|p| !known.contains(*p))
            .cloned()
            .collect();
        Ok(Report {
            since,
            active: store.count_active().await?,
            by_plan: store.read_stats(&plans, since, now).await?,
            unknown,
        })
    }

    /// `--json`'s document; each plan and the total shaped as `GET /v1/stats` shapes them
    /// ([`trials::services::stats::view`]).
    pub fn json(&self) -> Value {
        let plans: BTreeMap<&String, Value> =
            self.by_plan.iter().map(|(p, s)| (p, view(s))).collect();
        json!({
            "since_days": self.since,
            "active_now": self.active,
            "total": view(&total(&self.by_plan)),
            "plans": plans,
            "unknown_plans": self.unknown,
        })
    }
}

/// `plan`, or every plan of the catalog (`known`) and every plan with a counter in the `since`
/// days ending today.
pub async fn plans(
    store: &Store,
    known: &BTreeSet<String>,
    plan: Option<&str>,
    since: u32,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(match plan {
        Some(plan) => vec![plan.to_owned()],
        None => {
            let mut plans = known.clone();
            plans.extend(counted_plans(store, since, now).await?);
            plans.into_iter().collect()
        }
    })
}

/// The funnel of `plans` over the `since` days ending today, per day: exactly what
/// `GET /v1/stats` answers for that window ([`trials::services::stats::funnel`]).
pub async fn funnel_per_day(
    store: &Store,
    plans: &[String],
    since: u32,
    now: i64,
) -> Result<Value, StoreError> {
    let to = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .date_naive();
    let back = chrono::Days::new(u64::from(since.max(1)) - 1);
    let from = to.checked_sub_days(back).unwrap_or(to);
    trials::services::stats::funnel(store, plans, from, to).await
}

/// The stages a chart draws, each with its mark, in the funnel's order. A stage the funnel
/// does not answer yet (a count `GET /v1/stats` will add, e.g. paid) reads 0: adding it here
/// is all the chart needs.
pub const STAGES: [(&str, char); 6] = [
    ("started", '#'),
    ("converted", '='),
    ("expired", '-'),
    ("canceled", 'x'),
    ("purged", '.'),
    // Reverse trials that dropped to their free plan.
    ("downgraded", 'v'),
];

/// The widest bar, in marks.
pub const CHART_WIDTH: u64 = 30;

/// `--chart`: a plain-text bar chart of `funnel` (a `GET /v1/stats` document). One line per day,
/// its stages stacked (a mark per `per_mark` trials, rounded up, so a stage that happened
/// shows), then the stages' counts; the window's totals and conversion rate; and the
/// time-to-convert distribution, one bar per whole-hour bucket.
pub fn chart(funnel: &Value, width: u64) -> String {
    let count = |v: &Value, stage: &str| v[stage].as_u64().unwrap_or(0);
    let days = funnel["days"].as_array().cloned().unwrap_or_default();
    let widest = days
        .iter()
        .map(|d| STAGES.iter().map(|(s, _)| count(d, s)).sum::<u64>())
        .max()
        .unwrap_or(0);
    let per_mark = widest.div_ceil(width.max(1)).max(1);
    let marks = |n: u64, mark: char| mark.to_string().repeat(n.div_ceil(per_mark) as usize);
    let legend: Vec<String> = STAGES.iter().map(|(s, m)| format!("{m} {s}")).collect();
    let mut out = format!(
        "Trials per day, {} to {} (UTC); one mark = {per_mark} trial(s): {}\n",
        funnel["from"].as_str().unwrap_or("?"),
        funnel["to"].as_str().unwrap_or("?"),
        legend.join(", ")
    );
    let numbers = |v: &Value| {
        let counts: Vec<String> = STAGES
            .iter()
            .map(|(s, _)| format!("{:>11}", count(v, s)))
            .collect();
        counts.join("")
    };
    // One column wider than the longest stage (`downgraded`), so the names stay apart.
    let names: Vec<String> = STAGES.iter().map(|(s, _)| format!("{s:>11}")).collect();
    out += &format!(
        "{:<10} {:<w$} {}\n",
        "day",
        "",
        names.join(""),
        w = width as usize
    );
    for d in &days {
        let bar: String = STAGES.iter().map(|(s, m)| marks(count(d, s), *m)).collect();
        let day = d["day"].as_str().unwrap_or("?");
        out += &format!("{day:<10} {bar:<w$} {}\n", numbers(d), w = width as usize);
    }
    let total = &funnel["total"];
    out += &format!(
        "{:<10} {:<w$} {}\n",
        "total",
        "",
        numbers(total),
        w = width as usize
    );
    let rate = total["conversion_rate"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    out += &format!("conversion rate (converted / started): {rate}\n");
    out + &time_to_convert(&funnel["time_to_convert"], width)
}

/// The time-to-convert lines of [`chart`]: its median and a bar per `h<hours>` bucket.
fn time_to_convert(ttc: &Value, width: u64) -> String {
    let mut buckets: Vec<(u64, u64)> = ttc["buckets"]
        .as_object()
        .map(|b| {
            b.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix('h')?.parse().ok()?, v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    buckets.sort_unstable();
    let median = ttc["median_hours"]
        .as_u64()
        .map_or_else(|| "-".to_owned(), |h| format!("{h} h"));
    let mut out = format!("time to convert (whole hours from start), median {median}\n");
    let widest = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let per_mark = widest.div_ceil(width.max(1)).max(1);
    for (hours, n) in buckets {
        let bar = "#".repeat(n.div_ceil(per_mark) as usize);
        let bucket = format!("{hours} h");
        out += &format!("{bucket:>10} {bar:<w$} {n:>10}\n", w = width as usize);
    }
    out
}

pub async fn run(ctx: &Ctx, args: StatsArgs) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    let now = SystemClock.now();
    let known: BTreeSet<String> = ctx
        .config()?
        .catalog
        .plans()
        .iter()
        .map(|p| p.id.as_str().to_owned())
        .collect();
    if args.chart {
        let plans = plans(&t.store, &known, args.plan.as_deref(), args.since, now).await;
        let funnel = match plans {
            Ok(plans) => funnel_per_day(&t.store, &plans, args.since, now).await,
            Err(e) => Err(e),
        };
        print!("{}", chart(&funnel.map_err(|e| t.failed(e))?, CHART_WIDTH));
        return Ok(());
    }
    let report = Report::read(&t.store, &known, args.plan.as_deref(), args.since, now)
        .await
        .map_err(|e| t.failed(e))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let Report {
        active,
        by_plan,
        unknown,
        ..
    } = &report;
    let all = total(by_plan);
    println!(
        "Trials, last {} days ({}); ACTIVE now: {active}",
        args.since, t.place
    );
    println!(
        "{:<12} {:>8} {:>10} {:>8} {:>9} {:>7} {:>10} {:>14} {:>6} {:>7} {:>7} {:>10}",
        "plan",
        "started",
        "converted",
        "expired",
        "canceled",
        "purged",
        "conv rate",
        "median to conv",
        "paid",
        "unpaid",
        "lapsed",
        "downgraded"
    );
    let rows = by_plan
        .iter()
        .map(|(p, s)| (p.as_str(), s))
        .chain([("all", &all)]);
    for (plan, s) in rows {
        println!(
            "{:<12} {:>8} {:>10} {:>8} {:>9} {:>7} {:>10} {:>14} {:>6} {:>7} {:>7} {:>10}",
            plan,
            s.count(Stage::Started),
            s.count(Stage::Converted),
            s.count(Stage::Expired),
            s.count(Stage::Canceled),
            s.count(Stage::Purged),
            s.conversion_rate()
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            s.median_hours_to_convert()
                .map(|h| format!("{h} h"))
                .unwrap_or_else(|| "-".into()),
            s.count(Stage::Paid),
            s.awaiting_first_payment(),
            s.count(Stage::Lapsed),
            s.count(Stage::Downgraded),
        );
    }
    if !unknown.is_empty() {
        let ids: Vec<&str> = unknown.iter().map(|p| p.as_str()).collect();
        println!("not in the catalog (PLANS_FILE): {}", ids.join(", "));
    }
    Ok(())
}

/// The plans with a counter item in the `days` UTC days ending today, whatever the catalog:
/// a keys-only `Query` of each day's `STATS#<day>#<shard>` partitions.
// The counter key layout is `trials::store::stats`'s; this listing belongs there (see the
// report to the lead) and is here only because that module was being reworked at the time.
async fn counted_plans(store: &Store, days: u32, now: i64) -> Result<BTreeSet<String>, StoreError> {
    let today = now - now.rem_euclid(86_400);
    let partitions: Vec<String> = (0..i64::from(days.max(1)))
        .flat_map(|back| {
            let day = day_of(today - back * 86_400);
            (0..STATS_SHARDS).map(move |shard| format!("STATS#{day}#{shard}"))
        })
        .collect();
    let mut plans = BTreeSet::new();
    for batch in partitions.chunks(16) {
        let mut queries = tokio::task::JoinSet::new();
        for pk in batch {
            queries.spawn(partition_plans(store.clone(), pk.clone()));
        }
        while let Some(joined) = queries.join_next().await {
            let found = joined.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            plans.extend(found);
        }
    }
    Ok(plans)
}

/// The plans of one counter partition (its sort keys, `PLAN#<plan>`), every page.
async fn partition_plans(store: Store, pk: String) -> Result<Vec<String>, StoreError> {
    let mut plans = Vec::new();
    let mut start = None;
    loop {
        let out = store
            .client()
            .query()
            .table_name(store.table_name())
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .projection_expression("#sk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        plans.extend(out.items().iter().filter_map(|item| {
            let sk = item.get(SK)?.as_s().ok()?;
            sk.strip_prefix("PLAN#").map(str::to_owned)
        }));
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(plans),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, counts: [u64; 6]) -> Value {
        let mut v = json!({ "day": day });
        for ((stage, _), n) in STAGES.iter().zip(counts) {
            v[stage] = json!(n);
        }
        v
    }

    #[test]
    fn the_chart_of_a_known_funnel() {
        let funnel = json!({
            "from": "2026-04-06", "to": "2026-04-08",
            "days": [
                day("2026-04-06", [3, 0, 0, 0, 0, 0]),
                day("2026-04-07", [0, 1, 0, 1, 0, 1]),
                day("2026-04-08", [0, 0, 0, 0, 0, 0]),
            ],
            "total": { "started": 3, "converted": 1, "expired": 0, "canceled": 1, "purged": 0,
                       "downgraded": 1, "conversion_rate": 1.0 / 3.0 },
            "time_to_convert": { "median_hours": 24, "buckets": { "h24": 1, "h3": 2 } },
        });
        let drawn = chart(&funnel, 10);
        let expected = [
            "Trials per day, 2026-04-06 to 2026-04-08 (UTC); one mark = 1 trial(s): # started, = converted, - expired, x canceled, . purged, v downgraded",
            "day                       started  converted    expired   canceled     purged downgraded",
            "2026-04-06 ###                  3          0          0          0          0          0",
            "2026-04-07 =xv                  0          1          0          1          0          1",
            "2026-04-08                      0          0          0          0          0          0",
            "total                           3          1          0          1          0          1",
            "conversion rate (converted / started): 33.3%",
            "time to convert (whole hours from start), median 24 h",
            "       3 h ##                  2",
            "      24 h #                   1",
        ];
        assert_eq!(drawn.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn a_busy_day_is_scaled_to_the_width_and_a_rare_stage_still_shows() {
        let funnel = json!({
            "from": "2026-04-06", "to": "2026-04-06",
            "days": [day("2026-04-06", [95, 1, 0, 0, 4, 0])],
            "total": { "started": 95, "converted": 1, "conversion_rate": null },
            "time_to_convert": { "median_hours": null, "buckets": {} },
        });
        let drawn = chart(&funnel, 10);
        let lines: Vec<&str> = drawn.lines().collect();
        assert!(lines[0].contains("one mark = 10 trial(s)"), "{drawn}");
        assert!(lines[2].starts_with("2026-04-06 ##########=. "), "{drawn}");
        assert_eq!(lines[4], "conversion rate (converted / started): -");
        assert_eq!(
            lines[5],
            "time to convert (whole hours from start), median -"
        );
        assert_eq!(lines.len(), 6);
    }
}
