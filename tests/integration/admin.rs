//! Issue 15: admin keys. `expires_at` and `notes` at start (ignored for a standard key), and
//! `PATCH /v1/trials/{id}` (admin only, idempotent, conditional, moves the expiry).
use serde_json::json;
use trials::domain::api_key::{ApiKey, Projects};
use trials::domain::time::rfc3339;
use trials::domain::OrgId;
use trials_tests::requests::ORG;
use trials_tests::{builtin_catalog_with, Call, TestApp, DAY, T0};

use crate::jobs::{expire, stored};

async fn admin_key(t: &TestApp, org: &str) -> ApiKey {
    let (key, info) = trials::auth::issue::create_with_scope(
        &t.app.store,
        OrgId::parse(org).unwrap(),
        Projects::All,
        true,
        t.now(),
    )
    .await
    .expect("admin key");
    assert!(info.admin);
    let listed = t.app.store.list_api_keys(&info.org).await.unwrap();
    assert!(listed.iter().any(|k| k.key_id == info.key_id && k.admin));
    key
}

fn patch(id: &str, key: &str, body: serde_json::Value) -> Call {
    Call::new("PATCH", &format!("/v1/trials/{id}"))
        .path_id(id)
        .idempotency_key(key)
        .json(&body)
}

#[tokio::test]
async fn an_admin_sets_expiry_and_notes_at_start_a_standard_key_is_ignored() {
    let t = TestApp::new().await;
    let admin = admin_key(&t, ORG).await;
    let body = json!({
        "plan": "growth",
        "expires_at": rfc3339(T0 + 30 * DAY),
        "notes": "enterprise deal\nsee CRM",
    });
    let res = t
        .send(
            Call::post("/v1/trials/start")
                .idempotency_key("adm-1")
                .json(&body)
                .bearer(admin.expose()),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let started = res.json();
    assert_eq!(started["expires_at"], rfc3339(T0 + 30 * DAY));
    assert_eq!(started["notes"], "enterprise deal\nsee CRM");
    let id = started["id"].as_str().unwrap();
    let read = t.send(Call::status(id).bearer(admin.expose())).await.json();
    assert_eq!(read["notes"], "enterprise deal\nsee CRM");
    // A standard key reads the trial without the notes (issue 26: admin keys only).
    let read = t.send(Call::status(id)).await.json();
    assert!(read.get("notes").is_none(), "{read}");
    assert_eq!(read["expires_at"], rfc3339(T0 + 30 * DAY));
    assert_eq!(read["days_remaining"], 30);

    // A standard key: ignored, even malformed; the 201 shows the effective values.
    for (i, expires_at) in [json!(rfc3339(T0 + 30 * DAY)), json!("tomorrow")]
        .into_iter()
        .enumerate()
    {
        let org = format!("org_std{i}");
        let res = t
            .send(
                Call::post("/v1/trials/start")
                    .idempotency_key("std")
                    .org(&org)
                    .json(&json!({ "plan": "growth", "expires_at": expires_at, "notes": "x" })),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        assert_eq!(res.json()["expires_at"], rfc3339(T0 + 7 * DAY));
        assert!(res.json().get("notes").is_none(), "{}", res.body);
    }
}

#[tokio::test]
async fn an_admin_expiry_must_be_in_the_future_and_within_the_default_90_days() {
    let t = TestApp::new().await;
    let admin = admin_key(&t, ORG).await;
    for (i, at) in [T0, T0 - DAY, T0 + 90 * DAY + 1].into_iter().enumerate() {
        let res = t
            .send(
                Call::post("/v1/trials/start")
                    .idempotency_key(&format!("bad-{i}"))
                    .json(&json!({ "plan": "growth", "expires_at": rfc3339(at) }))
                    .bearer(admin.expose()),
            )
            .await;
        assert_eq!(res.status, 422, "{}", res.body);
        assert_eq!(res.error_code(), "invalid_expiration");
    }
    let res = t
        .send(
            Call::post("/v1/trials/start")
                .idempotency_key("ok")
                .json(&json!({ "plan": "growth", "expires_at": rfc3339(T0 + 90 * DAY) }))
                .bearer(admin.expose()),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
}

#[tokio::test]
async fn patch_is_admin_only_idempotent_and_moves_the_expiry() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let admin = admin_key(&t, ORG).await;

    let res = t.send(patch(&id, "p-std", json!({ "notes": "hi" }))).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(res.error_code(), "forbidden");

    let body = json!({ "expires_at": rfc3339(T0 + 20 * DAY), "notes": "extended by sales" });
    let res = t
        .send(patch(&id, "p-1", body.clone()).bearer(admin.expose()))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["expires_at"], rfc3339(T0 + 20 * DAY));
    assert_eq!(res.json()["notes"], "extended by sales");
    let replay = t.send(patch(&id, "p-1", body).bearer(admin.expose())).await;
    assert_eq!(replay.status, 200);
    assert!(replay.replayed());
    assert_eq!(replay.body, res.body);

    // The due index moved: the old expiry passes, nothing expires; the new one does.
    t.clock.set(T0 + 7 * DAY + 1);
    assert_eq!(expire(&t).await.processed, 0);
    let s = stored(&t, &id).await.unwrap();
    assert_eq!(s.expires_at, T0 + 20 * DAY);
    assert_eq!(s.notes.as_deref(), Some("extended by sales"));
    t.clock.set(T0 + 20 * DAY);
    assert_eq!(expire(&t).await.processed, 1);

    // Not ACTIVE any more: the transition's error.
    let res = t
        .send(patch(&id, "p-2", json!({ "notes": null })).bearer(admin.expose()))
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "trial_already_expired");
}

