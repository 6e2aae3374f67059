//! Issue 28 item 3: trials that start on first use. A plan (`starts: on_activation`) or the
//! start request creates a PENDING trial: no end, no active range, `remaining_duration` null,
//! until `POST /v1/trials/{id}/activate` or its first usage call starts the clock; unused, it
//! lapses at its activation deadline (EXPIRED, `activation_window`), then grace and purge.
use serde_json::{json, Value};
use trials::domain::catalog::{numeric_id, Catalog};
use trials::domain::time::rfc3339;
use trials::domain::TrialStatus;
use trials_tests::{Call, TestApp, DAY, T0};

use crate::jobs::{due, expire, purge, stored};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

/// The example catalog, its `enterprise` plan (14 days, `api_calls` limited to 100) starting
/// on activation within `window`.
fn catalog(window: &str) -> Catalog {
    let mut json: Value = serde_json::from_str(ENTERPRISE).unwrap();
    for plan in json["plans"].as_array_mut().unwrap() {
        if plan["id"] == "enterprise" {
            plan["starts"] = "on_activation".into();
            plan["activation_window"] = window.into();
        }
    }
    Catalog::from_json(&json.to_string()).unwrap()
}

async fn app() -> TestApp {
    TestApp::with_config(|c| c.catalog = catalog("10d")).await
}

fn usage(id: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&json!({ "option": "api_calls", "quantity": 1 }))
}

fn activate(id: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/activate")).idempotency_key(key)
}

