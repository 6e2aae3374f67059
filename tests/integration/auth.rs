//! API keys and tenancy: every status code authentication answers with, the cache window and
//! revocation, project-limited keys, round trips, and logs that never carry a key.

use aws_sdk_dynamodb::types::AttributeValue;
use trials::auth::{issue, KeyCache};
use trials::config::Secret;
use trials::domain::api_key::{ApiKey, Projects};
use trials::domain::OrgId;
use trials::store::schema;
use trials_tests::logs::capture;
use trials_tests::requests::{read, TestResponse, ORG, PROJECT};
use trials_tests::stripe::{signature, with_stripe};
use trials_tests::{Call, TestApp, DAY, T0};

async fn status(t: &TestApp, id: &str, key: &ApiKey) -> TestResponse {
    t.send(Call::status(id).bearer(key.expose())).await
}

fn code(res: &TestResponse) -> (u16, String) {
    (res.status, res.error_code())
}

#[tokio::test]
async fn missing_malformed_unknown_wrong_and_revoked_keys_get_one_and_the_same_401() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let good = t.create_key(ORG, &[]).await;
    let revoked = t.create_key(ORG, &[]).await;
    t.revoke_key(&revoked).await;
    // Right key id, wrong secret.
    let mut forged = good.expose().to_owned();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    let unknown = ApiKey::generate();

    let missing = t.send(Call::status(&id).without_auth()).await;
    assert_eq!(
        code(&missing),
        (401, "unauthorized".into()),
        "{}",
        missing.body
    );
    for authorization in [
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer nope".into(),
        "Basic dXNlcjpwYXNzd29yZA==".into(),
        format!("Token {}", good.expose()),
        format!("Bearer {}", good.expose().to_uppercase()),
        format!("Bearer {}", &good.expose()[..good.expose().len() - 1]),
        format!("Bearer {}", unknown.expose()),
        format!("Bearer {forged}"),
        format!("Bearer {}", revoked.expose()),
    ] {
        let res = t
            .send(Call::status(&id).header("authorization", &authorization))
            .await;
        assert_eq!(res.status, 401, "{authorization:?}: {}", res.body);
        // Byte for byte: nothing tells a revoked key from a made-up one.
        assert_eq!(res.body, missing.body, "{authorization:?}");
    }
    // The same key, presented properly, works (the scheme is case-insensitive).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = t
            .send(Call::status(&id).header("authorization", &format!("{scheme} {}", good.expose())))
            .await;
        assert_eq!(res.status, 200, "{scheme}: {}", res.body);
    }
}

#[tokio::test]
async fn the_key_is_checked_before_the_tenant_headers() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let res = t
        .send(
            Call::status(&id)
                .without_auth()
                .without("x-org-id")
                .without("x-project-id"),
        )
        .await;
    assert_eq!(code(&res), (401, "unauthorized".into()));
    let key = t.create_key(ORG, &[]).await;
    for (call, expected) in [
        (
            Call::status(&id).without("x-org-id"),
            (400, "missing_org_id"),
        ),
        (Call::status(&id).org("org abc"), (400, "invalid_org_id")),
        (
            Call::status(&id).without("x-project-id"),
            (400, "missing_project_id"),
        ),
        (
            Call::status(&id)
                .without("x-project-id")
                .header("x-project-id", "proj#1"),
            (400, "invalid_project_id"),
        ),
        // The org is checked before the project.
        (
            Call::status(&id).org("org_other").without("x-project-id"),
            (403, "forbidden"),
        ),
    ] {
        let res = t.send(call.bearer(key.expose())).await;
        assert_eq!(code(&res), (expected.0, expected.1.into()), "{}", res.body);
    }
}

