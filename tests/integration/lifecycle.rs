//! Extend, pause and resume through the API, the automatic resume and the ending-soon and
//! grace-ending reminders through the expire job: embedded dynoxide, injected clock.
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use trials::domain::{TrialId, TrialStatus};
use trials::store::schema::{reminder_pk, shard_of, DUE_AT, PK, REMINDER_SK, SK, TTL};
use trials_tests::requests::ORG;
use trials_tests::{Call, TestApp, DAY, T0};

use crate::jobs::{convert, due, event_items, expire, stored};

const HOUR: i64 = 3_600;

/// An extension, with the org's admin key (extend is admin-only).
fn extend(id: &str, key: &str, body: Value) -> Call {
    Call::post(&format!("/v1/trials/{id}/extend"))
        .admin()
        .idempotency_key(key)
        .json(&body)
}

fn pause(id: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key(key)
}

fn resume(id: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/resume")).idempotency_key(key)
}

fn queue(t: &TestApp, name: &str, id: &str) -> String {
    format!("{name}#{}", shard_of(id, t.app.store.shards()))
}

/// Event details in the table (a test-only scan), by id.
pub(crate) async fn event_detail(t: &TestApp, event_id: &str) -> Option<Value> {
    let out = t
        .app
        .store
        .client()
        .get_item()
        .table_name(t.app.store.table_name())
        .key(PK, AttributeValue::S(format!("EVENT#{event_id}")))
        .key(SK, AttributeValue::S("EVENT".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get event");
    let detail = out.item?.get("detail")?.as_s().ok()?.clone();
    serde_json::from_str(&detail).ok()
}

/// The event ids of one kind (`ending_soon`, `grace_ending`...).
async fn events_of(t: &TestApp, kind: &str) -> Vec<String> {
    event_items(t)
        .await
        .into_iter()
        .filter(|id| id.contains(&format!(".{kind}")))
        .collect()
}

/// The reminder cursor's `due_at`, if the trial has one.
async fn cursor(t: &TestApp, id: &str) -> Option<i64> {
    cursor_attribute(t, id, DUE_AT).await
}

/// When the reminder cursor goes by itself (its TTL), if the trial has one.
async fn cursor_ttl(t: &TestApp, id: &str) -> Option<i64> {
    cursor_attribute(t, id, TTL).await
}

async fn cursor_attribute(t: &TestApp, id: &str, name: &str) -> Option<i64> {
    let out = t
        .app
        .store
        .client()
        .get_item()
        .table_name(t.app.store.table_name())
        .key(
            PK,
            AttributeValue::S(reminder_pk(&TrialId::parse(id).unwrap())),
        )
        .key(SK, AttributeValue::S(REMINDER_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get cursor");
    out.item?.get(name)?.as_n().ok()?.parse().ok()
}

fn code(res: &trials_tests::TestResponse) -> (u16, String) {
    (res.status, res.error_code())
}

#[tokio::test]
async fn extend_an_active_trial_moves_its_end_and_its_expiry() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.advance(HOUR);
    let res = t
        .send(extend(
            &id,
            "e1",
            json!({ "days": 3, "reason": "sales call" }),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["expires_at"], "2026-04-16T10:00:00Z");
    assert_eq!(
        body["active_ranges"],
        json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-16T10:00:00Z" }])
    );
    assert_eq!(body["remaining_duration"], 10 * DAY - HOUR);
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 10 * DAY))
    );
    // The same key replays; the status view agrees.
    let replay = t
        .send(extend(
            &id,
            "e1",
            json!({ "days": 3, "reason": "sales call" }),
        ))
        .await;
    assert!(replay.replayed());
    assert_eq!(replay.body, res.body);
    assert_eq!(
        t.send(Call::status(&id)).await.json()["expires_at"],
        body["expires_at"]
    );
    // The event: old and new end, the reason and the key id (never the key).
    let event = event_detail(&t, &format!("{id}.extended.{}", T0 + 10 * DAY))
        .await
        .expect("trial.extended");
    assert_eq!(event["previous_expires_at"], "2026-04-13T10:00:00Z");
    assert_eq!(event["expires_at"], "2026-04-16T10:00:00Z");
    assert_eq!(event["reason"], "sales call");
    let key = t.admin_key(ORG).await;
    let key_id = key.key_id().to_owned();
    assert_eq!(event["requested_by"], key_id.as_str());
    assert!(
        !event.to_string().contains(key.expose()),
        "the key never leaks"
    );
    // Not later, beyond the 90-day maximum, or malformed: 422.
    for (k, body) in [
        ("e2", json!({ "until": "2026-04-15T10:00:00Z" })),
        ("e3", json!({ "days": 85 })),
        ("e4", json!({ "days": 0 })),
        ("e5", json!({ "days": 1, "until": "2026-05-01T00:00:00Z" })),
    ] {
        let res = t.send(extend(&id, k, body.clone())).await;
        assert_eq!(code(&res), (422, "invalid_extension".into()), "{body}");
    }
    let res = t
        .send(
            Call::post(&format!("/v1/trials/{id}/extend"))
                .admin()
                .json(&json!({"days": 1})),
        )
        .await;
    assert_eq!(code(&res), (400, "missing_idempotency_key".into()));
}

#[tokio::test]
async fn a_standard_key_may_not_extend_but_may_pause_and_resume() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let standard = Call::post(&format!("/v1/trials/{id}/extend"))
        .idempotency_key("s1")
        .json(&json!({ "days": 3 }));
    let res = t.send(standard).await;
    assert_eq!(code(&res), (403, "forbidden".into()), "{}", res.body);
    // Nothing moved: no event, the same end and expiry entry.
    assert!(events_of(&t, "extended").await.is_empty());
    assert_eq!(
        t.send(Call::status(&id)).await.json()["expires_at"],
        "2026-04-13T10:00:00Z"
    );
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 7 * DAY))
    );
    // Pause and resume stay open to any key of the org.
    assert_eq!(t.send(pause(&id, "s2")).await.status, 200);
    assert_eq!(t.send(resume(&id, "s3")).await.status, 200);
}

