//! Plans as data: the catalog in force, the terms a trial keeps, `GET /v1/plans`, Gcore's trial
//! data and usage against limits.
use std::sync::Arc;

use trials::domain::catalog::Catalog;
use trials_tests::requests::read;
use trials_tests::{Call, TestApp, DAY};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

fn enterprise_catalog() -> Catalog {
    Catalog::from_json(ENTERPRISE).expect("the example catalog is valid")
}

async fn enterprise_app() -> TestApp {
    TestApp::with_config(|c| c.catalog = enterprise_catalog()).await
}

#[tokio::test]
async fn a_running_trial_keeps_the_terms_it_started_with() {
    let t = enterprise_app().await;
    let id = t.start_trial("org_abc123", "enterprise").await;

    // The same table served by a process whose catalog says something else for the plan.
    let edited = ENTERPRISE
        .replace("\"trial_length\": \"14d\"", "\"trial_length\": \"30d\"")
        .replace("\"value\": 100,", "\"value\": 5,");
    assert_ne!(edited, ENTERPRISE);
    let mut config = (*t.app.config).clone();
    config.catalog = Catalog::from_json(&edited).expect("edited catalog");
    assert_eq!(
        config.catalog.get("enterprise").unwrap().trial_length_secs,
        30 * DAY
    );
    let other = trials::App::new(config, t.app.store.clone(), Arc::new(t.clock.clone()));

    let call = t.authorize(Call::status(&id)).await;
    let body = read(trials::api::handle_any(&other, call.build()).await).json();
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["days_limit"], 14);
    assert_eq!(body["expires_at"], "2026-04-20T10:00:00Z");
    let calls = body["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["internal_name"] == "api_calls")
        .cloned()
        .unwrap();
    assert_eq!(calls["value"], 100);
    assert_eq!(calls["remaining_value"], 100);

    // A trial started under the edited catalog gets the edited terms.
    let call = t
        .authorize(Call::start("enterprise", "k2").org("org_other"))
        .await;
    let started = read(trials::api::handle_any(&other, call.build()).await).json();
    assert_eq!(started["expires_at"], "2026-05-06T10:00:00Z");
}

#[tokio::test]
async fn invalid_plan_lists_the_catalogs_trialable_plans() {
    let t = enterprise_app().await;
    let res = t.send(Call::start("platinum", "k1")).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.error_code(), "invalid_plan");
    let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("enterprise"), "{message}");
    assert!(message.contains("starter"), "{message}");
}

const ORG: &str = "org_abc123";

fn usage(id: &str, option: &str, quantity: serde_json::Value, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&serde_json::json!({ "option": option, "quantity": quantity }))
}

async fn events_of(t: &TestApp, kind: &str) -> Vec<serde_json::Value> {
    t.events_of(kind).await
}

#[tokio::test]
async fn get_plans_lists_the_trialable_plans_with_their_terms() {
    let t = enterprise_app().await;
    let res = t.send(Call::get("/v1/plans")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    let plans = body["plans"].as_array().unwrap();
    let ids: Vec<&str> = plans.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"enterprise"), "{ids:?}");
    let enterprise = plans.iter().find(|p| p["id"] == "enterprise").unwrap();
    assert_eq!(enterprise["trial_days"], 14);
    assert_eq!(enterprise["options"][0]["internal_name"], "api_calls");

    let anonymous = t.send(Call::get("/v1/plans").without_auth()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.error_code(), "unauthorized");
}

