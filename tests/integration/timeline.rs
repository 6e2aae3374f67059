//! `GET /v1/trials/{id}/timeline`: every change of a trial, once, in order, with who made it;
//! its pages and cap; tenancy; its one read; the purge that removes it and `trial.purged`,
//! which carries it.
use serde_json::{json, Value};
use trials::domain::TrialId;
use trials::store::timeline::TIMELINE_CAP;
use trials_tests::requests::{ORG, PROJECT};
use trials_tests::{Call, TestApp, DAY, T0};

use crate::events::{app_with_stripe_and_recorder, pay};
use crate::jobs::purge;
use crate::lifecycle::event_detail;

const HOUR: i64 = 3_600;

fn timeline(id: &str, query: &str) -> Call {
    Call::get(&format!("/v1/trials/{id}/timeline{query}"))
}

async fn read(t: &TestApp, call: Call) -> Value {
    let res = t.send(call).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// `(type, actor)` of each entry.
fn steps(body: &Value) -> Vec<(String, String)> {
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn post(id: &str, action: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/{action}")).idempotency_key(key)
}

#[tokio::test]
async fn a_full_lifecycle_lists_each_step_once_in_order_with_its_actor() {
    let (t, _rec, _standin) = app_with_stripe_and_recorder().await;
    let start = Call::start("pro", "s").json(&json!({
        "plan": "pro", "email": "ada@analytical.example", "name": "Ada Lovelace",
    }));
    let id = t.send(start).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut at = T0;
    let mut step = |call: Call| {
        at += HOUR;
        t.clock.set(at);
        t.send(call)
    };
    let patch = Call::new("PATCH", &format!("/v1/trials/{id}"))
        .admin()
        .idempotency_key("n")
        .json(&json!({ "notes": "called Ada" }));
    let extend = post(&id, "extend", "e").admin().json(&json!({ "days": 2 }));
    for call in [
        post(&id, "pause", "p"),
        post(&id, "resume", "r"),
        patch,
        extend,
        Call::convert(&id, "c"),
    ] {
        let res = step(call).await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    t.clock.set(at + HOUR);
    assert_eq!(
        pay(&t, "evt_paid", &id, ORG, "pro").await["outcome"],
        "converted"
    );

    let key = t.api_key(ORG).await.key_id().to_owned();
    let admin = t.admin_key(ORG).await.key_id().to_owned();
    let body = read(&t, timeline(&id, "")).await;
    let expected: Vec<(String, String)> = [
        ("trial.started", &key),
        ("trial.paused", &key),
        ("trial.resumed", &key),
        ("trial.updated", &admin),
        ("trial.extended", &admin),
        ("trial.checkout_created", &key),
        ("trial.converted", &"stripe".to_owned()),
    ]
    .iter()
    .map(|(kind, actor)| (kind.to_string(), actor.to_string()))
    .collect();
    assert_eq!(steps(&body), expected, "{body}");
    let times: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert_eq!(body["truncated"], 0);
    assert_eq!(body["next_cursor"], Value::Null);
    let paused = &body["entries"][1]["details"];
    assert_eq!(paused["remaining_duration"], 7 * DAY - HOUR, "{paused}");
    // Allow-listed details only: no applicant, no notes, no envelope.
    let text = body.to_string();
    for hidden in ["ada@", "Ada", "called", "applicant"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
    for entry in body["entries"].as_array().unwrap() {
        for envelope in ["event_id", "org_id", "trial_id", "type"] {
            assert!(entry["details"].get(envelope).is_none(), "{entry}");
        }
    }
    // Admin keys also see the notes.
    assert!(body.get("notes").is_none());
    let as_admin = read(&t, timeline(&id, "").admin()).await;
    assert_eq!(as_admin["notes"], "called Ada");
    assert_eq!(as_admin["entries"], body["entries"]);

    // One round trip with a warm key: a Query of the trial's partition.
    t.dynamo.reset();
    read(&t, timeline(&id, "")).await;
    assert_eq!(t.dynamo.count("Query"), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());

    // Pages: the same entries, continued by the cursor.
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let page = read(&t, timeline(&id, &query)).await;
        assert!(page["entries"].as_array().unwrap().len() <= 3);
        paged.extend(steps(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, expected);
}

#[tokio::test]
async fn bad_queries_are_400_with_their_code() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    for (query, code) in [
        ("?cursor=zz", "invalid_cursor"),
        ("?cursor=545249414c", "invalid_cursor"), // "TRIAL"
        ("?limit=0", "invalid_field"),
        ("?limit=91", "invalid_field"),
        ("?limit=ten", "invalid_field"),
        ("?after=1", "invalid_field"),
        ("?limit=1&limit=2", "invalid_field"),
    ] {
        let res = t.send(timeline(&id, query)).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, code),
            "{query}"
        );
    }
}

#[tokio::test]
async fn another_org_or_project_gets_404() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let res = t.send(timeline(&id, "").org("org_other")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    let limited = t.create_key(ORG, &["proj_other"]).await;
    let res = t
        .send(
            timeline(&id, "")
                .bearer(limited.expose())
                .without("x-project-id")
                .header("x-project-id", "proj_other"),
        )
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    assert_eq!(
        read(&t, timeline(&id, "")).await["entries"][0]["details"]["project_id"],
        PROJECT
    );
    let unknown = TrialId::generate();
    let res = t.send(timeline(unknown.as_str(), "")).await;
    assert_eq!(res.status, 404, "{}", res.body);
}

#[tokio::test]
async fn past_the_cap_the_oldest_after_the_start_drop_and_purge_removes_every_entry() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let updates = TIMELINE_CAP + 5;
    for n in 0..updates {
        t.clock.set(T0 + 1 + n as i64);
        let res = t
            .send(
                Call::new("PATCH", &format!("/v1/trials/{id}"))
                    .admin()
                    .idempotency_key(&format!("n{n}"))
                    .json(&json!({ "notes": format!("note {n}") })),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let all = 1 + updates;
    let body = read(&t, timeline(&id, "?limit=90")).await;
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), TIMELINE_CAP);
    assert_eq!(body["truncated"], all - TIMELINE_CAP);
    assert_eq!(entries[0]["type"], "trial.started", "the start stays");
    // The oldest updates went: the first shown after the start is the one after them.
    let first_kept = T0 + 1 + (all - TIMELINE_CAP) as i64;
    assert_eq!(
        entries[1]["at"],
        trials::domain::time::rfc3339(first_kept),
        "{body}"
    );
    let id_parsed = TrialId::parse(&id).unwrap();
    let (_, stored) = t.app.store.trial_and_timeline(&id_parsed).await.unwrap();
    assert_eq!(stored.len(), all, "stored until the purge");

    t.clock.set(T0 + 1 + updates as i64);
    let res = t.send(Call::cancel(&id, "cancel")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    t.clock.set(T0 + 30 * DAY);
    assert_eq!(purge(&t).await.processed, 1);
    let (trial, left) = t.app.store.trial_and_timeline(&id_parsed).await.unwrap();
    assert!(trial.is_none() && left.is_empty(), "{left:?}");
    let res = t.send(timeline(&id, "")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired")
    );
    // trial.purged carries the timeline as it was shown: capped, the cancel last.
    let detail = event_detail(&t, &format!("{id}.purged"))
        .await
        .expect("trial.purged");
    let carried = detail["timeline"].as_array().expect("timeline");
    assert_eq!(carried.len(), TIMELINE_CAP);
    assert_eq!(carried[0]["type"], "trial.started");
    assert_eq!(carried[TIMELINE_CAP - 1]["type"], "trial.canceled");
    assert_eq!(detail["truncated"], all + 1 - TIMELINE_CAP);
}

#[tokio::test]
async fn usage_thresholds_reminders_and_the_expiry_name_their_actors() {
    let catalog = trials::domain::catalog::Catalog::from_json(include_str!(
        "../../examples/plans-enterprise.json"
    ))
    .expect("catalog");
    let t = TestApp::with_config(|c| c.catalog = catalog).await;
    let id = t.start_trial(ORG, "enterprise").await;
    t.clock.set(T0 + HOUR);
    let usage = post(&id, "usage", "u").json(&json!({ "option": "api_calls", "quantity": 80 }));
    let res = t.send(usage).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let expires_at = T0 + 14 * DAY;
    for at in [expires_at - 72 * HOUR, expires_at - 24 * HOUR, expires_at] {
        t.clock.set(at + 1);
        crate::jobs::expire(&t).await;
    }
    let key = t.api_key(ORG).await.key_id().to_owned();
    let job = "job".to_owned();
    let body = read(&t, timeline(&id, "")).await;
    let expected: Vec<(String, String)> = [
        ("trial.started", &key),
        ("trial.limit_warning", &key),
        ("trial.ending_soon", &job),
        ("trial.ending_soon", &job),
        ("trial.expired", &job),
    ]
    .iter()
    .map(|(kind, actor)| (kind.to_string(), actor.to_string()))
    .collect();
    assert_eq!(steps(&body), expected, "{body}");
    assert_eq!(
        body["entries"][1]["details"]["option"], "api_calls",
        "{body}"
    );
    assert_eq!(
        body["entries"][3]["details"]["hours_remaining"], 24,
        "{body}"
    );

    // A key the warm function has not seen: its record, then the partition.
    let fresh = t.create_key(ORG, &[]).await;
    t.dynamo.reset();
    read(&t, timeline(&id, "").bearer(fresh.expose())).await;
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.count("Query"), 1, "{:?}", t.dynamo.by_operation());
}
