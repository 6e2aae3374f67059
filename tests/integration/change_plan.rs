//! `POST /v1/trials/{id}/change-plan`: another plan of the product during the trial, its use
//! kept, a lower limit already exceeded refused unless an admin key forces it.
use serde_json::{json, Value};
use trials::domain::catalog::Catalog;
use trials::domain::plan_change::change_plan;
use trials::domain::TrialStatus;
use trials::store::Slot;
use trials_tests::writes::stored;
use trials_tests::{Call, TestApp, DAY, T0};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");
const ORG: &str = "org_abc123";

/// The example catalog plus `team` (enterprise's options with 50 API calls, 7 days), `legacy`
/// (not trialable) and `elsewhere` (another product).
fn catalog() -> Catalog {
    let mut json: Value = serde_json::from_str(ENTERPRISE).unwrap();
    let plans = json["plans"].as_array_mut().unwrap();
    let enterprise = plans
        .iter()
        .find(|p| p["id"] == "enterprise")
        .unwrap()
        .clone();
    let mut team = enterprise.clone();
    team["id"] = "team".into();
    team["name"] = "Team".into();
    team["trial_length"] = "7d".into();
    team["reminder_offsets"] = json!(["24h"]);
    team["options"][0]["value"] = 50.into();
    let mut legacy = plans[0].clone();
    legacy["id"] = "legacy".into();
    legacy["trialable"] = false.into();
    let mut elsewhere = plans[0].clone();
    elsewhere["id"] = "elsewhere".into();
    elsewhere["product"]["id"] = "other".into();
    plans.extend([team, legacy, elsewhere]);
    Catalog::from_json(&json.to_string()).expect("the test catalog is valid")
}

async fn app() -> TestApp {
    TestApp::with_config(|c| c.catalog = catalog()).await
}

fn change(id: &str, body: Value, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/change-plan"))
        .idempotency_key(key)
        .json(&body)
}

fn usage(id: &str, quantity: i64, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&json!({ "option": "api_calls", "quantity": quantity }))
}