#[tokio::test]
async fn trial_data_has_gcores_shape() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    t.clock.set(t.now() + 3600);
    let res = t.send(Call::get(&format!("/v1/trials/{id}/data"))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["client_id"], ORG);
    assert_eq!(body["client"]["id"], ORG);
    assert!(body["client"]["company_name"].is_null());
    assert_eq!(body["product"]["internal_name"], "app");
    assert_eq!(body["plan"]["id"], "enterprise");
    assert_eq!(body["plan"]["name"], "Enterprise");
    assert_eq!(body["days_limit"], 14);
    assert_eq!(body["created_at"], "2026-04-06T10:00:00Z");
    assert_eq!(
        body["active_ranges"],
        serde_json::json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-20T10:00:00Z" }])
    );
    assert_eq!(body["remaining_duration"], 14 * DAY - 3600);
    assert_eq!(body["is_trial_skipped"], false);
    let option = &body["options"][0];
    for field in [
        "internal_name",
        "name",
        "description",
        "unit",
        "value",
        "used_value",
        "remaining_value",
        "is_limit",
        "feature",
    ] {
        assert!(option.get(field).is_some(), "{field} in {option}");
    }
    assert_eq!(option["used_value"], 0);
    assert_eq!(option["remaining_value"], 100);

    // Status adds the fields that do not clash; plan stays a string.
    let status = t.send(Call::status(&id)).await.json();
    assert_eq!(status["plan"], "enterprise");
    assert_eq!(status["days_limit"], 14);
    assert_eq!(status["remaining_duration"], 14 * DAY - 3600);
    assert_eq!(status["active_ranges"], body["active_ranges"]);
    assert_eq!(status["options"], body["options"]);

    // Not ACTIVE: no remaining duration.
    t.clock.set(t.now() + 14 * DAY);
    let later = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert!(later["remaining_duration"].is_null(), "{later}");

    // Another org's trial is not there.
    let other = t
        .send(Call::get(&format!("/v1/trials/{id}/data")).org("org_other"))
        .await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn usage_is_recorded_up_to_the_limit_then_429() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let res = t.send(usage(&id, "api_calls", 79.into(), "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["used_value"], 79);
    assert_eq!(res.json()["remaining_value"], 21);
    assert!(events_of(&t, "trial.limit_warning").await.is_empty());

    // The same key replays; nothing is recorded twice.
    let again = t.send(usage(&id, "api_calls", 79.into(), "u1")).await;
    assert_eq!(again.json(), res.json());
    assert!(again.replayed());

    let res = t.send(usage(&id, "api_calls", 1.into(), "u2")).await;
    assert_eq!(res.json()["used_value"], 80);
    let warnings = events_of(&t, "trial.limit_warning").await;
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0]["event_id"],
        format!("{id}.limit_warning.api_calls")
    );

    let over = t.send(usage(&id, "api_calls", 21.into(), "u3")).await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert_eq!(over.error_code(), "trial_limit_exceeded");
    let message = over.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("20 remaining"), "{message}");

    let res = t.send(usage(&id, "api_calls", 20.into(), "u4")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["remaining_value"], 0);
    assert_eq!(res.json()["status"], "ACTIVE");
    assert_eq!(events_of(&t, "trial.limit_reached").await.len(), 1);
    assert_eq!(events_of(&t, "trial.limit_warning").await.len(), 1);
    let full = t.send(usage(&id, "api_calls", 1.into(), "u5")).await;
    assert_eq!(full.status, 429);

    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert_eq!(data["options"][0]["used_value"], 100);
    assert_eq!(data["options"][0]["remaining_value"], 0);
}

#[tokio::test]
async fn bad_usage_requests_are_refused_with_their_codes() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    for (option, quantity, code) in [
        ("nope", serde_json::json!(1), "invalid_option"),
        // Informational, not a limit.
        ("storage_gb", serde_json::json!(1), "invalid_option"),
        ("api_calls", serde_json::json!(0), "invalid_quantity"),
        ("api_calls", serde_json::json!(-3), "invalid_quantity"),
        ("api_calls", serde_json::json!(1.5), "invalid_quantity"),
        ("api_calls", serde_json::json!("2"), "invalid_quantity"),
        (
            "api_calls",
            serde_json::json!(1_000_000_001_i64),
            "invalid_quantity",
        ),
    ] {
        let key = format!("bad-{option}-{quantity}");
        let res = t.send(usage(&id, option, quantity.clone(), &key)).await;
        assert_eq!(res.status, 400, "{option} {quantity}: {}", res.body);
        assert_eq!(res.error_code(), code, "{option} {quantity}");
    }
    let missing_key = t
        .send(
            Call::post(&format!("/v1/trials/{id}/usage"))
                .json(&serde_json::json!({ "option": "api_calls", "quantity": 1 })),
        )
        .await;
    assert_eq!(missing_key.error_code(), "missing_idempotency_key");

    // Not ACTIVE: the transition codes.
    let cancel = t
        .send(Call::post(&format!("/v1/trials/{id}/cancel")).idempotency_key("c1"))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let res = t
        .send(usage(&id, "api_calls", 1.into(), "after-cancel"))
        .await;
    assert_eq!(res.status, 409);
    assert_eq!(res.error_code(), "trial_canceled");
}

