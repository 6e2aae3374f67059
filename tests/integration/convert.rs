use trials::api::idempotency::{fingerprint, Idempotency};
use trials::domain::{OrgId, TrialId};
use trials::store::idempotency::{Claim, IdemScope};
use trials_local::stripe_standin::Fault;
use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{writes, Call, TestApp, DAY, T0};

async fn converted(t: &TestApp, id: &str) {
    let trial = writes::stored(t, id).await.expect("trial");
    assert!(writes::convert(t, &trial, t.now()).await);
}

#[tokio::test]
async fn convert_returns_a_checkout_url_and_sends_stripe_what_it_needs() {
    let (t, stripe) = with_stripe(|c| {
        c.catalog = trials::domain::catalog::Catalog::load(|k| {
            (k == "STRIPE_PRICE_GROWTH").then(|| "price_growth_monthly".to_owned())
        })
        .expect("catalog")
    })
    .await;
    let id = t.start_trial(ORG, "growth").await;
    let res = t.send(Call::convert(&id, "convert-1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["trial_id"], id.as_str());
    assert_eq!(body["plan"], "growth");
    // The stand-in's checkout page, on loopback.
    assert!(body["checkout_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/checkout/pay/cs_test_", stripe.base_url())));
    assert_eq!(body.as_object().unwrap().len(), 3);

    let sent = stripe.requests();
    assert_eq!(sent.len(), 1);
    let form = &sent[0];
    assert_eq!(form.param("mode"), Some("subscription"));
    assert_eq!(
        form.param("line_items[0][price]"),
        Some("price_growth_monthly")
    );
    assert_eq!(form.param("line_items[0][quantity]"), Some("1"));
    assert_eq!(form.param("client_reference_id"), Some(id.as_str()));
    assert_eq!(form.param("metadata[trial_id]"), Some(id.as_str()));
    assert_eq!(form.param("metadata[org_id]"), Some(ORG));
    assert_eq!(form.param("metadata[plan]"), Some("growth"));
    assert_eq!(
        form.param("subscription_data[metadata][trial_id]"),
        Some(id.as_str())
    );
    assert_eq!(form.param("subscription_data[metadata][org_id]"), Some(ORG));
    assert_eq!(
        form.param("subscription_data[metadata][plan]"),
        Some("growth")
    );
    assert!(form.param("success_url").is_some() && form.param("cancel_url").is_some());
    let ours = Idempotency {
        scope: IdemScope {
            org: OrgId::parse(ORG).unwrap(),
            key: "convert-1".into(),
        },
        fingerprint: String::new(),
    };
    let expected =
        trials::api::convert::stripe_idempotency_key(&ours, &TrialId::parse(&id).unwrap());
    assert_eq!(form.idempotency_key.as_deref(), Some(expected.as_str()));
    // Our key reaches Stripe only hashed: the prefix, then a SHA-256 in hex.
    let digest = expected.strip_prefix("trials-convert-").unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{expected}");

    // The session is stored on the trial.
    let stored = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.checkout.unwrap().url,
        body["checkout_url"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_retry_replays_and_a_new_key_reuses_the_open_session() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "pro").await;
    let first = t.send(Call::convert(&id, "k1")).await;
    let replay = t.send(Call::convert(&id, "k1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.body, first.body);
    let reuse = t.send(Call::convert(&id, "k2")).await;
    assert_eq!(reuse.status, 200);
    assert!(!reuse.replayed());
    assert_eq!(reuse.json()["checkout_url"], first.json()["checkout_url"]);
    assert_eq!(
        stripe.requests().len(),
        1,
        "the open session is reused without calling Stripe"
    );

    // Stripe sessions live 24 h: after that a new one is created.
    t.clock.advance(DAY);
    let fresh = t.send(Call::convert(&id, "k3")).await;
    assert_eq!(fresh.status, 200);
    assert_ne!(fresh.json()["checkout_url"], first.json()["checkout_url"]);
    assert_eq!(stripe.sessions_created(), 2);
}

#[tokio::test]
async fn convert_within_grace_succeeds_and_after_grace_is_410() {
    let (t, _stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "starter").await;
    t.clock.set(T0 + 10 * DAY - 1);
    assert_eq!(t.send(Call::convert(&id, "in-grace")).await.status, 200);

    let (t, _stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "starter").await;
    t.clock.set(T0 + 10 * DAY);
    let res = t.send(Call::convert(&id, "late")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired")
    );
}

#[tokio::test]
async fn converted_canceled_unknown_and_foreign_trials_are_refused() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    converted(&t, &id).await;
    let res = t.send(Call::convert(&id, "a")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_converted")
    );
    // Deterministic refusals are stored and replayed.
    assert!(t.send(Call::convert(&id, "a")).await.replayed());

    let other = t.start_trial("org_b", "growth").await;
    assert_eq!(
        t.send(Call::cancel(&other, "c").org("org_b")).await.status,
        200
    );
    let res = t.send(Call::convert(&other, "d").org("org_b")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_canceled")
    );

    let res = t.send(Call::convert(&other, "e")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    let res = t
        .send(Call::convert("trial_0123456789abcdef01234567", "f"))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    let res = t
        .send(Call::post(&format!("/v1/trials/{id}/convert")))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "missing_idempotency_key")
    );
    assert!(stripe.requests().is_empty());
}

#[tokio::test]
async fn a_stripe_failure_leaves_the_trial_untouched_and_the_retry_succeeds() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    stripe.fail_next(Fault::ServerError);
    let failed = t.send(Call::convert(&id, "k")).await;
    assert_eq!(
        (failed.status, failed.error_code().as_str()),
        (502, "payment_provider_error")
    );
    assert_eq!(failed.json()["error"]["retryable"], true);
    assert!(!failed
        .body
        .contains(trials_local::stripe_standin::LOCAL_SECRET_KEY));
    let trial = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(trial.checkout.is_none());
    assert_eq!(t.send(Call::status(&id)).await.json()["status"], "ACTIVE");

    let retried = t.send(Call::convert(&id, "k")).await;
    assert_eq!(
        (retried.status, retried.replayed()),
        (200, false),
        "{}",
        retried.body
    );
}