fn api_calls(trial: &Value) -> (Value, Value, Value) {
    let option = trial["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["internal_name"] == "api_calls")
        .unwrap_or_else(|| panic!("no api_calls in {trial}"));
    (
        option["value"].clone(),
        option["used_value"].clone(),
        option["remaining_value"].clone(),
    )
}

#[tokio::test]
async fn a_plan_change_mid_trial_keeps_used_values_and_refuses_an_exceeded_lower_limit() {
    let t = app().await;
    let id = t.start_trial(ORG, "team").await;
    assert_eq!(t.send(usage(&id, 30, "u1")).await.status, 200);

    // Up to a longer plan with a higher limit: the use is kept, the end moves by 7 days.
    t.clock.set(T0 + DAY);
    let up = t
        .send(change(&id, json!({"plan": "enterprise"}), "c1"))
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let body = up.json();
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(api_calls(&body), (100.into(), 30.into(), 70.into()));
    assert_eq!(
        body["expires_at"],
        trials::domain::time::rfc3339(T0 + 14 * DAY)
    );
    assert_eq!(body["days_limit"], 14);
    // The same key and body: the stored answer, nothing run again.
    let again = t
        .send(change(&id, json!({"plan": "enterprise"}), "c1"))
        .await;
    assert!(again.replayed());
    assert_eq!(again.body, up.body);
    let changed = t.events_of("trial.plan_changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["previous_plan"], "team");
    assert_eq!(changed[0]["plan"], "enterprise");
    assert_eq!(changed[0]["forced"], false);

    // Used up to 60: back down to 50 calls is refused (and the refusal is stored for the key).
    assert_eq!(t.send(usage(&id, 30, "u2")).await.status, 200);
    let down = t.send(change(&id, json!({"plan": "team"}), "c2")).await;
    assert_eq!(down.status, 409, "{}", down.body);
    assert_eq!(down.error_code(), "usage_exceeds_new_plan");
    assert!(down.body.contains("api_calls"), "{}", down.body);
    assert!(t
        .send(change(&id, json!({"plan": "team"}), "c2"))
        .await
        .replayed());
    assert_eq!(stored(&t, &id).await.unwrap().plan.as_str(), "enterprise");

    // Forced: an admin key only.
    let standard = t
        .send(change(&id, json!({"plan": "team", "force": true}), "c3"))
        .await;
    assert_eq!(standard.status, 403, "{}", standard.body);
    assert_eq!(standard.error_code(), "forbidden");
    let forced = t
        .send(change(&id, json!({"plan": "team", "force": true}), "c4").admin())
        .await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    let body = forced.json();
    assert_eq!(api_calls(&body), (50.into(), 60.into(), 0.into()));
    // A shorter plan keeps the end.
    assert_eq!(
        body["expires_at"],
        trials::domain::time::rfc3339(T0 + 14 * DAY)
    );
    let over = t.send(usage(&id, 1, "u3")).await;
    assert_eq!(over.status, 429, "{}", over.body);
    let changed = t.events_of("trial.plan_changed").await;
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[1]["forced"], true);
}

#[tokio::test]
async fn a_paused_trial_changes_plan_and_stays_paused() {
    let t = app().await;
    let id = t.start_trial(ORG, "team").await;
    t.clock.set(T0 + DAY);
    let paused = t
        .send(Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p"))
        .await;
    assert_eq!(paused.json()["remaining_duration"], 6 * DAY);
    let up = t
        .send(change(&id, json!({"plan": "enterprise"}), "c"))
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.json()["status"], "PAUSED");
    assert_eq!(up.json()["remaining_duration"], 13 * DAY);
    let resumed = t
        .send(Call::post(&format!("/v1/trials/{id}/resume")).idempotency_key("r"))
        .await;
    assert_eq!(resumed.json()["remaining_duration"], 13 * DAY);
}

/// Whether the trial's `update`, sent alone, commits.
async fn commits(t: &TestApp, update: aws_sdk_dynamodb::types::Update) -> bool {
    let tx = t.app.store.tx().update(Slot::Trial, update);
    tx.commit()
        .await
        .expect("a store write never fails here")
        .committed()
}

#[tokio::test]
async fn a_usage_recorded_after_the_read_fails_the_changes_condition() {
    let t = app().await;
    let store = &t.app.store;
    let id = t.start_trial(ORG, "enterprise").await;
    assert_eq!(t.send(usage(&id, 40, "u1")).await.status, 200);
    let read = stored(&t, &id).await.unwrap();
    let after = change_plan(&read, &t.terms("team"), false, t.now(), DAY).expect("40 is within 50");
    // Meanwhile the org uses 20 more: 60, above the new limit.
    assert_eq!(t.send(usage(&id, 20, "u2")).await.status, 200);
    let terms = t.app.config.lifecycle_terms(&after);
    let stale = store.plan_change_update(&read, &after, false, t.now(), &terms);
    assert!(!commits(&t, stale.unwrap()).await);
    // Through the route, the change is decided again on the trial as it is now: refused.
    let res = t.send(change(&id, json!({"plan": "team"}), "c")).await;
    assert_eq!(res.error_code(), "usage_exceeds_new_plan", "{}", res.body);

    // And a usage decided on the old plan's limit cannot land after a change.
    let read = stored(&t, &id).await.unwrap();
    let growth = change_plan(&read, &t.terms("growth"), false, t.now(), DAY).unwrap();
    let terms = t.app.config.lifecycle_terms(&growth);
    let update = store.plan_change_update(&read, &growth, false, t.now(), &terms);
    assert!(commits(&t, update.unwrap()).await);
    let usage_write = trials::store::usage::UsageWrite {
        trial: &read,
        option: "api_calls",
        value: 100,
        before: 60,
        quantity: 1,
        ends_trial: false,
        key_id: "k",
        fingerprint: "f",
    };
    let stale = store.usage_update(&usage_write, t.now()).unwrap();
    assert!(!commits(&t, stale).await);
}

#[tokio::test]
async fn bad_changes_are_refused_with_their_codes() {
    let t = app().await;
    let id = t.start_trial(ORG, "team").await;
    for (body, status, code) in [
        (json!({}), 400, "invalid_plan"),
        (json!({"plan": 7}), 400, "invalid_plan"),
        (json!({"plan": "nope"}), 400, "invalid_plan"),
        (json!({"plan": "legacy"}), 400, "invalid_plan"),
        (
            json!({"plan": "enterprise", "force": "yes"}),
            400,
            "invalid_field",
        ),
        (
            json!({"plan": "enterprise", "Plan": "x"}),
            400,
            "invalid_field",
        ),
        (json!({"plan": "team"}), 422, "invalid_plan_change"),
        (json!({"plan": "elsewhere"}), 422, "invalid_plan_change"),
    ] {
        let res = t.send(change(&id, body.clone(), &format!("k{body}"))).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (status, code),
            "{body}: {}",
            res.body
        );
    }
    let raw = t
        .send(
            Call::post(&format!("/v1/trials/{id}/change-plan"))
                .idempotency_key("raw")
                .raw_body("[1]"),
        )
        .await;
    assert_eq!(raw.error_code(), "invalid_json");
    let unkeyed = t
        .send(
            Call::post(&format!("/v1/trials/{id}/change-plan"))
                .json(&json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(unkeyed.error_code(), "missing_idempotency_key");
    let missing = t
        .send(change(
            "trial_000000000000000000000000",
            json!({"plan": "enterprise"}),
            "m",
        ))
        .await;
    assert_eq!(missing.status, 404);

    // Not running any more: the state machine's answers.
    t.clock.set(T0 + 7 * DAY);
    let expired = t
        .send(change(&id, json!({"plan": "enterprise"}), "e"))
        .await;
    assert_eq!(
        expired.error_code(),
        "trial_already_expired",
        "{}",
        expired.body
    );
    let other = t.start_trial("org_other", "team").await;
    let canceled = t
        .send(
            Call::post(&format!("/v1/trials/{other}/cancel"))
                .idempotency_key("x")
                .org("org_other"),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    let res = t
        .send(change(&other, json!({"plan": "enterprise"}), "c").org("org_other"))
        .await;
    assert_eq!(res.error_code(), "trial_canceled");
    assert_eq!(
        stored(&t, &other).await.unwrap().status,
        TrialStatus::Canceled
    );
}

/// Under the DynamoDB layer (conflicts, throttles, 500s before and after the write, a client
/// retrying 5xx with the same key): a change down to a 50-call plan races twenty usage calls.
/// Whichever wins, no use lands past the limit of the plan the trial ends on, every accepted
/// call is counted once, and the change happened (with its one event) exactly when it answered
/// 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_down_racing_usage_under_the_layer_never_leaves_use_past_the_limit() {
    use trials_tests::chaos::workload::{final_statuses, send_retrying, usage_on_one_trial};
    let t = TestApp::with_chaos_and(
        trials_tests::ChaosSpec::documented(28),
        |c| c.catalog = catalog(),
        |_| trials::publish::Publisher::Log,
    )
    .await;
    let started = send_retrying(&t, "start", || Call::start("enterprise", "s")).await;
    assert_eq!(started.last.status, 201, "{}", started.last.body);
    let id = started.last.json()["id"].as_str().unwrap().to_owned();
    let first = send_retrying(&t, "usage", || usage(&id, 40, "u0")).await;
    assert_eq!(first.last.status, 200, "{}", first.last.body);

    let change = send_retrying(&t, "change-plan", || {
        change(&id, json!({"plan": "team"}), "down")
    });
    let (change, used) = tokio::join!(change, usage_on_one_trial(&t, &id, "api_calls", 20, 8));
    let statuses = final_statuses(&used);
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let accepted = statuses.get(&200).copied().unwrap_or(0) as i64;

    let trial = stored(&t, &id).await.unwrap();
    assert_eq!(trial.used["api_calls"], 40 + accepted);
    let changed = t.events_of("trial.plan_changed").await;
    match change.last.status {
        200 => {
            assert_eq!(trial.plan.as_str(), "team");
            assert!(trial.used["api_calls"] <= 50, "{:?}", trial.used);
            assert_eq!(changed.len(), 1);
        }
        409 => {
            assert_eq!(change.last.error_code(), "usage_exceeds_new_plan");
            assert_eq!(trial.plan.as_str(), "enterprise");
            assert!(trial.used["api_calls"] > 50, "{:?}", trial.used);
            assert!(changed.is_empty());
        }
        other => panic!("change-plan answered {other}: {}", change.last.body),
    }
}

#[tokio::test]
async fn an_open_checkout_holds_the_plan_until_it_ends() {
    let t = app().await;
    let id = t.start_trial(ORG, "team").await;
    let read = stored(&t, &id).await.unwrap();
    let after = change_plan(&read, &t.terms("enterprise"), false, t.now(), DAY).unwrap();
    // A convert opens a session between the change's read and its write: the write fails.
    trials_tests::writes::open_checkout(&t, &id, "cs_open").await;
    let terms = t.app.config.lifecycle_terms(&after);
    let stale = t
        .app
        .store
        .plan_change_update(&read, &after, false, t.now(), &terms);
    assert!(!commits(&t, stale.unwrap()).await);
    let res = t
        .send(change(&id, json!({"plan": "enterprise"}), "c1"))
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "checkout_open");
    assert!(res.body.contains("cs_open"), "{}", res.body);
    // Past the session's end (Stripe no longer takes it), the plan may change.
    let open = stored(&t, &id).await.unwrap().checkout.unwrap();
    t.clock.set(open.expires_at);
    let res = t
        .send(change(&id, json!({"plan": "enterprise"}), "c2"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}