#[tokio::test]
async fn a_paused_trial_records_no_usage_until_it_resumes() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let pause = Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p");
    assert_eq!(t.send(pause).await.status, 200);
    let res = t.send(usage(&id, "api_calls", 1.into(), "u1")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "trial_not_active");
    assert!(events_of(&t, "trial.limit_warning").await.is_empty());

    let resume = Call::post(&format!("/v1/trials/{id}/resume")).idempotency_key("r");
    assert_eq!(t.send(resume).await.status, 200);
    let res = t.send(usage(&id, "api_calls", 1.into(), "u2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["used_value"], 1);
}

#[tokio::test]
async fn reaching_an_ending_limit_expires_the_trial_in_the_same_write() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    t.clock.set(t.now() + DAY);
    let res = t.send(usage(&id, "exports", 2.into(), "e1")).await;
    assert_eq!(res.json()["status"], "ACTIVE");
    let res = t.send(usage(&id, "exports", 1.into(), "e2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "EXPIRED");

    let status = t.send(Call::status(&id)).await.json();
    assert_eq!(status["status"], "EXPIRED");
    assert_eq!(status["expiry_reason"], "limit_reached");
    assert_eq!(status["expires_at"], "2026-04-07T10:00:00Z");
    // Grace runs from the moment the limit was reached.
    assert_eq!(status["grace_period_ends_at"], "2026-04-10T10:00:00Z");
    assert!(status["remaining_duration"].is_null());
    // Its active range ends when the limit ended it, not at the planned end.
    assert_eq!(
        status["active_ranges"],
        serde_json::json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-07T10:00:00Z" }])
    );
    let stored = t
        .app
        .store
        .get_trial(&trials::domain::TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, trials::domain::TrialStatus::Expired);
    assert_eq!(stored.expiry_reason.as_deref(), Some("limit_reached"));
    // It waits in the purge queue until that grace ends, not before.
    let (queue, at) = crate::jobs::due(&t, &id)
        .await
        .expect("queued for the purge");
    assert!(queue.starts_with("PURGE#"), "{queue}");
    assert_eq!(at, t.now() + 3 * DAY);
    let expired = events_of(&t, "trial.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["expiry_reason"], "limit_reached");
    assert_eq!(events_of(&t, "trial.limit_reached").await.len(), 1);
    // The funnel counts it as an expiry (issue 26 item 9c), from its `trial.expired`.
    assert_eq!(t.publish_events().await.failed, 0);
    let plans = ["enterprise".to_owned()];
    let stats = t.app.store.read_stats(&plans, 7, t.now()).await.unwrap();
    use trials::store::stats::Stage;
    assert_eq!(
        [Stage::Started, Stage::Expired].map(|s| stats["enterprise"].count(s)),
        [1, 1]
    );

    let after = t.send(usage(&id, "api_calls", 1.into(), "e3")).await;
    assert_eq!(after.status, 409);
    assert_eq!(after.error_code(), "trial_already_expired");

    // The purge job deletes it once the grace from the limit has passed.
    t.clock.set(t.now() + 3 * DAY);
    let report = trials::jobs::run(&t.app, trials::jobs::Job::Purge, None).await;
    assert_eq!(report.processed, 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_record_exactly_the_limit() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move {
                t.send(usage(&id, "api_calls", 1.into(), &format!("c{i}")))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok, 100, "{statuses:?}");
    assert_eq!(limited, 900);
    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert_eq!(data["options"][0]["used_value"], 100);
    assert_eq!(events_of(&t, "trial.limit_warning").await.len(), 1);
    assert_eq!(events_of(&t, "trial.limit_reached").await.len(), 1);
}

#[tokio::test]
async fn a_trial_lives_by_its_plans_lifecycle_terms() {
    // The example's enterprise plan: 14-day trials, at most 60 days in all, pauses of at most
    // 14 days, reminders 7 days, 72 h and 24 h before the end (the defaults are 90 d, 30 d,
    // 72 h / 24 h).
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let expire = |t: &TestApp| {
        let app = t.app.clone();
        async move { trials::jobs::run(&app, trials::jobs::Job::Expire, None).await }
    };

    // The plan's first reminder, a week before the end.
    t.clock.set(t.now() + 7 * DAY);
    assert_eq!(expire(&t).await.reminded, 1);
    let soon = events_of(&t, "trial.ending_soon").await;
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert_eq!(soon[0]["hours_remaining"], 7 * 24);

    // The plan's maximum total: 14 + 47 days is past 60, 14 + 46 is not.
    let extend = |days: i64, key: &str| {
        Call::post(&format!("/v1/trials/{id}/extend"))
            .admin()
            .idempotency_key(key)
            .json(&serde_json::json!({ "days": days }))
    };
    let res = t.send(extend(47, "x1")).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.error_code(), "invalid_extension");
    let res = t.send(extend(46, "x2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["expires_at"], "2026-06-05T10:00:00Z");

    // The plan's pause maximum: 14 days, then the expire job resumes it.
    let pause = Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p");
    assert_eq!(t.send(pause).await.status, 200);
    t.clock.set(t.now() + 13 * DAY);
    assert_eq!(expire(&t).await.resumed, 0);
    t.clock.set(t.now() + DAY);
    assert_eq!(expire(&t).await.resumed, 1);
    let status = t.send(Call::status(&id)).await.json();
    assert_eq!(status["status"], "ACTIVE");
    // Paused for exactly the 14 days: the end moved by them.
    assert_eq!(status["expires_at"], "2026-06-19T10:00:00Z");
}

/// The raw item of trial `id` or record, changed as an older version or a crash would leave it.
async fn raw_update(t: &TestApp, pk: String, sk: &str, expression: &str) {
    use trials::store::codec::key;
    trials::aws::local_dynamodb(&t.endpoint)
        .update_item()
        .table_name(t.app.store.table_name())
        .set_key(Some(key(pk, sk)))
        .update_expression(expression)
        .send()
        .await
        .expect("raw update");
}

async fn forget_answer(t: &TestApp, key: &str) {
    use trials::store::schema::{idempotency_pk, IDEMPOTENCY_SK};
    let org = trials::domain::OrgId::parse(ORG).unwrap();
    trials::aws::local_dynamodb(&t.endpoint)
        .delete_item()
        .table_name(t.app.store.table_name())
        .set_key(Some(trials::store::codec::key(
            idempotency_pk(&org, key),
            IDEMPOTENCY_SK,
        )))
        .send()
        .await
        .expect("delete the record");
}

/// The keys trial `id`'s item records.
async fn recorded_keys(
    t: &TestApp,
    id: &str,
) -> std::collections::BTreeMap<String, trials::domain::usage::RecordedKey> {
    let trial = trials_tests::writes::stored(t, id).await.expect("trial");
    trial.usage_keys.expect("keys recorded")
}

fn trial_key(id: &str) -> String {
    trials::store::schema::trial_pk(&trials::domain::TrialId::parse(id).unwrap())
}

/// Issue 25 item 3: a trial item written before usage recorded its keys (no `usage_keys`)
/// gets them from its first recording, exact, and later recordings add to them.
#[tokio::test]
async fn a_trial_stored_before_keys_were_recorded_gets_them_on_its_first_usage() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let remove = "REMOVE usage_keys, usage_after, usage_seq";
    raw_update(&t, trial_key(&id), trials::store::schema::TRIAL_SK, remove).await;
    let stored = trials_tests::writes::stored(&t, &id).await.unwrap();
    assert_eq!(stored.usage_keys, None);

    let first = t.send(usage(&id, "api_calls", 2.into(), "k1")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["used_value"], 2);
    let second = t.send(usage(&id, "api_calls", 3.into(), "k2")).await;
    assert_eq!(second.json()["used_value"], 5);
    let keys = recorded_keys(&t, &id).await;
    let mut seen: Vec<(i64, i64)> = keys.values().map(|k| (k.seq, k.after)).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![(1, 2), (2, 5)]);

    // Replayed from the trial item alone (its idempotency record gone): not counted again.
    forget_answer(&t, "k1").await;
    let again = t.send(usage(&id, "api_calls", 2.into(), "k1")).await;
    assert!(again.replayed());
    assert_eq!(again.json(), first.json());
    // The same key with another body: refused, from the trial item too.
    let other = t.send(usage(&id, "api_calls", 1.into(), "k1")).await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    let data = t.send(Call::get(&format!("/v1/trials/{id}/data"))).await;
    assert_eq!(data.json()["options"][0]["used_value"], 5);
}

/// Issue 25 item 3: the trial item keeps the newest `KEPT_KEYS` keys, no more; an older key is
/// answered by its idempotency record, and only a key that lost both (its function died
/// between the two writes, then `KEPT_KEYS` other recordings) counts again: the stated bound.
#[tokio::test]
async fn the_trial_keeps_a_bounded_number_of_keys_and_older_ones_answer_from_their_record() {
    use trials::domain::usage::{key_id, KEPT_KEYS};
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let n = KEPT_KEYS + 6;
    for i in 0..n {
        let res = t
            .send(usage(&id, "api_calls", 1.into(), &format!("k{i}")))
            .await;
        assert_eq!(res.json()["used_value"], i + 1, "{}", res.body);
    }
    let keys = recorded_keys(&t, &id).await;
    assert_eq!(keys.len(), KEPT_KEYS);
    assert!(!keys.contains_key(&key_id("k0")));
    assert!(keys.contains_key(&key_id(&format!("k{}", n - 1))));

    // Pruned from the trial, answered by its record.
    let old = t.send(usage(&id, "api_calls", 1.into(), "k0")).await;
    assert!(old.replayed());
    assert_eq!(old.json()["used_value"], 1);
    // A recent key whose record was lost: the trial item answers.
    let recent = format!("k{}", n - 1);
    forget_answer(&t, &recent).await;
    let res = t.send(usage(&id, "api_calls", 1.into(), &recent)).await;
    assert!(res.replayed());
    assert_eq!(res.json()["used_value"], n);
    // Beyond the bound: both gone, the retry is a new recording.
    forget_answer(&t, "k0").await;
    let res = t.send(usage(&id, "api_calls", 1.into(), "k0")).await;
    assert!(!res.replayed());
    assert_eq!(res.json()["used_value"], n + 1);
}

/// A refusal for the limit is stored under its key like any refusal: replayed as it was.
#[tokio::test]
async fn a_refusal_for_the_limit_replays() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let over = t.send(usage(&id, "api_calls", 101.into(), "big")).await;
    assert_eq!(over.status, 429, "{}", over.body);
    let again = t.send(usage(&id, "api_calls", 101.into(), "big")).await;
    assert_eq!((again.status, again.replayed()), (429, true));
    assert_eq!(again.body, over.body);
}

/// A trial item whose keys concurrency pushed to the hard bound (`MAX_KEYS`) still records:
/// the write prunes back to the newest `KEPT_KEYS` and never grows the map past the bound.
#[tokio::test]
async fn a_full_key_map_is_pruned_back_not_grown() {
    use trials::domain::usage::{RecordedKey, KEPT_KEYS, MAX_KEYS};
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let mut trial = trials_tests::writes::stored(&t, &id).await.unwrap();
    let full = (0..MAX_KEYS as i64).map(|i| {
        let key = RecordedKey {
            fingerprint: "0123456789abcdef".into(),
            seq: i + 1,
            after: 0,
        };
        (format!("{i:016x}"), key)
    });
    trial.usage_keys = Some(full.collect());
    let item = t.app.store.trial_item(&trial, trial.policy());
    trials::aws::local_dynamodb(&t.endpoint)
        .put_item()
        .table_name(t.app.store.table_name())
        .set_item(Some(item))
        .send()
        .await
        .expect("seed a full map");
    let res = t.send(usage(&id, "api_calls", 1.into(), "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let keys = recorded_keys(&t, &id).await;
    assert_eq!(keys.len(), KEPT_KEYS);
    assert!(keys.contains_key(&trials::domain::usage::key_id("k1")));
    assert!(keys.values().all(|k| k.seq > (MAX_KEYS - KEPT_KEYS) as i64));
}