#[tokio::test]
async fn a_key_acts_for_its_own_org_only() {
    let t = TestApp::new().await;
    let key_a = t.create_key("org_a", &[]).await;
    let res = t
        .send(
            Call::start("growth", "k")
                .org("org_b")
                .bearer(key_a.expose()),
        )
        .await;
    assert_eq!(code(&res), (403, "forbidden".into()), "{}", res.body);
    // Nothing was started for org_b: its own key starts its trial.
    let key_b = t.create_key("org_b", &[]).await;
    let res = t
        .send(
            Call::start("growth", "k")
                .org("org_b")
                .bearer(key_b.expose()),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.json()["id"].as_str().unwrap().to_owned();
    // org_b's trial, asked for with org_a's key and org_a's header: as if it did not exist.
    let res = t
        .send(Call::status(&id).org("org_a").bearer(key_a.expose()))
        .await;
    assert_eq!(code(&res), (404, "trial_not_found".into()), "{}", res.body);
    let missing = t
        .send(
            Call::status("trial_0123456789abcdef01234567")
                .org("org_a")
                .bearer(key_a.expose()),
        )
        .await;
    assert_eq!(res.body, missing.body);
    // And with org_b's header, org_a's key is refused before the trial is looked at.
    let res = t
        .send(Call::status(&id).org("org_b").bearer(key_a.expose()))
        .await;
    assert_eq!(code(&res), (403, "forbidden".into()));
}

#[tokio::test]
async fn a_key_limited_to_projects_serves_those_projects_only() {
    let t = TestApp::new().await;
    let key = t.create_key(ORG, &["proj_a", "proj_b"]).await;
    let with_project = |call: Call, project: &str| {
        call.without("x-project-id")
            .header("x-project-id", project)
            .bearer(key.expose())
    };
    let res = t
        .send(with_project(Call::start("growth", "k"), "proj_c"))
        .await;
    assert_eq!(code(&res), (403, "forbidden".into()), "{}", res.body);
    let res = t
        .send(with_project(Call::start("growth", "k"), "proj_a"))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.json()["id"].as_str().unwrap().to_owned();
    let res = t.send(with_project(Call::status(&id), "proj_b")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = t.send(with_project(Call::status(&id), PROJECT)).await;
    assert_eq!(code(&res), (403, "forbidden".into()), "{}", res.body);
    // A key for all projects serves any.
    let all = t.create_key(ORG, &[]).await;
    for project in ["proj_a", "proj_c", PROJECT] {
        let res = t
            .send(
                Call::status(&id)
                    .without("x-project-id")
                    .header("x-project-id", project)
                    .bearer(all.expose()),
            )
            .await;
        assert_eq!(res.status, 200, "{project}: {}", res.body);
    }
}

#[tokio::test]
async fn a_revoked_key_works_until_the_cache_window_ends_and_not_after() {
    let t = TestApp::new().await;
    assert_eq!(t.app.keys.ttl_secs(), 60, "the default window");
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    assert_eq!(status(&t, &id, &key).await.status, 200);
    t.revoke_key(&key).await;
    // A function that has not seen the key (a cold start, another instance) refuses it at once.
    let mut cold = t.app.clone();
    cold.keys = KeyCache::new(60);
    let req = Call::status(&id).bearer(key.expose()).build();
    let res = read(trials::api::handle_any(&cold, req).await);
    assert_eq!(code(&res), (401, "unauthorized".into()));
    // The warm one trusts its cache for the window...
    t.clock.advance(59);
    assert_eq!(status(&t, &id, &key).await.status, 200);
    t.clock.advance_millis(999);
    assert_eq!(status(&t, &id, &key).await.status, 200);
    // ...and no longer.
    t.clock.advance_millis(1);
    let res = status(&t, &id, &key).await;
    assert_eq!(code(&res), (401, "unauthorized".into()), "{}", res.body);
    t.clock.advance(DAY);
    assert_eq!(status(&t, &id, &key).await.status, 401);
}

#[tokio::test]
async fn the_cache_window_is_configuration() {
    let t = TestApp::with_config(|c| c.api_key_cache_secs = 5).await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    assert_eq!(status(&t, &id, &key).await.status, 200);
    t.revoke_key(&key).await;
    t.clock.advance(4);
    assert_eq!(status(&t, &id, &key).await.status, 200);
    t.clock.advance(1);
    assert_eq!(status(&t, &id, &key).await.status, 401);
}

#[tokio::test]
async fn status_reads_the_key_once_per_cache_window() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;

    // Cold: the key and the trial in one consistent BatchGetItem.
    t.dynamo.reset();
    assert_eq!(status(&t, &id, &key).await.status, 200);
    assert_eq!(
        t.dynamo.count("BatchGetItem"),
        1,
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());

    // Warm: the trial only.
    for _ in 0..3 {
        t.dynamo.reset();
        assert_eq!(status(&t, &id, &key).await.status, 200);
        assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
        assert_eq!(t.dynamo.count("GetItem"), 1);
    }

    // The window ends: the key is read again, still in the same one round trip.
    t.clock.advance(60);
    t.dynamo.reset();
    assert_eq!(status(&t, &id, &key).await.status, 200);
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.count("BatchGetItem"), 1);

    // A key that fails on a cold cache: the trial was read with it, and nothing of it shows.
    let wrong =
        trials::domain::api_key::ApiKey::parse(&format!("trk_{}_{}", key.key_id(), "0".repeat(64)))
            .expect("well-formed");
    t.dynamo.reset();
    let res = status(&t, &id, &wrong).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (401, "unauthorized")
    );
    assert!(!res.body.contains(&id), "{}", res.body);
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
}

