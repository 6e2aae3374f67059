use serde_json::json;
use trials::api::idempotency::{fingerprint, Idempotency};
use trials::domain::OrgId;
use trials::store::idempotency::IdemScope;
use trials_tests::requests::{ORG, PROJECT};
use trials_tests::{Call, TestApp, DAY};

#[tokio::test]
async fn empty_or_overlong_keys_are_invalid() {
    let t = TestApp::new().await;
    for key in ["", "\"\"", &"k".repeat(256)] {
        let res = t.send(Call::start("growth", key)).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_idempotency_key"),
            "{key:?}"
        );
    }
    assert_eq!(
        t.send(Call::start("growth", &"k".repeat(255))).await.status,
        201
    );
}

/// A key that is there but not visible ASCII (`clé` in Latin-1, bytes HTTP allows) is an
/// invalid key, not a missing one: the client did send one.
#[tokio::test]
async fn a_key_of_other_bytes_than_visible_ascii_is_invalid_not_missing() {
    let t = TestApp::new().await;
    let start = || Call::post("/v1/trials/start").json(&json!({ "plan": "growth" }));
    let res = t
        .send(start().raw_header("idempotency-key", b"cl\xe9"))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "invalid_idempotency_key"),
        "{}",
        res.body
    );
    let res = t.send(start()).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "missing_idempotency_key"),
        "{}",
        res.body
    );
    assert_eq!(t.send(Call::start("growth", "cle")).await.status, 201);
}

#[tokio::test]
async fn a_retry_gets_the_stored_response_byte_for_byte() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "retry-1")).await;
    assert_eq!(first.status, 201);
    assert!(!first.replayed());
    t.clock.advance(5);
    // The same request, quoted as a Structured Field string and with other JSON formatting.
    let again = t
        .send(
            Call::post("/v1/trials/start")
                .idempotency_key("\"retry-1\"")
                .raw_body("{ \"plan\" : \"growth\" }"),
        )
        .await;
    assert_eq!(again.status, 201);
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("content-type"), first.header("content-type"));
    // Still one trial: a different key now meets the org guard.
    assert_eq!(
        t.send(Call::start("growth", "retry-2")).await.error_code(),
        "trial_already_exists"
    );
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422() {
    let t = TestApp::new().await;
    assert_eq!(t.send(Call::start("growth", "k")).await.status, 201);
    let res = t.send(Call::start("pro", "k")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
}

#[tokio::test]
async fn a_deterministic_refusal_is_stored_and_replayed() {
    let t = TestApp::new().await;
    t.send(Call::start("growth", "first")).await;
    let refused = t.send(Call::start("growth", "second")).await;
    assert_eq!(refused.status, 409);
    assert!(!refused.replayed());
    let again = t.send(Call::start("growth", "second")).await;
    assert_eq!(again.status, 409);
    assert!(again.replayed());
    assert_eq!(again.body, refused.body);
}

#[tokio::test]
async fn keys_are_scoped_per_org() {
    let t = TestApp::new().await;
    let a = t.send(Call::start("growth", "shared-key")).await;
    let b = t
        .send(Call::start("growth", "shared-key").org("org_two"))
        .await;
    assert_eq!((a.status, b.status), (201, 201));
    assert!(!b.replayed());
    assert_ne!(a.json()["id"], b.json()["id"]);
    assert_eq!(b.json()["org_id"], "org_two");
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_execute_once() {
    let t = TestApp::new().await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.send(Call::start("growth", "same-key")).await })
        })
        .collect();
    let mut executed = Vec::new();
    let mut replayed = Vec::new();
    for task in tasks {
        let res = task.await.unwrap();
        match (res.status, res.replayed()) {
            (201, false) => executed.push(res),
            (201, true) => replayed.push(res),
            (409, false) => assert_eq!(res.error_code(), "idempotency_key_in_use"),
            other => panic!("unexpected {other:?}: {}", res.body),
        }
    }
    assert_eq!(executed.len(), 1);
    for r in &replayed {
        assert_eq!(r.body, executed[0].body);
    }
}

