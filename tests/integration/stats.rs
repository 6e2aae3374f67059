//! `GET /v1/stats`: the funnel per day for admin keys, from the stream's counters, equal to the
//! trials stored and to `trialctl stats --json` (the same shaping); its refusals; its one read.
use serde_json::{json, Value};
use trials::domain::state_machine::TrialStatus;
use trials::store::stats::day_of;
use trials_local::ctl::stats::{self as ctl_stats, Report};
use trials_tests::{Call, TestApp, DAY, T0};

use crate::events::{app_with_stripe_and_recorder, cancel_and_convert, pay};
use crate::jobs::{expire, purge, stored};

async fn stats(t: &TestApp, query: &str) -> (u16, Value) {
    let res = t
        .send(Call::get(&format!("/v1/stats{query}")).admin())
        .await;
    (res.status, res.json())
}

fn counts(view: &Value) -> [u64; 5] {
    ["started", "converted", "expired", "canceled", "purged"]
        .map(|stage| view[stage].as_u64().expect("a count"))
}

/// `trialctl stats --json`'s document for the `days` days ending now.
async fn trialctl(t: &TestApp, days: u32) -> Value {
    let known = t
        .app
        .config
        .catalog
        .plans()
        .iter()
        .map(|p| p.id.as_str().to_owned())
        .collect();
    Report::read(&t.app.store, &known, None, days, t.now())
        .await
        .expect("report")
        .json()
}

#[tokio::test]
async fn the_funnel_per_day_equals_the_trials_stored_and_trialctl() {
    let (t, _rec, _standin) = app_with_stripe_and_recorder().await;
    let expiring = t.start_trial("org_exp", "growth").await;
    let canceled = t.start_trial("org_can", "starter").await;
    let converted = t.start_trial("org_conv", "pro").await;
    t.clock.set(T0 + DAY);
    cancel_and_convert(&t, &canceled, &converted).await;
    assert_eq!(
        pay(&t, "evt_paid_1", &converted, "org_conv", "pro").await["outcome"],
        "converted"
    );
    t.clock.set(T0 + 7 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    t.publish_events().await;

    let window = format!("?from={}&to={}", day_of(T0), day_of(t.now()));
    let (status, body) = stats(&t, &window).await;
    assert_eq!(status, 200, "{body}");
    // The trials stored: three started, one of each ending.
    let mut by_status = [0u64; 3];
    for id in [&expiring, &canceled, &converted] {
        match stored(&t, id).await.expect("trial").status {
            TrialStatus::Converted => by_status[0] += 1,
            TrialStatus::Expired => by_status[1] += 1,
            TrialStatus::Canceled => by_status[2] += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        counts(&body["total"]),
        [3, by_status[0], by_status[1], by_status[2], 0]
    );
    assert_eq!(body["total"]["conversion_rate"], json!(1.0 / 3.0));
    // Paid a day after it started.
    assert_eq!(
        body["time_to_convert"],
        json!({"median_hours": 24, "buckets": {"h24": 1}})
    );
    let days = body["days"].as_array().expect("days");
    assert_eq!(days.len(), 8, "every day of the window, zeros included");
    let day = |at: i64| {
        days.iter()
            .find(|d| d["day"] == day_of(at).as_str())
            .expect("the day")
    };
    assert_eq!(counts(day(T0)), [3, 0, 0, 0, 0]);
    assert_eq!(counts(day(T0 + DAY)), [0, 1, 0, 1, 0]);
    assert_eq!(counts(day(T0 + 7 * DAY)), [0, 0, 1, 0, 0]);
    assert_eq!(counts(day(T0 + 3 * DAY)), [0; 5]);
    assert_eq!(day(T0 + 3 * DAY)["conversion_rate"], Value::Null);
    assert_eq!(counts(&body["plan_totals"]["pro"]), [1, 1, 0, 0, 0]);

    // `trialctl stats --json` over the same days: the same numbers, shaped the same way.
    let ctl = trialctl(&t, 8).await;
    assert_eq!(ctl["total"], body["total"]);
    assert_eq!(ctl["plans"], body["plan_totals"]);

    // `trialctl stats --chart` draws the funnel `/v1/stats` answers for the same days.
    let known = t.app.config.catalog.plans().iter();
    let known = known.map(|p| p.id.as_str().to_owned()).collect();
    let store = &t.app.store;
    let plans = ctl_stats::plans(store, &known, None, 8, t.now()).await;
    let drawn = ctl_stats::funnel_per_day(store, &plans.unwrap(), 8, t.now()).await;
    let drawn = drawn.expect("the funnel");
    for part in [
        "from",
        "to",
        "days",
        "total",
        "plan_totals",
        "time_to_convert",
    ] {
        assert_eq!(drawn[part], body[part], "{part}");
    }
    let chart = ctl_stats::chart(&drawn, ctl_stats::CHART_WIDTH);
    let lines: Vec<&str> = chart.lines().collect();
    let row = |day: &str, bar: &str, counts: [u64; 6]| {
        let counts: String = counts.iter().map(|n| format!("{n:>11}")).collect();
        format!("{day:<10} {bar:<30} {counts}")
    };
    assert_eq!(lines[2], row("2026-04-06", "###", [3, 0, 0, 0, 0, 0]));
    assert_eq!(lines[3], row("2026-04-07", "=x", [0, 1, 0, 1, 0, 0]));
    assert_eq!(lines[4], row("2026-04-08", "", [0; 6]));
    assert_eq!(lines[9], row("2026-04-13", "-", [0, 0, 1, 0, 0, 0]));
    assert_eq!(lines[10], row("total", "", [3, 1, 1, 1, 0, 0]));
    assert_eq!(lines[11], "conversion rate (converted / started): 33.3%");
    assert_eq!(lines[13], format!("{:>10} {:<30} {:>10}", "24 h", "#", 1));

    // Purged after the grace period: counted on the day of the purge.
    t.clock.set(T0 + 7 * DAY + t.terms("growth").grace_secs);
    assert_eq!(purge(&t).await.processed, 2);
    t.publish_events().await;
    let (_, body) = stats(&t, &format!("?from={}", day_of(T0))).await;
    assert_eq!(counts(&body["total"]), [3, 1, 1, 1, 2]);
    assert_eq!(
        body["to"],
        day_of(t.now()).as_str(),
        "`to` defaults to today"
    );

    // The filters: one plan; one product's plans (the built-in catalog has one, `app`).
    let (_, pro) = stats(&t, &format!("{window}&plan=pro")).await;
    assert_eq!(
        (pro["plans"].clone(), counts(&pro["total"])),
        (json!(["pro"]), [1, 1, 0, 0, 0])
    );
    let (_, app) = stats(&t, &format!("{window}&product=app")).await;
    assert_eq!(app["total"], stats(&t, &window).await.1["total"]);
    // A product the catalog does not have is refused, not answered with zeros.
    let (status, refused) = stats(&t, &format!("{window}&product=nope")).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!("invalid_product"))
    );
}