#[tokio::test]
async fn refused_keys_cost_one_read_per_window_and_malformed_ones_none() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let revoked = t.create_key(ORG, &[]).await;
    t.revoke_key(&revoked).await;
    t.dynamo.reset();
    for _ in 0..5 {
        assert_eq!(status(&t, &id, &revoked).await.status, 401);
    }
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    t.dynamo.reset();
    for _ in 0..5 {
        let res = t.send(Call::status(&id).bearer("trk_not-a-key")).await;
        assert_eq!(res.status, 401);
    }
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());
}

#[tokio::test]
async fn a_store_outage_while_reading_the_key_is_503_and_not_remembered() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    t.dynamo.set_failing(true);
    let res = status(&t, &id, &key).await;
    assert_eq!(
        code(&res),
        (503, "service_unavailable".into()),
        "{}",
        res.body
    );
    assert_eq!(res.json()["error"]["retryable"], true);
    t.dynamo.set_failing(false);
    assert_eq!(status(&t, &id, &key).await.status, 200);
}

#[tokio::test]
async fn every_trial_route_refuses_before_reading_or_writing_anything() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let revoked = t.create_key(ORG, &[]).await;
    t.revoke_key(&revoked).await;
    // Each key verdict below is already cached, as on a warm function: what a refused
    // request costs is then nothing at all.
    assert_eq!(status(&t, &id, &revoked).await.status, 401);
    let other_org = t.api_key("org_other").await;
    let limited = t.create_key(ORG, &["proj_a"]).await;
    assert_eq!(status(&t, &id, &limited).await.status, 403);
    let routes = || {
        [
            Call::start("pro", "s1"),
            Call::status(&id),
            Call::convert(&id, "v1"),
            Call::cancel(&id, "c1"),
        ]
    };

    t.dynamo.reset();
    for (name, key, expected) in [
        ("no key", None, 401),
        ("revoked key", Some(&revoked), 401),
        ("another org's key", Some(&other_org), 403),
        ("a key for other projects", Some(&limited), 403),
    ] {
        for call in routes() {
            let call = match key {
                Some(key) => call.bearer(key.expose()),
                None => call.without_auth(),
            };
            let res = t.send(call).await;
            assert_eq!(res.status, expected, "{name}: {}", res.body);
            let code = if expected == 401 {
                "unauthorized"
            } else {
                "forbidden"
            };
            assert_eq!(res.error_code(), code, "{name}");
        }
    }
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());

    // The trial is as it was, and the refused idempotency keys were never taken.
    assert_eq!(t.send(Call::status(&id)).await.json()["status"], "ACTIVE");
    let res = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(!res.replayed());
}