#[tokio::test]
async fn a_stripe_timeout_releases_the_key_and_the_retry_gets_stripes_same_session() {
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 200).await;
    let id = t.start_trial(ORG, "growth").await;
    // Stripe creates the session but answers too late.
    stripe.fail_next(Fault::Stall(std::time::Duration::from_millis(800)));
    let failed = t.send(Call::convert(&id, "k")).await;
    assert_eq!(
        (failed.status, failed.error_code().as_str()),
        (502, "payment_provider_error")
    );
    let trial = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(trial.checkout.is_none());

    let retried = t.send(Call::convert(&id, "k")).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(
        stripe.sessions_created(),
        1,
        "the same Stripe idempotency key: no second session"
    );
    let sent = stripe.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].idempotency_key, sent[1].idempotency_key);
}

#[tokio::test]
async fn concurrent_converts_with_one_key_create_one_session() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move { t.send(Call::convert(&id, "same")).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let res = task.await.unwrap();
        match res.status {
            200 => ok += 1,
            409 => assert_eq!(res.error_code(), "idempotency_key_in_use"),
            other => panic!("{other}: {}", res.body),
        }
    }
    assert!(ok >= 1);
    assert_eq!(stripe.sessions_created(), 1);
}

#[tokio::test]
async fn a_stale_convert_lease_blocks_until_the_deadline() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let path = format!("/v1/trials/{id}/convert");
    let scope = IdemScope {
        org: OrgId::parse(ORG).unwrap(),
        key: "crashed".into(),
    };
    let now_ms = t.now() * 1000;
    let claim = t
        .app
        .store
        .idempotency_acquire(
            &scope,
            &fingerprint("POST", &path, b""),
            "dead",
            now_ms + 10_000,
            now_ms,
            DAY,
        )
        .await
        .unwrap();
    assert_eq!(claim, Claim::Taken);
    let blocked = t.send(Call::convert(&id, "crashed")).await;
    assert_eq!(
        (blocked.status, blocked.error_code().as_str()),
        (409, "idempotency_key_in_use")
    );
    t.clock.advance(11);
    // This invocation has a deadline of its own: its lease ends there.
    let retried = t
        .send(Call::convert(&id, "crashed").deadline_ms((t.now() + 5) * 1000))
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(stripe.sessions_created(), 1);
}