#[tokio::test]
async fn the_default_window_is_the_last_30_days_in_one_read_per_100_counters() {
    let t = TestApp::new().await;
    t.start_trial("org_a", "growth").await;
    t.publish_events().await;
    // Warm the key cache: what is counted is the funnel's read.
    assert_eq!(stats(&t, "").await.0, 200);
    t.dynamo.reset();
    let (status, body) = stats(&t, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["days"].as_array().map(Vec::len), Some(30));
    assert_eq!(body["to"], day_of(t.now()).as_str());
    assert_eq!(counts(&body["total"])[0], 1);
    // 30 days × 8 shards × 3 plans = 720 counter keys: 8 BatchGetItem, nothing else.
    assert_eq!(
        t.dynamo.count("BatchGetItem"),
        8,
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.total(), 8, "{:?}", t.dynamo.by_operation());
}

#[tokio::test]
async fn a_standard_key_is_forbidden() {
    let t = TestApp::new().await;
    let res = t.send(Call::get("/v1/stats")).await;
    assert_eq!((res.status, res.error_code().as_str()), (403, "forbidden"));
    assert!(res.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("read the funnel")));
}

#[tokio::test]
async fn bad_queries_are_400_with_their_code_and_read_nothing() {
    let t = TestApp::new().await;
    assert_eq!(stats(&t, "").await.0, 200);
    for (query, code) in [
        ("?from=2026-04-06&to=2027-04-07", "invalid_range"), // 367 days
        ("?from=2026-04-07&to=2026-04-06", "invalid_range"), // reversed
        ("?from=yesterday", "invalid_range"),
        ("?to=2026-02-30", "invalid_range"),
        ("?from=2026-4-6x", "invalid_range"),
        ("?plan=nope", "invalid_plan"),
        ("?form=2026-04-06", "invalid_field"),
        ("?plan=pro&plan=growth", "invalid_field"),
    ] {
        t.dynamo.reset();
        let (status, body) = stats(&t, query).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
        assert_eq!(t.dynamo.total(), 0, "{query}");
    }
    // 366 days is the longest window.
    let (status, body) = stats(&t, "?from=2026-04-06&to=2027-04-06").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["days"].as_array().map(Vec::len), Some(366));
}