#[tokio::test]
async fn the_stripe_webhook_is_not_asked_for_an_api_key() {
    const SECRET: &str = "whsec_auth_test";
    let t = TestApp::with_config(|c| c.webhook.secrets = vec![Secret::new(SECRET)]).await;
    let body = serde_json::json!({
        "id": "evt_auth_1",
        "object": "event",
        "type": "customer.created",
        "created": T0,
        "data": { "object": { "id": "cus_1", "object": "customer" } },
    })
    .to_string();
    // No key, no org, no project: what Stripe sends.
    let delivery = || {
        Call::post("/v1/webhooks/stripe")
            .without_auth()
            .without("x-org-id")
            .without("x-project-id")
            .raw_body(&body)
    };

    // Unsigned: refused for its signature, not for the missing key.
    let res = t.send(delivery()).await;
    assert_eq!(
        code(&res),
        (400, "invalid_signature".into()),
        "{}",
        res.body
    );
    let signed = signature(&body, SECRET, t.now());
    let res = t.send(delivery().header("stripe-signature", &signed)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json(),
        serde_json::json!({ "received": true, "event_id": "evt_auth_1", "outcome": "ignored" })
    );
    // A bearer token that authenticates nobody is not looked at either.
    let res = t
        .send(
            delivery()
                .header("stripe-signature", &signed)
                .bearer("trk_not-a-key"),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["outcome"], "ignored");
}

/// `key` with its key id and another secret: `last` changes the last digit only, otherwise
/// the whole secret is drawn afresh.
fn forged(key: &ApiKey, last: bool) -> ApiKey {
    let secret = if last {
        let s = &key.expose()[21..];
        let flipped = if s.ends_with('0') { "1" } else { "0" };
        format!("{}{flipped}", &s[..s.len() - 1])
    } else {
        trials::crypto::random_hex(32)
    };
    let forged = ApiKey::parse(&format!("trk_{}_{secret}", key.key_id())).unwrap();
    assert_eq!(forged.key_id(), key.key_id());
    assert_ne!(&forged, key);
    forged
}

#[tokio::test]
async fn a_known_key_id_with_a_wrong_secret_is_refused_on_a_cold_cache() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    // Never used yet: nothing about it is cached.
    let key = t.create_key(ORG, &[]).await;
    let missing = t.send(Call::status(&id).without_auth()).await;
    for last in [true, false, false] {
        let wrong = forged(&key, last);
        t.dynamo.reset();
        let res = status(&t, &id, &wrong).await;
        assert_eq!(code(&res), (401, "unauthorized".into()), "{}", res.body);
        assert_eq!(res.body, missing.body);
        // Refused after reading the key's record (it has our form and a live key id), in the
        // one consistent read status makes of the key and the trial; the trial is not shown.
        assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
        assert_eq!(t.dynamo.count("BatchGetItem"), 1);
        assert!(!res.body.contains(&id), "{}", res.body);
    }
    // The right secret still works: the refusals were remembered for the wrong ones only.
    assert_eq!(status(&t, &id, &key).await.status, 200);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_while_the_right_one_is_cached() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    assert_eq!(status(&t, &id, &key).await.status, 200);
    for last in [true, false] {
        let wrong = forged(&key, last);
        t.dynamo.reset();
        let res = status(&t, &id, &wrong).await;
        assert_eq!(code(&res), (401, "unauthorized".into()), "{}", res.body);
        // The cache knows the right key by its hash, not by its id: the wrong one is read and
        // compared.
        assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
        // ...and refused again from the cache.
        assert_eq!(status(&t, &id, &wrong).await.status, 401);
        assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    }
    // The right one, still warm: no read of the key.
    t.dynamo.reset();
    assert_eq!(status(&t, &id, &key).await.status, 200);
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    // After the window, both are read again, with the same verdicts.
    t.clock.advance(60);
    let wrong = forged(&key, true);
    assert_eq!(status(&t, &id, &wrong).await.status, 401);
    assert_eq!(status(&t, &id, &key).await.status, 200);
    assert_eq!(status(&t, &id, &forged(&key, false)).await.status, 401);
}