#[tokio::test]
async fn an_admin_patch_moves_the_current_range_and_re_arms_the_reminders() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let patch = |key: &str, at: &str| {
        Call::new("PATCH", &format!("/v1/trials/{id}"))
            .path_id(&id)
            .admin()
            .idempotency_key(key)
            .json(&json!({ "expires_at": at }))
    };
    t.clock.set(T0 + DAY);
    assert_eq!(t.send(pause(&id, "p")).await.status, 200);
    // PAUSED: no admin change (the state machine's check_admin_change).
    let res = t.send(patch("a1", "2026-04-26T10:00:00Z")).await;
    assert_eq!(code(&res), (409, "trial_not_active".into()), "{}", res.body);
    t.clock.set(T0 + 2 * DAY);
    assert_eq!(t.send(resume(&id, "r")).await.status, 200);

    let res = t.send(patch("a2", "2026-04-26T10:00:00Z")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["expires_at"], "2026-04-26T10:00:00Z");
    // The current (second) range ends at the new end; the first is untouched.
    assert_eq!(
        body["active_ranges"],
        json!([
            { "start": "2026-04-06T10:00:00Z", "end": "2026-04-07T10:00:00Z" },
            { "start": "2026-04-08T10:00:00Z", "end": "2026-04-26T10:00:00Z" },
        ])
    );
    let s = stored(&t, &id).await.unwrap();
    assert_eq!(s.expires_at, T0 + 20 * DAY);
    assert_eq!(s.ranges().last().map(|r| r.end), Some(T0 + 20 * DAY));
    assert_eq!(
        t.send(Call::status(&id)).await.json()["active_ranges"],
        body["active_ranges"]
    );
    // The expiry entry and the reminder cursor moved to the new end (72 h before it first).
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 20 * DAY))
    );
    assert_eq!(cursor(&t, &id).await, Some(T0 + 20 * DAY - 72 * HOUR));
    // An extension after the PATCH counts from the end the PATCH set.
    let res = t.send(extend(&id, "e", json!({ "days": 1 }))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["expires_at"], "2026-04-27T10:00:00Z");
}