#[tokio::test]
async fn a_stale_lease_blocks_until_its_deadline_then_the_retry_runs() {
    let t = TestApp::new().await;
    let body = json!({"plan": "growth"});
    let fp = fingerprint(
        PROJECT,
        "POST",
        "/v1/trials/start",
        body.to_string().as_bytes(),
    );
    let scope = IdemScope {
        org: OrgId::parse("org_abc123").unwrap(),
        key: "crashy".into(),
    };
    let now_ms = t.now() * 1000;
    // A first attempt took the key and died with its invocation, 30 s from now.
    let deadline = now_ms + 30_000;
    let claim = t
        .app
        .store
        .idempotency_acquire(&scope, &fp, "dead-invocation", deadline, now_ms, 86_400)
        .await
        .unwrap();
    assert_eq!(claim, trials::store::idempotency::Claim::Taken);

    t.clock.advance(29);
    let blocked = t.send(Call::start("growth", "crashy")).await;
    assert_eq!(
        (blocked.status, blocked.error_code().as_str()),
        (409, "idempotency_key_in_use")
    );
    assert_eq!(blocked.json()["error"]["retryable"], true);
    assert!(blocked.header("retry-after").is_some());

    t.clock.advance(2);
    let retried = t.send(Call::start("growth", "crashy")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(!retried.replayed());
    // And it is now completed: the next retry replays.
    assert!(t.send(Call::start("growth", "crashy")).await.replayed());
}

/// A dead attempt's lease is taken over only by the same request; any other request with the
/// key waits for the record's TTL, after which the key is free for it as well.
#[tokio::test]
async fn a_dead_lease_frees_the_key_for_another_request_after_the_ttl() {
    let t = TestApp::new().await;
    let fp = fingerprint(
        PROJECT,
        "POST",
        "/v1/trials/start",
        json!({"plan": "growth"}).to_string().as_bytes(),
    );
    let scope = IdemScope {
        org: OrgId::parse("org_abc123").unwrap(),
        key: "crashy".into(),
    };
    let now_ms = t.now() * 1000;
    let claim = t
        .app
        .store
        .idempotency_acquire(&scope, &fp, "dead-invocation", now_ms + 30_000, now_ms, DAY)
        .await
        .unwrap();
    assert_eq!(claim, trials::store::idempotency::Claim::Taken);
    t.clock.advance(DAY - 1);
    let other = t.send(Call::start("pro", "crashy")).await;
    assert_eq!(
        other.error_code(),
        "idempotency_key_reused",
        "{}",
        other.body
    );
    t.clock.advance(1);
    let other = t.send(Call::start("pro", "crashy")).await;
    assert_eq!(
        (other.status, other.replayed()),
        (201, false),
        "{}",
        other.body
    );
}

#[tokio::test]
async fn records_expire_after_their_ttl_even_before_dynamodb_sweeps_them() {
    let t = TestApp::with_config(|c| c.idempotency_ttl_secs = DAY).await;
    assert_eq!(t.send(Call::start("growth", "k")).await.status, 201);
    t.clock.advance(DAY - 1);
    assert_eq!(
        t.send(Call::start("pro", "k")).await.error_code(),
        "idempotency_key_reused"
    );
    t.clock.advance(1);
    // The record is still in the table, but expired: the key runs afresh.
    let res = t.send(Call::start("pro", "k")).await;
    assert_eq!((res.status, res.replayed()), (409, false));
    assert_eq!(res.error_code(), "trial_already_exists");
}

#[tokio::test]
async fn a_store_failure_is_5xx_and_not_remembered() {
    let t = TestApp::new().await;
    t.dynamo.set_failing(true);
    let failed = t.send(Call::start("growth", "k")).await;
    assert_eq!(
        (failed.status, failed.error_code().as_str()),
        (503, "service_unavailable")
    );
    assert_eq!(failed.json()["error"]["retryable"], true);
    t.dynamo.set_failing(false);
    let retried = t.send(Call::start("growth", "k")).await;
    assert_eq!((retried.status, retried.replayed()), (201, false));
}

#[tokio::test]
async fn start_is_a_guard_read_and_one_transaction() {
    let t = TestApp::new().await;
    t.dynamo.reset();
    assert_eq!(t.send(Call::start("growth", "k")).await.status, 201);
    // The org guard read (issue 25 item 6), then trial, org guard, idempotency record and
    // event: one transaction, nothing after it.
    assert_eq!(
        (
            t.dynamo.count("GetItem"),
            t.dynamo.count("TransactWriteItems")
        ),
        (1, 1),
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
}

/// Issue 25 item 6: a start refused because the org had its trial (each with a new key) costs
/// one read and the stored 409, and no transaction: nothing touches the guard but a read, and
/// nothing is shared with other orgs.
#[tokio::test]
async fn a_refused_start_is_one_read_and_the_stored_409() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "k1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    for key in ["k2", "k3"] {
        t.dynamo.reset();
        let refused = t.send(Call::start("growth", key)).await;
        assert_eq!(
            (refused.status, refused.error_code().as_str()),
            (409, "trial_already_exists")
        );
        assert!(refused.body.contains(&id), "{}", refused.body);
        assert_eq!(
            t.dynamo.by_operation(),
            [("GetItem".to_owned(), 1), ("PutItem".to_owned(), 1)].into(),
        );
    }
    // The refusal is stored: the same key answers the same 409 (a replay), and the first
    // key still answers its 201.
    let again = t.send(Call::start("growth", "k2")).await;
    assert_eq!((again.status, again.replayed()), (409, true));
    let replayed = t.send(Call::start("growth", "k1")).await;
    assert_eq!((replayed.status, replayed.replayed()), (201, true));
    assert_eq!(replayed.json()["id"], id.as_str());
}