#[tokio::test]
async fn a_wrong_secret_can_do_nothing_on_any_route() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    let wrong = forged(&key, true);
    t.dynamo.reset();
    for call in [
        Call::start("pro", "s"),
        Call::status(&id),
        Call::convert(&id, "v"),
        Call::cancel(&id, "c"),
    ] {
        let res = t.send(call.bearer(wrong.expose())).await;
        assert_eq!(code(&res), (401, "unauthorized".into()), "{}", res.body);
    }
    // One read of the key's record, then the cached refusal; nothing written.
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert!(stripe.requests().is_empty());
    let res = t.send(Call::status(&id)).await;
    assert_eq!(res.json()["status"], "ACTIVE", "{}", res.body);
    // The idempotency keys the refused requests carried were never taken.
    let res = t.send(Call::cancel(&id, "c")).await;
    assert_eq!((res.status, res.replayed()), (200, false), "{}", res.body);
}

#[tokio::test]
async fn verify_accepts_the_key_and_no_other_secret_for_its_id() {
    let t = TestApp::new().await;
    let key = t.create_key(ORG, &["proj_a"]).await;
    let wrong = forged(&key, false);
    assert_eq!(t.app.auth().verify(&wrong).await.unwrap(), None);
    let info = t
        .app
        .auth()
        .verify(&key)
        .await
        .unwrap()
        .expect("the key itself is live");
    assert_eq!(info.key_id, key.key_id());
    assert_eq!(info.org.as_str(), ORG);
    assert_eq!(info.projects.to_string(), "proj_a");
    // Cached both ways: the right key stays verified, the wrong one refused.
    assert_eq!(t.app.keys.len(), (1, 1));
    assert_eq!(t.app.auth().verify(&wrong).await.unwrap(), None);
    assert_eq!(
        t.app.auth().verify(&forged(&key, true)).await.unwrap(),
        None
    );
    assert!(t.app.auth().verify(&key).await.unwrap().is_some());
}