#[tokio::test]
async fn extend_during_grace_revives_the_trial_and_leaves_the_purge_queue() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + 8 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "PURGE", &id), T0 + 10 * DAY))
    );
    let res = t.send(extend(&id, "e", json!({ "days": 2 }))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["expires_at"], "2026-04-16T10:00:00Z");
    assert_eq!(body["active_ranges"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 10 * DAY))
    );
    assert!(body.get("grace_period_ends_at").is_none());

    // Past grace: 410. Converted and canceled: 409 with their own codes.
    let late = t.start_trial("org_late", "growth").await;
    t.clock.set(T0 + 18 * DAY);
    let res = t
        .send(extend(&late, "l", json!({ "days": 1 })).org("org_late"))
        .await;
    assert_eq!(code(&res), (410, "trial_expired".into()));
    t.clock.set(T0 + 9 * DAY);
    let trial = stored(&t, &id).await.expect("trial");
    assert!(convert(&t, &trial, t.now()).await);
    let res = t.send(extend(&id, "c", json!({ "days": 1 }))).await;
    assert_eq!(code(&res), (409, "trial_already_converted".into()));
    let other = t.start_trial("org_other", "pro").await;
    let canceled = t.send(Call::cancel(&other, "x").org("org_other")).await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    let res = t
        .send(extend(&other, "o", json!({ "days": 1 })).org("org_other"))
        .await;
    assert_eq!(code(&res), (409, "trial_canceled".into()));
    // Another org's trial is not found.
    let res = t.send(extend(&other, "o2", json!({ "days": 1 }))).await;
    assert_eq!(code(&res), (404, "trial_not_found".into()));
}

#[tokio::test]
async fn a_pause_across_the_old_expiry_freezes_the_trial_until_it_resumes() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + 5 * DAY);
    let res = t.send(pause(&id, "p")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "PAUSED");
    assert_eq!(body["paused_at"], "2026-04-11T10:00:00Z");
    assert_eq!(body["remaining_duration"], 2 * DAY);
    assert_eq!(body["days_remaining"], 2);
    // The table says the same: a status read shows when the pause began.
    let read = t.send(Call::status(&id)).await.json();
    assert_eq!(
        (&read["status"], &read["paused_at"]),
        (&json!("PAUSED"), &json!("2026-04-11T10:00:00Z"))
    );
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "RESUME", &id), T0 + 35 * DAY))
    );
    assert_eq!(cursor(&t, &id).await, None, "no reminders while paused");
    assert_eq!(
        code(&t.send(pause(&id, "p2")).await),
        (409, "trial_not_active".into())
    );
    assert_eq!(
        code(&t.send(extend(&id, "x", json!({ "days": 1 }))).await),
        (409, "trial_not_active".into())
    );

    // Well past the old end: nothing expires, the view is frozen.
    t.clock.set(T0 + 12 * DAY);
    let run = expire(&t).await;
    assert_eq!(run.processed, 0);
    let view = t.send(Call::status(&id)).await.json();
    assert_eq!(view["status"], "PAUSED");
    assert_eq!(view["remaining_duration"], 2 * DAY);
    assert_eq!(
        view["active_ranges"],
        json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-11T10:00:00Z" }])
    );

    let res = t.send(resume(&id, "r")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["expires_at"], "2026-04-20T10:00:00Z");
    assert!(body.get("paused_at").is_none());
    assert_eq!(body["active_ranges"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 14 * DAY))
    );
    assert_eq!(
        code(&t.send(resume(&id, "r2")).await),
        (409, "trial_not_paused".into())
    );
    let ids = event_items(&t).await;
    assert!(ids.contains(&format!("{id}.paused.1")), "{ids:?}");
    assert!(ids.contains(&format!("{id}.resumed.2")), "{ids:?}");
    let resumed = event_detail(&t, &format!("{id}.resumed.2")).await.unwrap();
    assert_eq!(resumed["automatic"], false);
    // Re-armed for the new end: 72 h before it was past at the resume, so 24 h before.
    assert_eq!(cursor(&t, &id).await, Some(T0 + 13 * DAY));
    // It expires at its new end.
    t.clock.set(T0 + 14 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    assert_eq!(stored(&t, &id).await.unwrap().status, TrialStatus::Expired);
}