#[tokio::test]
async fn patch_refuses_bad_bodies_and_other_orgs_trials() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let admin = admin_key(&t, ORG).await;
    for (i, (body, code, status)) in [
        (json!({}), "invalid_field", 400),
        (json!({ "plan": "pro" }), "invalid_field", 400),
        (json!({ "expires_at": null }), "invalid_field", 400),
        (json!({ "expires_at": "soon" }), "invalid_field", 400),
        (
            json!({ "expires_at": rfc3339(T0 + 91 * DAY) }),
            "invalid_expiration",
            422,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let res = t
            .send(patch(&id, &format!("b-{i}"), body.clone()).bearer(admin.expose()))
            .await;
        assert_eq!(res.status, status, "{body}: {}", res.body);
        assert_eq!(res.error_code(), code, "{body}");
    }
    // Clearing notes works; the trial keeps its expiry.
    let res = t
        .send(patch(&id, "clear", json!({ "notes": "" })).bearer(admin.expose()))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.json().get("notes").is_none());
    assert_eq!(res.json()["expires_at"], rfc3339(T0 + 7 * DAY));

    // Another org's admin key sees no such trial.
    let other = admin_key(&t, "org_other").await;
    let res = t
        .send(
            patch(&id, "x", json!({ "notes": "n" }))
                .org("org_other")
                .bearer(other.expose()),
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.body);
}

#[tokio::test]
async fn the_maximum_is_the_plans_own_as_the_trial_snapshot_it() {
    // growth allows at most 14 days in this catalog.
    let t = TestApp::with_config(|c| {
        c.catalog = builtin_catalog_with(|v| v["plans"][1]["max_total_trial_length"] = json!("14d"))
    })
    .await;
    let admin = admin_key(&t, ORG).await;
    let start = |key: &str, at: i64| {
        Call::post("/v1/trials/start")
            .idempotency_key(key)
            .json(&json!({ "plan": "growth", "expires_at": rfc3339(at) }))
            .bearer(admin.expose())
    };
    let res = t.send(start("over", T0 + 14 * DAY + 1)).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.error_code(), "invalid_expiration");
    let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("14 days"), "{message}");
    let res = t.send(start("max", T0 + 10 * DAY)).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.json()["id"].as_str().unwrap().to_owned();
    // The trial's one active range ends with the admin's date.
    let read = t.send(Call::status(&id)).await.json();
    assert_eq!(read["expires_at"], rfc3339(T0 + 10 * DAY));
    assert_eq!(read["active_ranges"][0]["end"], rfc3339(T0 + 10 * DAY));

    // A process whose catalog now allows 90 days still holds this trial to its 14.
    let mut config = (*t.app.config).clone();
    config.catalog = trials::domain::catalog::Catalog::builtin();
    let other = trials::App::new(
        config,
        t.app.store.clone(),
        std::sync::Arc::new(t.clock.clone()),
    );
    let call = patch(
        &id,
        "p-over",
        json!({ "expires_at": rfc3339(T0 + 20 * DAY) }),
    )
    .bearer(admin.expose())
    .build();
    let res = trials_tests::requests::read(trials::api::handle_any(&other, call).await);
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.error_code(), "invalid_expiration");
    let call = patch(&id, "p-ok", json!({ "expires_at": rfc3339(T0 + 14 * DAY) }))
        .bearer(admin.expose())
        .build();
    let res = trials_tests::requests::read(trials::api::handle_any(&other, call).await);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json()["active_ranges"][0]["end"],
        rfc3339(T0 + 14 * DAY)
    );
}