#[tokio::test]
async fn convert_is_at_most_three_dynamodb_round_trips_and_one_stripe_call() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    t.dynamo.reset();
    assert_eq!(t.send(Call::convert(&id, "k")).await.status, 200);
    // The lease, the read of the trial, one transaction (session, record, event).
    assert_eq!(t.dynamo.total(), 3, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.count("TransactWriteItems"), 1);
    assert_eq!(stripe.requests().len(), 1);
    // Reusing the open session: still three, and no Stripe call.
    t.dynamo.reset();
    assert_eq!(t.send(Call::convert(&id, "k2")).await.status, 200);
    assert_eq!(t.dynamo.total(), 3, "{:?}", t.dynamo.by_operation());
    assert_eq!(stripe.requests().len(), 1);
}

#[tokio::test]
async fn an_expired_trial_converts_within_grace_even_after_the_expire_job_wrote_it() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "pro").await;
    t.clock.set(T0 + 7 * DAY + 60);
    trials::jobs::run(&t.app, trials::jobs::Job::Expire, None).await;
    let stored = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "EXPIRED");
    let res = t.send(Call::convert(&id, "late-but-in-grace")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["plan"], "pro");
    assert_eq!(stripe.sessions_created(), 1);
}

#[tokio::test]
async fn a_purged_trial_is_410_and_stripe_is_not_called() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + 10 * DAY + 1);
    trials::jobs::run(&t.app, trials::jobs::Job::Expire, None).await;
    trials::jobs::run(&t.app, trials::jobs::Job::Purge, None).await;
    assert!(t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .is_none());
    let res = t.send(Call::convert(&id, "k")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired")
    );
    assert!(t.send(Call::convert(&id, "k")).await.replayed());
    assert!(stripe.requests().is_empty());
}

#[tokio::test]
async fn a_stripe_refusal_is_a_retryable_502_that_is_not_stored_and_shows_no_secret() {
    let secret = "sk_live_not_for_the_stand_in_4242";
    let (t, stripe) = with_stripe(|c| {
        c.stripe.secret_key = Some(trials::config::Secret::new(secret));
    })
    .await;
    let id = t.start_trial(ORG, "growth").await;
    for _ in 0..2 {
        // Stripe answers 401; the key is released, so the same key runs again (no replay).
        let res = t.send(Call::convert(&id, "k")).await;
        assert_eq!(
            (res.status, res.error_code().as_str(), res.replayed()),
            (502, "payment_provider_error", false)
        );
        assert_eq!(res.json()["error"]["retryable"], true);
        assert!(res.header("retry-after").is_some());
        assert!(!res.body.contains(secret) && !res.body.contains("4242"));
    }
    assert_eq!(stripe.requests().len(), 2);
    assert_eq!(stripe.sessions_created(), 0);
    let trial = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(trial.checkout.is_none());
}

#[tokio::test]
async fn the_stripe_call_gives_up_before_the_invocation_deadline_and_releases_the_key() {
    // A generous Stripe timeout, but the invocation has 1.3 s left: the call gets 0.3 s.
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 10_000).await;
    let id = t.start_trial(ORG, "growth").await;
    stripe.fail_next(Fault::Stall(std::time::Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let res = t
        .send(Call::convert(&id, "k").deadline_ms(t.now() * 1000 + 1_300))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (502, "payment_provider_error")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    // Released at once: the retry does not wait for the lease to run out, and gets the
    // session Stripe made for the stalled call.
    let retried = t.send(Call::convert(&id, "k")).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(stripe.sessions_created(), 1);
}

#[tokio::test]
async fn concurrent_converts_with_different_keys_answer_with_one_session() {
    let (t, _stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move { t.send(Call::convert(&id, &format!("key-{i}"))).await })
        })
        .collect();
    let mut urls = std::collections::BTreeSet::new();
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        urls.insert(res.json()["checkout_url"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        urls.len(),
        1,
        "every caller gets the trial's one session: {urls:?}"
    );
    let stored = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(urls.into_iter().next(), stored.checkout.map(|c| c.url));
}