#[tokio::test]
async fn a_pause_past_its_maximum_resumes_by_itself() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + DAY);
    assert_eq!(t.send(pause(&id, "p")).await.status, 200);
    t.clock.set(T0 + 31 * DAY - 1);
    assert_eq!(expire(&t).await.resumed, 0);
    assert_eq!(stored(&t, &id).await.unwrap().status, TrialStatus::Paused);
    // The job runs two hours late: the trial resumed at the maximum.
    t.clock.set(T0 + 31 * DAY + 2 * HOUR);
    // Before the job writes it, the view already reads it resumed.
    let view = t.send(Call::status(&id)).await.json();
    assert_eq!(view["status"], "ACTIVE");
    assert_eq!(view["expires_at"], "2026-05-13T10:00:00Z");
    // So does Gcore's trial data: the time left runs again from the maximum.
    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert_eq!(data["remaining_duration"], 6 * DAY - 2 * HOUR);
    assert_eq!(data["active_ranges"].as_array().map(Vec::len), Some(2));
    let run = expire(&t).await;
    assert_eq!(run.resumed, 1, "{run:?}");
    let trial = stored(&t, &id).await.unwrap();
    assert_eq!(trial.status, TrialStatus::Active);
    assert_eq!(trial.expires_at, T0 + 37 * DAY);
    assert_eq!(trial.paused_at, None);
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "EXPIRE", &id), T0 + 37 * DAY))
    );
    let event = event_detail(&t, &format!("{id}.resumed.2")).await.unwrap();
    assert_eq!(event["automatic"], true);
    assert_eq!(event["resumed_at"], "2026-05-07T10:00:00Z");
    // A second run finds nothing to resume.
    assert_eq!(expire(&t).await.resumed, 0);
}

#[tokio::test]
async fn a_paused_trial_can_be_canceled_and_converted() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + DAY);
    assert_eq!(t.send(pause(&id, "p")).await.status, 200);
    t.clock.set(T0 + 9 * DAY);
    let res = t.send(Call::cancel(&id, "c")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "CANCELED");
    assert_eq!(body["remaining_duration"], Value::Null);
    assert_eq!(
        body["active_ranges"],
        json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-07T10:00:00Z" }])
    );
    assert_eq!(
        due(&t, &id).await,
        Some((queue(&t, "PURGE", &id), T0 + 12 * DAY))
    );

    let other = t.start_trial("org_conv", "growth").await;
    t.clock.set(T0 + 16 * DAY);
    let res = t.send(pause(&other, "p").org("org_conv")).await;
    assert_eq!(code(&res), (409, "trial_already_expired".into()));
    t.clock.set(T0 + 10 * DAY);
    let other = t.start_trial("org_conv2", "growth").await;
    assert_eq!(
        t.send(pause(&other, "p").org("org_conv2")).await.status,
        200
    );
    let trial = stored(&t, &other).await.unwrap();
    assert!(convert(&t, &trial, T0 + 11 * DAY).await);
    let trial = stored(&t, &other).await.unwrap();
    assert_eq!(trial.status, TrialStatus::Converted);
    assert_eq!(due(&t, &other).await, None, "out of the resume queue");
}