async fn started(t: &TestApp, body: Value) -> Value {
    let res = t
        .send(
            Call::post("/v1/trials/start")
                .idempotency_key("s")
                .json(&body),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()
}

async fn status(t: &TestApp, id: &str) -> Value {
    let res = t.send(Call::status(id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn data(t: &TestApp, id: &str) -> Value {
    let res = t.send(Call::get(&format!("/v1/trials/{id}/data"))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// Asserts the trial is PENDING with deadline `activate_by` and nothing of an end.
fn assert_pending(view: &Value, activate_by: i64) {
    assert_eq!(view["status"], "PENDING", "{view}");
    assert_eq!(view["activate_by"], rfc3339(activate_by));
    assert_eq!(view["expires_at"], Value::Null);
    assert_eq!(view["remaining_duration"], Value::Null);
    assert_eq!(view["days_remaining"], Value::Null);
    assert_eq!(view["active_ranges"], json!([]));
}

#[tokio::test]
async fn a_pending_trial_starts_on_its_first_usage_call() {
    let t = app().await;
    let body = started(&t, json!({ "plan": "enterprise" })).await;
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["expires_at"], Value::Null);
    assert_eq!(body["activate_by"], rfc3339(T0 + 10 * DAY));
    assert_pending(&status(&t, &id).await, T0 + 10 * DAY);
    assert_eq!(data(&t, &id).await["remaining_duration"], Value::Null);
    assert_eq!(data(&t, &id).await["days_limit"], 14);
    // No reminder before the activation: the reminders count from the real end.
    assert!(t.events_of("trial.ending_soon").await.is_empty());

    t.clock.advance(2 * DAY);
    let now = T0 + 2 * DAY;
    let res = t.send(usage(&id, "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["used_value"], 1);
    assert_eq!(res.json()["status"], "ACTIVE");
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "ACTIVE");
    assert_eq!(view["expires_at"], rfc3339(now + 14 * DAY));
    assert_eq!(view["remaining_duration"], 14 * DAY);
    assert_eq!(view["days_remaining"], 14);
    assert!(view.get("activate_by").is_none(), "{view}");
    assert_eq!(
        view["active_ranges"],
        json!([{ "start": rfc3339(now), "end": rfc3339(now + 14 * DAY) }])
    );
    assert_eq!(data(&t, &id).await["remaining_duration"], 14 * DAY);
    // The trial waits for its new end in the EXPIRE queue.
    let (queue, at) = due(&t, &id).await.unwrap();
    assert!(queue.starts_with("EXPIRE#"), "{queue}");
    assert_eq!(at, now + 14 * DAY);
    let activated = t.events_of("trial.activated").await;
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0]["activated_by"], "usage");
    // A second usage counts on the ACTIVE trial; the replay of the first answers again.
    assert_eq!(t.send(usage(&id, "u2")).await.json()["used_value"], 2);
    assert!(t.send(usage(&id, "u1")).await.replayed());
    assert_eq!(stored(&t, &id).await.unwrap().used["api_calls"], 2);
    assert_eq!(t.events_of("trial.activated").await.len(), 1);
    // The funnel: started at its start (PENDING), activated once.
    t.publish_events().await;
    let stats = t.send(Call::get("/v1/stats").admin()).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let total = &stats.json()["total"];
    assert_eq!(
        (total["started"].clone(), total["activated"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn a_pending_trial_lapses_unused() {
    // Request-level, on a plan that starts on start: the catalog's default window (30 days).
    let t = TestApp::new().await;
    let body = started(&t, json!({ "plan": "growth", "starts": "on_activation" })).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = T0 + 30 * DAY;
    assert_pending(&status(&t, &id).await, deadline);

    t.clock.set(deadline - 1);
    assert_eq!(expire(&t).await.processed, 0);
    assert_eq!(status(&t, &id).await["status"], "PENDING");
    t.clock.set(deadline);
    // Reported at once, before the job writes it.
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "EXPIRED");
    assert_eq!(view["remaining_duration"], Value::Null);
    for (call, code) in [
        (
            Call::post(&format!("/v1/trials/{id}/cancel")).idempotency_key("late-c"),
            "trial_already_expired",
        ),
        (activate(&id, "late-a"), "trial_already_expired"),
    ] {
        let res = t.send(call).await;
        assert_eq!(
            (res.status, res.error_code()),
            (409, code.into()),
            "{}",
            res.body
        );
    }
    assert_eq!(expire(&t).await.processed, 1);
    let trial = stored(&t, &id).await.unwrap();
    assert_eq!(trial.status, TrialStatus::Expired);
    assert_eq!(trial.expiry_reason.as_deref(), Some("activation_window"));
    assert!(trial.active_ranges.is_empty());
    let expired = t.events_of("trial.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["expiry_reason"], "activation_window");
    let view = status(&t, &id).await;
    assert_eq!(
        (view["expiry_reason"].clone(), view["active_ranges"].clone()),
        (json!("activation_window"), json!([]))
    );

    // The usual grace, then the purge; the org's one trial stays used.
    t.clock.set(deadline + t.policy().grace_secs);
    assert_eq!(purge(&t).await.processed, 1);
    assert_eq!(t.send(Call::status(&id)).await.status, 410);
    let again = t.send(Call::start("pro", "s2")).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.error_code(), "trial_already_exists");
}

#[tokio::test]
async fn activate_starts_the_clock_once() {
    let t = app().await;
    let id = started(&t, json!({ "plan": "enterprise" })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // PENDING is the org's trial: a second start is refused, `current` finds it.
    let second = t.send(Call::start("growth", "s2")).await;
    assert_eq!(
        (second.status, second.error_code()),
        (409, "trial_already_exists".into())
    );
    let current = t.send(Call::get("/v1/trials/current")).await;
    assert_eq!(current.json()["id"], id.as_str());
    assert_eq!(current.json()["status"], "PENDING");
    let eligible = t
        .send(Call::get("/v1/trials/eligibility?plan=growth"))
        .await
        .json();
    assert_eq!(eligible["eligible"], false, "{eligible}");
    // The trial's own moves wait for the activation.
    let pause = t
        .send(Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p"))
        .await;
    assert_eq!(
        (pause.status, pause.error_code()),
        (409, "trial_pending".into())
    );

    t.clock.advance(DAY);
    let res = t.send(activate(&id, "a1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["expires_at"], rfc3339(T0 + DAY + 14 * DAY));
    assert_eq!(body["remaining_duration"], 14 * DAY);
    // Idempotent: the same key answers the same, replayed.
    let replay = t.send(activate(&id, "a1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.json(), body);
    // Another activation is refused: the clock already runs.
    let again = t.send(activate(&id, "a2")).await;
    assert_eq!(
        (again.status, again.error_code()),
        (409, "trial_not_pending".into())
    );
    let activated = t.events_of("trial.activated").await;
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0]["activated_by"], "activate");
    let timeline = t
        .send(Call::get(&format!("/v1/trials/{id}/timeline")))
        .await
        .json();
    let types: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(types.contains(&"trial.activated"), "{types:?}");
    // Now pause is allowed.
    let pause = t
        .send(Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p2"))
        .await;
    assert_eq!(pause.status, 200, "{}", pause.body);
}

/// Many first usages at once under the DynamoDB layer (conflicts, throttles, lost responses,
/// clients retrying with their key): the trial is activated once, and every call is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_usages_under_the_layer_activate_once_and_count_each() {
    use trials_tests::chaos::workload::{final_statuses, send_retrying, usage_on_one_trial};
    let t = TestApp::with_chaos_and(
        trials_tests::ChaosSpec::documented(28),
        |c| c.catalog = catalog("10d"),
        |_| trials::publish::Publisher::Log,
    )
    .await;
    let started = send_retrying(&t, "start", || Call::start("enterprise", "s")).await;
    assert_eq!(started.last.status, 201, "{}", started.last.body);
    let id = started.last.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(started.last.json()["status"], "PENDING");

    let sent = usage_on_one_trial(&t, &id, "api_calls", 12, 6).await;
    assert_eq!(
        final_statuses(&sent).get(&200),
        Some(&12),
        "{:?}",
        final_statuses(&sent)
    );
    let trial = stored(&t, &id).await.unwrap();
    assert_eq!(trial.status, TrialStatus::Active);
    assert_eq!(trial.used["api_calls"], 12);
    assert_eq!(trial.active_ranges.len(), 1);
    assert_eq!(trial.activate_by, None);
    assert_eq!(t.events_of("trial.activated").await.len(), 1);
}

#[tokio::test]
async fn gcores_endpoint_shows_no_remaining_duration_before_activation() {
    let t = app().await;
    let res = t
        .send(
            Call::post("/v1/trials/start")
                .org("42")
                .idempotency_key("k1")
                .json(&json!({ "plan": "enterprise" })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.json()["id"].as_str().unwrap().to_owned();
    let key = format!("apikey {}", t.api_key("42").await.expose());
    let gcore = |t: TestApp, key: String| async move {
        let query = format!("?client_id=42&product_id={}", numeric_id("app"));
        let call = Call::get(&format!("/billing/org/v1/trials/start-trial-data{query}"))
            .without("x-org-id")
            .without("x-project-id")
            .without_auth()
            .header("authorization", &key);
        let res = t.send(call).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    };
    let before = gcore(t.clone(), key.clone()).await;
    assert_eq!(before["remaining_duration"], Value::Null);
    assert_eq!(before["active_ranges"], json!([]));
    assert_eq!(before["days_limit"], 14);
    let res = t.send(activate(&id, "a").org("42")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let after = gcore(t.clone(), key).await;
    assert_eq!(after["remaining_duration"], 14 * DAY);
}

#[tokio::test]
async fn the_start_request_and_the_catalog_say_when_the_clock_starts() {
    let t = app().await;
    // `on_start` on a plan that starts on activation: an ACTIVE trial now.
    let body = started(&t, json!({ "plan": "enterprise", "starts": "on_start" })).await;
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["expires_at"], rfc3339(T0 + 14 * DAY));
    for (starts, code, status) in [
        (json!("later"), "invalid_field", 400),
        (json!(true), "invalid_field", 400),
    ] {
        let res = t
            .send(
                Call::post("/v1/trials/start")
                    .org("org_other")
                    .idempotency_key("bad")
                    .json(&json!({ "plan": "growth", "starts": starts })),
            )
            .await;
        assert_eq!(
            (res.status, res.error_code()),
            (status, code.into()),
            "{}",
            res.body
        );
    }
    // An admin's end for a trial that has none yet.
    let admin = t
        .send(
            Call::post("/v1/trials/start")
                .org("org_admin")
                .admin()
                .idempotency_key("adm")
                .json(&json!({
                    "plan": "growth",
                    "starts": "on_activation",
                    "expires_at": rfc3339(T0 + 3 * DAY),
                })),
        )
        .await;
    assert_eq!(
        (admin.status, admin.error_code()),
        (422, "invalid_expiration".into()),
        "{}",
        admin.body
    );
    // `GET /v1/plans` says it.
    let plans = t.send(Call::get("/v1/plans")).await.json();
    let plan = |id: &str| {
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(plan("enterprise")["starts"], "on_activation");
    assert_eq!(plan("enterprise")["activation_window_days"], 10);
    assert_eq!(plan("growth")["starts"], "on_start");
    assert_eq!(plan("growth")["activation_window_days"], 30);
    // A catalog that starts on activation without a window is refused, naming the field.
    let mut json: Value = serde_json::from_str(ENTERPRISE).unwrap();
    json["plans"][3]["starts"] = "on_activation".into();
    let err = Catalog::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("enterprise") && err.contains("activation_window"),
        "{err}"
    );
    json["plans"][3]["starts"] = "whenever".into();
    let err = Catalog::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("starts"), "{err}");
}
