//! `trialctl stats`: the funnel from the table's counters (see `trials::store::stats`): trials
//! started, converted, expired, canceled and purged in a window, by plan and overall, the
//! conversion rate and the median time from start to conversion; and the trials ACTIVE now.
//! Reads the counter items of the window (one `BatchGetItem` per 100) and counts the `due`
//! index's EXPIRE queue: never a scan of the trials.
use std::collections::BTreeMap;

use clap::Args;
use serde_json::{json, Value};
use trials::clock::{Clock, SystemClock};
use trials::domain::time::parse_duration_secs;
use trials::store::stats::{total, PlanStats, Stage};

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
}

fn days(raw: &str) -> Result<u32, String> {
    let secs = parse_duration_secs(raw)?;
    u32::try_from((secs + 86_399) / 86_400).map_err(|_| format!("{raw} is too long"))
}

pub async fn run(ctx: &Ctx, args: StatsArgs) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    let plans: Vec<String> = match &args.plan {
        Some(plan) => vec![plan.clone()],
        // Every plan of the catalog (PLANS_FILE, or the built-in one).
        None => trials::config::Config::from_env()?
            .catalog
            .plans()
            .iter()
            .map(|p| p.id.as_str().to_owned())
            .collect(),
    };
    let now = SystemClock.now();
    let by_plan = t
        .store
        .read_stats(&plans, args.since, now)
        .await
        .map_err(|e| t.failed(e))?;
    let active = t.store.count_active().await.map_err(|e| t.failed(e))?;
    let all = total(&by_plan);
    if args.json {
        let plans: BTreeMap<&String, Value> = by_plan.iter().map(|(p, s)| (p, view(s))).collect();
        let out = json!({
            "since_days": args.since,
            "active_now": active,
            "total": view(&all),
            "plans": plans,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "Trials, last {} days ({}); ACTIVE now: {active}",
        args.since, t.place
    );
    println!(
        "{:<12} {:>8} {:>10} {:>8} {:>9} {:>7} {:>10} {:>14}",
        "plan",
        "started",
        "converted",
        "expired",
        "canceled",
        "purged",
        "conv rate",
        "median to conv"
    );
    let rows = by_plan
        .iter()
        .map(|(p, s)| (p.as_str(), s))
        .chain([("all", &all)]);
    for (plan, s) in rows {
        println!(
            "{:<12} {:>8} {:>10} {:>8} {:>9} {:>7} {:>10} {:>14}",
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
        );
    }
    Ok(())
}

fn view(s: &PlanStats) -> Value {
    json!({
        "started": s.count(Stage::Started),
        "converted": s.count(Stage::Converted),
        "expired": s.count(Stage::Expired),
        "canceled": s.count(Stage::Canceled),
        "purged": s.count(Stage::Purged),
        "conversion_rate": s.conversion_rate(),
        "median_hours_to_conversion": s.median_hours_to_convert(),
    })
}