#[tokio::test]
async fn ending_soon_reminders_publish_once_each_and_an_extension_re_arms_them() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(cursor(&t, &id).await, Some(T0 + 4 * DAY));
    // A cursor nobody advances (its trial purged) goes a day after the grace ends (7 d + 3 d).
    assert_eq!(cursor_ttl(&t, &id).await, Some(T0 + 11 * DAY));
    t.clock.set(T0 + 4 * DAY);
    assert_eq!(expire(&t).await.reminded, 1);
    let first = format!("{id}.ending_soon.{}.259200", T0 + 7 * DAY);
    assert_eq!(events_of(&t, "ending_soon").await, vec![first.clone()]);
    let event = event_detail(&t, &first).await.unwrap();
    assert_eq!(event["hours_remaining"], 72);
    assert_eq!(event["expires_at"], "2026-04-13T10:00:00Z");
    // Run twice: published once.
    assert_eq!(expire(&t).await.reminded, 0);
    assert_eq!(events_of(&t, "ending_soon").await.len(), 1);
    assert_eq!(cursor(&t, &id).await, Some(T0 + 6 * DAY));
    assert!(t.publish_events().await.published > 0);

    // Extended by 3 days: re-armed for the new end, under new ids.
    t.clock.set(T0 + 4 * DAY + HOUR);
    assert_eq!(
        t.send(extend(&id, "e", json!({ "days": 3 }))).await.status,
        200
    );
    assert_eq!(cursor(&t, &id).await, Some(T0 + 7 * DAY));
    assert_eq!(
        cursor_ttl(&t, &id).await,
        Some(T0 + 14 * DAY),
        "a day after the new grace end"
    );
    t.clock.set(T0 + 6 * DAY);
    expire(&t).await;
    assert_eq!(
        events_of(&t, "ending_soon").await.len(),
        1,
        "the old 24 h is not sent"
    );
    t.clock.set(T0 + 7 * DAY);
    expire(&t).await;
    t.clock.set(T0 + 9 * DAY);
    expire(&t).await;
    expire(&t).await;
    let sent = events_of(&t, "ending_soon").await;
    let mut expected = vec![
        first,
        format!("{id}.ending_soon.{}.259200", T0 + 10 * DAY),
        format!("{id}.ending_soon.{}.86400", T0 + 10 * DAY),
    ];
    expected.sort();
    assert_eq!(sent, expected);

    // Expired at 10 d, purged at 13 d: one grace-ending warning at 12 d.
    t.clock.set(T0 + 12 * DAY);
    expire(&t).await;
    expire(&t).await;
    assert_eq!(
        events_of(&t, "grace_ending").await,
        vec![format!("{id}.grace_ending.{}", T0 + 13 * DAY)]
    );
    assert_eq!(cursor(&t, &id).await, None, "nothing left to remind");
}

/// Each trial has its own reminder cursor: two trials started an hour apart are each
/// reminded at their own time.
#[tokio::test]
async fn every_trial_gets_its_own_reminders() {
    let t = TestApp::new().await;
    let first = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + HOUR);
    let second = t.start_trial("org_second", "growth").await;
    assert_eq!(cursor(&t, &first).await, Some(T0 + 4 * DAY));
    assert_eq!(cursor(&t, &second).await, Some(T0 + 4 * DAY + HOUR));
    t.clock.set(T0 + 4 * DAY + HOUR);
    assert_eq!(expire(&t).await.reminded, 2);
    assert_eq!(events_of(&t, "ending_soon").await.len(), 2);
}

#[tokio::test]
async fn canceled_and_converted_trials_get_no_reminders() {
    let t = TestApp::new().await;
    let canceled = t.start_trial(ORG, "growth").await;
    let converted = t.start_trial("org_paid", "growth").await;
    assert_eq!(t.send(Call::cancel(&canceled, "c")).await.status, 200);
    let trial = stored(&t, &converted).await.unwrap();
    assert!(convert(&t, &trial, T0 + HOUR).await);
    for at in [4, 6, 9] {
        t.clock.set(T0 + at * DAY);
        expire(&t).await;
    }
    assert!(events_of(&t, "ending_soon").await.is_empty());
    assert!(events_of(&t, "grace_ending").await.is_empty());
    assert_eq!(cursor(&t, &canceled).await, None);
    assert_eq!(cursor(&t, &converted).await, None);
}

#[tokio::test]
async fn offsets_already_past_at_start_are_skipped() {
    let t = TestApp::with_config(|c| c.catalog.override_lengths(Some(2 * DAY), None)).await;
    let id = t.start_trial(ORG, "growth").await;
    // 72 h before a 2-day trial's end is before its start: only the 24 h one is armed.
    assert_eq!(cursor(&t, &id).await, Some(T0 + DAY));
    t.clock.set(T0 + DAY);
    expire(&t).await;
    assert_eq!(
        events_of(&t, "ending_soon").await,
        vec![format!("{id}.ending_soon.{}.86400", T0 + 2 * DAY)]
    );
}