/// Releasing a lease (after a 5xx, so the retry runs at once) leaves alone a lease someone
/// else holds now, and reports a store failure, which the handler logs (the lease then ends
/// at its deadline).
#[tokio::test]
async fn a_release_ends_only_its_own_lease_and_reports_a_store_failure() {
    let t = TestApp::new().await;
    let store = &t.app.store;
    let fp = fingerprint(PROJECT, "POST", "/v1/trials/start", b"{}");
    let scope = IdemScope {
        org: OrgId::parse("org_abc123").unwrap(),
        key: "k".into(),
    };
    let now_ms = t.now() * 1000;
    let taken = store
        .idempotency_acquire(&scope, &fp, "mine", now_ms + 30_000, now_ms, DAY)
        .await
        .unwrap();
    assert_eq!(taken, trials::store::idempotency::Claim::Taken);
    // Another token's release is no error and ends nothing.
    store.idempotency_release(&scope, "not-mine").await.unwrap();
    let held = store.idempotency_get(&scope).await.unwrap();
    assert!(held.is_some(), "the lease is still there");
    t.dynamo.set_failing(true);
    let failed = store.idempotency_release(&scope, "mine").await;
    assert!(matches!(failed, Err(ref e) if e.retryable()), "{failed:?}");
    t.dynamo.set_failing(false);
    store.idempotency_release(&scope, "mine").await.unwrap();
    assert!(store.idempotency_get(&scope).await.unwrap().is_none());
}

/// A conflict is answered from the item DynamoDB returns with the failed condition; when an
/// answer comes without it, the record is read back and the answer is the same. A record gone
/// meanwhile (expired and swept) is a retryable 503.
#[tokio::test]
async fn a_conflict_answered_without_the_old_item_reads_the_record_back() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "k")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let idem = |key: &str, fingerprint: &str| Idempotency {
        scope: IdemScope {
            org: OrgId::parse(ORG).unwrap(),
            key: key.into(),
        },
        fingerprint: fingerprint.into(),
        actor: String::new(),
    };
    let reused = idem("k", "another request")
        .answer_conflict(&t.app, None)
        .await
        .unwrap();
    let reused = trials_tests::requests::read(reused.into_response());
    assert_eq!(
        (reused.status, reused.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
    let gone = idem("never-used", "x").answer_conflict(&t.app, None).await;
    assert_eq!(gone.err().map(|e| e.status()), Some(503));
}
