//! Issue 26 item 8, tenancy. 8a: the project is part of the idempotency scope: the same
//! Idempotency-Key and body under another `X-Project-Id` is another request, and never replays
//! the first project's trial. 8b: a 409 never names a trial the key cannot read. 8c: `notes`
//! go to admin keys only.
use serde_json::json;
use trials::domain::api_key::ApiKey;
use trials_tests::requests::{ORG, PROJECT};
use trials_tests::stripe::with_stripe;
use trials_tests::{Call, TestApp, TestResponse};

#[tokio::test]
async fn the_same_key_and_body_under_another_project_does_not_replay_the_first_trial() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "shared-key")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let trial_id = first.json()["id"].as_str().unwrap().to_owned();

    let other = t
        .send(
            Call::start("growth", "shared-key")
                .without("x-project-id")
                .header("x-project-id", "proj_other"),
        )
        .await;
    assert!(!other.replayed(), "{}", other.body);
    assert!(!other.body.contains(&trial_id), "{}", other.body);
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        other.body
    );

    // The first project's retry still replays its own answer.
    let again = t.send(Call::start("growth", "shared-key")).await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
}

/// `call` sent under `project` with `key` (a key limited to projects, say).
fn under(call: Call, project: &str, key: &ApiKey) -> Call {
    call.without("x-project-id")
        .header("x-project-id", project)
        .bearer(key.expose())
}

fn skip(key: &str, plan: &str) -> Call {
    Call::post("/v1/trials/skip")
        .idempotency_key(key)
        .json(&json!({ "plan": plan }))
}

/// `res` is 409 `trial_already_exists` and does not name `trial`.
fn refused_unnamed(res: &TestResponse, trial: &str) {
    let answer = (res.status, res.error_code());
    assert_eq!(answer, (409, "trial_already_exists".into()), "{}", res.body);
    assert!(!res.body.contains(trial), "{}", res.body);
}

/// Issue 26 item 8b: a key limited to another project is told the org used its trial, never
/// which one (every read of that id by that key answers 404); a key that may read it is told.
#[tokio::test]
async fn a_409_on_start_names_the_orgs_trial_only_to_a_key_that_may_read_it() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let other = t.create_key(ORG, &["proj_other"]).await;

    let res = t
        .send(under(Call::start("growth", "again"), "proj_other", &other))
        .await;
    refused_unnamed(&res, &id);
    let read = t.send(under(Call::status(&id), "proj_other", &other)).await;
    assert_eq!(read.status, 404, "{}", read.body);
    // Its retry replays the same answer, still without the id.
    let again = t
        .send(under(Call::start("growth", "again"), "proj_other", &other))
        .await;
    assert!(again.replayed());
    assert!(!again.body.contains(&id), "{}", again.body);

    // A key limited to the trial's own project, and a key for all projects, are told.
    let same = t.create_key(ORG, &[PROJECT]).await;
    let res = t
        .send(under(Call::start("growth", "again-2"), PROJECT, &same))
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(res.body.contains(&id), "{}", res.body);
    let res = t.send(Call::start("growth", "again-3")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(res.body.contains(&id), "{}", res.body);
}

/// Issue 26 item 8b, on skip: the 409 does not name another project's trial, and another
/// project's skipped trial is not this key's to check out: the org used its trial (409), not
/// "no such trial" (it was 404 `trial_not_found`: the retry path took the org's skipped trial
/// of the plan for this key's and convert then refused a trial of another project).
#[tokio::test]
async fn a_409_on_skip_names_no_trial_of_another_project_nor_checks_it_out() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let other = t.create_key(ORG, &["proj_other"]).await;
    let res = t
        .send(under(skip("skip-1", "growth"), "proj_other", &other))
        .await;
    refused_unnamed(&res, &id);

    // Another org skips under proj_a; a key limited to proj_b skips the same plan.
    let org = "org_skipper";
    let a = t.create_key(org, &["proj_a"]).await;
    let b = t.create_key(org, &["proj_b"]).await;
    let first = t
        .send(under(skip("skip-a", "growth").org(org), "proj_a", &a))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let skipped = first.json()["trial_id"].as_str().unwrap().to_owned();
    let sessions = stripe.requests().len();
    let res = t
        .send(under(skip("skip-b", "growth").org(org), "proj_b", &b))
        .await;
    refused_unnamed(&res, &skipped);
    assert!(!res.body.contains("checkout"), "{}", res.body);
    assert_eq!(stripe.requests().len(), sessions);
}

const NOTE: &str = "called Ada about the renewal";

/// Issue 26 item 8c: an admin's notes are read by admin keys only, on every answer that shows
/// the trial.
#[tokio::test]
async fn notes_go_to_admin_keys_only() {
    let t = TestApp::new().await;
    let body = json!({ "plan": "growth", "notes": NOTE });
    let start = || Call::post("/v1/trials/start").idempotency_key("adm-start");
    let started = t.send(start().json(&body).admin()).await;
    assert_eq!(started.status, 201, "{}", started.body);
    assert_eq!(started.json()["notes"], NOTE);
    let id = started.json()["id"].as_str().unwrap().to_owned();
    let admin_read = t.send(Call::status(&id).admin()).await;
    assert_eq!(admin_read.json()["notes"], NOTE, "{}", admin_read.body);

    // A standard key of the same org and projects: every view of the trial, without them.
    let trial = |suffix: &str| format!("/v1/trials/{id}{suffix}");
    let reads = [
        Call::status(&id),
        Call::get("/v1/trials/current"),
        Call::get(&trial("/data")).path_id(&id),
    ];
    let moves = [
        Call::post(&trial("/pause"))
            .path_id(&id)
            .idempotency_key("p"),
        Call::post(&trial("/resume"))
            .path_id(&id)
            .idempotency_key("r"),
        Call::post(&trial("/cancel"))
            .path_id(&id)
            .idempotency_key("c"),
    ];
    for call in reads.into_iter().chain(moves) {
        let res = t.send(call).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(res.json().get("notes").is_none(), "{}", res.body);
        assert!(!res.body.contains(NOTE), "{}", res.body);
    }

    // The admin's answer is replayed to admin keys only: a standard key with the same
    // Idempotency-Key and body is another request (422), not a replay carrying the notes.
    let standard = t.send(start().json(&body)).await;
    assert!(!standard.replayed());
    assert!(!standard.body.contains(NOTE), "{}", standard.body);
    assert_eq!(
        (standard.status, standard.error_code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        standard.body
    );
    let replay = t.send(start().json(&body).admin()).await;
    assert!(replay.replayed());
    assert_eq!(replay.body, started.body);
}