#[tokio::test]
async fn the_manage_function_serves_its_routes_only() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let routes = trials::api::routes::MANAGE;
    let send = |call: Call| {
        let t = t.clone();
        async move {
            let req = t.authorize(call).await.build();
            trials_tests::requests::read(trials::api::handle_among(&t.app, routes, req).await)
        }
    };
    assert_eq!(send(pause(&id, "p")).await.status, 200);
    assert_eq!(send(resume(&id, "r")).await.status, 200);
    let res = send(Call::cancel(&id, "c")).await;
    assert_eq!(code(&res), (404, "route_not_found".into()));
    assert_eq!(stored(&t, &id).await.unwrap().status, TrialStatus::Active);
}

#[tokio::test]
async fn a_paused_trial_opens_a_checkout_long_after_its_old_end() {
    let (t, _stripe) = trials_tests::stripe::with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + DAY);
    assert_eq!(t.send(pause(&id, "p")).await.status, 200);
    // Past the old end and the old grace: still PAUSED, so it may convert.
    t.clock.set(T0 + 20 * DAY);
    let res = t.send(Call::convert(&id, "v")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["trial_id"], id.as_str());
}

#[tokio::test]
async fn concurrent_moves_apply_once_each_on_the_trial_as_it_is() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    // Five pauses at once: one pauses, the others find it paused.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let (t, id) = (t.clone(), id.clone());
        set.spawn(async move { t.send(pause(&id, &format!("p{i}"))).await });
    }
    let mut statuses = Vec::new();
    while let Some(res) = set.join_next().await {
        let res = res.unwrap();
        statuses.push(if res.status == 200 {
            "ok".into()
        } else {
            res.error_code()
        });
    }
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            "ok",
            "trial_not_active",
            "trial_not_active",
            "trial_not_active",
            "trial_not_active"
        ]
    );
    assert_eq!(t.send(resume(&id, "r")).await.status, 200);
    // Three extensions of a day at once: each applies to the end the others left.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..3 {
        let (t, id) = (t.clone(), id.clone());
        set.spawn(async move {
            t.send(extend(&id, &format!("e{i}"), json!({ "days": 1 })))
                .await
                .status
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(stored(&t, &id).await.unwrap().expires_at, T0 + 10 * DAY);
    assert_eq!(
        event_items(&t)
            .await
            .iter()
            .filter(|e| e.contains(".extended."))
            .count(),
        3
    );
}

#[tokio::test]
async fn pause_and_resume_past_the_bound_on_the_ranges_keep_answering_each_event_once() {
    use trials::domain::active_ranges::MAX_RANGES;
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let cycles = MAX_RANGES + 6;
    let mut last_pause = String::new();
    for n in 1..=cycles {
        t.clock.set(T0 + 120 * n as i64);
        let res = t.send(pause(&id, &format!("p{n}"))).await;
        assert_eq!(res.status, 200, "pause {n}: {}", res.body);
        last_pause = res.body.clone();
        t.clock.set(T0 + 120 * n as i64 + 60);
        let res = t.send(resume(&id, &format!("r{n}"))).await;
        assert_eq!(res.status, 200, "resume {n}: {}", res.body);
    }
    // A retried pause (same key) answers as the first did and writes nothing more.
    let res = t.send(pause(&id, &format!("p{cycles}"))).await;
    assert_eq!((res.status, res.body.clone()), (200, last_pause));

    // The n-th pause and resume each wrote their event once, under their own ids.
    let mut ids = events_of(&t, "paused").await;
    ids.extend(events_of(&t, "resumed").await);
    ids.sort();
    let mut expected: Vec<String> = (1..=cycles)
        .flat_map(|n| {
            [
                format!("{id}.paused.{n}"),
                format!("{id}.resumed.{}", n + 1),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    let pumped = t.publish_events().await;
    assert_eq!(pumped.published, 1 + 2 * cycles, "{pumped:?}");

    // The ranges stayed bounded, their total the trial's full length.
    let trial = stored(&t, &id).await.unwrap();
    assert_eq!(trial.status, TrialStatus::Active);
    assert_eq!(trial.active_ranges.len(), MAX_RANGES);
    assert_eq!(trial.pauses, Some(cycles as i64));
    let total: i64 = trial.active_ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(total, 7 * DAY);
}