// current_thread: the subscriber set as default for this thread sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn keys_and_their_hashes_never_reach_the_logs() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let key = t.create_key(ORG, &[]).await;
    let limited = t.create_key(ORG, &["proj_a"]).await;
    let revoked = t.create_key(ORG, &[]).await;
    t.revoke_key(&revoked).await;
    let unknown = ApiKey::generate();
    let keys = [&key, &limited, &revoked, &unknown];

    // The service's own log layer, at its most verbose.
    let (logs, guard) = capture();
    let mut statuses = Vec::new();
    for k in keys {
        statuses.push(status(&t, &id, k).await.status);
        statuses.push(status(&t, &id, k).await.status);
        let res = t
            .send(
                Call::start("pro", "again")
                    .org("org_other")
                    .bearer(k.expose()),
            )
            .await;
        statuses.push(res.status);
    }
    t.dynamo.set_failing(true);
    t.clock.advance(61);
    statuses.push(status(&t, &id, &key).await.status);
    t.dynamo.set_failing(false);
    // What the Lambda runtime logs at trace level for every invocation
    // (lambda_runtime::layers::api_response): the raw event, Authorization header included.
    // Only this service's own code may log at trace.
    let raw_event = format!(
        r#"{{"headers":{{"authorization":"Bearer {}","x-org-id":"{ORG}"}}}}"#,
        key.expose()
    );
    tracing::trace!(
        target: "lambda_runtime::layers::api_response",
        body = raw_event.as_str(),
        "raw JSON event received from Lambda"
    );
    drop(guard);

    assert_eq!(
        statuses,
        [200, 200, 403, 403, 403, 403, 401, 401, 401, 401, 401, 401, 503]
    );
    let text = logs.text();
    let request_lines = text
        .lines()
        .filter(|l| l.contains(r#""message":"request""#) && l.contains(r#""route":"#))
        .count();
    assert_eq!(request_lines, statuses.len(), "{text}");
    assert!(text.contains(r#""status":401"#), "{text}");
    assert!(text.contains("store failure"), "{text}");
    // The embedded DynamoDB answering these requests runs on this thread and logs through the
    // same layer (its debug lines are here; its trace lines, with whole items and so the key
    // hashes, must not be).
    assert!(text.contains(r#""operation":"GetItem""#), "{text}");
    assert!(!text.contains("raw JSON event"), "{text}");
    for k in keys {
        let secret = &k.expose()[21..];
        assert!(!text.contains(secret), "a key reached the logs: {text}");
        assert!(
            !text.contains(&k.hash()),
            "a key hash reached the logs: {text}"
        );
    }
}

/// `trialctl keys revoke`: the key record decides and is written first; its listing entry
/// follows. A revocation whose listing write fails is an error (the operator is told, and runs
/// it again), and running it again repairs the listing, keeping the first revocation's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_listing_write_fails_is_an_error_and_running_it_again_repairs_it() {
    let t = TestApp::new().await;
    let org = OrgId::parse(ORG).unwrap();
    let store = t.app.store.clone();
    let (key, _) = issue::create(&store, org.clone(), Projects::All, T0)
        .await
        .unwrap();
    // The key record's update goes through; the listing's, right after it, meets an outage.
    let held = t.dynamo.hold_next("UpdateItem");
    let revoke = {
        let (store, id) = (store.clone(), key.key_id().to_owned());
        tokio::spawn(async move { store.revoke_api_key(&id, T0 + 10).await })
    };
    held.reached().await;
    t.dynamo.set_failing(true);
    held.release();
    let first = revoke.await.unwrap();
    assert!(
        matches!(first, Err(ref e) if e.retryable()),
        "a listing write that failed is reported, not hidden: {first:?}"
    );
    t.dynamo.set_failing(false);
    // The record decided: the key is revoked already; only the listing lags.
    let record = store.get_api_key(key.key_id()).await.unwrap().unwrap();
    assert_eq!(record.info.revoked_at, Some(T0 + 10));
    let listed = |keys: Vec<trials::domain::api_key::KeyInfo>| {
        keys.into_iter()
            .find(|k| k.key_id == key.key_id())
            .expect("listed")
            .revoked_at
    };
    assert_eq!(listed(store.list_api_keys(&org).await.unwrap()), None);

    let again = store.revoke_api_key(key.key_id(), T0 + 20).await.unwrap();
    assert_eq!(again.map(|k| k.revoked_at), Some(Some(T0 + 10)));
    assert_eq!(
        listed(store.list_api_keys(&org).await.unwrap()),
        Some(T0 + 10)
    );
}

/// A listing entry already gone (deleted by hand) does not stop a revocation: the key record,
/// which requests read, is what must be revoked.
#[tokio::test]
async fn a_key_without_a_listing_entry_is_still_revoked() {
    let t = TestApp::new().await;
    let org = OrgId::parse(ORG).unwrap();
    let store = &t.app.store;
    let (key, _) = issue::create(store, org.clone(), Projects::All, T0)
        .await
        .unwrap();
    store
        .client()
        .delete_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S(schema::org_pk(&org)))
        .key(
            "sk",
            AttributeValue::S(schema::api_key_listing_sk(key.key_id())),
        )
        .send()
        .await
        .unwrap();
    let revoked = store.revoke_api_key(key.key_id(), T0 + 10).await.unwrap();
    assert_eq!(revoked.map(|k| k.revoked_at), Some(Some(T0 + 10)));
    let res = status(&t, "trial_000000000000000000000000", &key).await;
    assert_eq!(code(&res), (401, "unauthorized".to_owned()));
    // An unknown key is no revocation at all.
    assert_eq!(
        store.revoke_api_key("0123456789abcdef", T0).await.unwrap(),
        None
    );
}
