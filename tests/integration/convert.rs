use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use trials::api::convert::{TRIAL_END_MARGIN_SECS, TRIAL_END_MIN_LEAD_SECS};
use trials::api::idempotency::{fingerprint, Idempotency};
use trials::domain::time::rfc3339;
use trials::domain::trial::Checkout;
use trials::domain::{OrgId, TrialId, TrialStatus};
use trials::jobs::Job;
use trials::store::idempotency::{Claim, IdemScope};
use trials::store::Slot;
use trials_local::stripe_standin::{Fault, Held, Options, PayMethod, StripeStandIn};
use trials_tests::requests::{ORG, PROJECT};
use trials_tests::stripe::{with_stripe, with_stripe_options};
use trials_tests::time::Frozen;
use trials_tests::{writes, Call, TestApp, TestResponse, DAY, T0};

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
    // Converting early keeps the free days: the first charge is at the trial's end.
    assert_eq!(body["billing_starts"], "trial_end");
    assert_eq!(body["first_charge_at"], "2026-04-13T10:00:00Z");
    assert_eq!(body["checkout_expires_at"], "2026-04-07T10:00:00Z");
    assert_eq!(body["payment_pending"], false);
    assert_eq!(body.as_object().unwrap().len(), 7);

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
    let expires_at = (T0 + 7 * DAY).to_string();
    assert_eq!(
        form.param("subscription_data[trial_end]"),
        Some(expires_at.as_str())
    );
    assert!(form.param("success_url").is_some() && form.param("cancel_url").is_some());
    let ours = Idempotency {
        scope: IdemScope {
            org: OrgId::parse(ORG).unwrap(),
            key: "convert-1".into(),
        },
        fingerprint: String::new(),
        actor: String::new(),
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
    assert_eq!(
        (first.status, first.replayed()),
        (200, false),
        "{}",
        first.body
    );
    let replay = t.send(Call::convert(&id, "k1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.status, 200);
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

#[tokio::test(start_paused = true)]
async fn a_stripe_timeout_releases_the_key_and_the_retry_gets_stripes_same_session() {
    let mut frozen = Frozen::new();
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 200).await;
    let id = t.start_trial(ORG, "growth").await;
    // Stripe creates the session but answers only after our timeout (here: never).
    let mut held = stripe.hold_next();
    let first = tokio::spawn({
        let (t, id) = (t.clone(), id.clone());
        async move { t.send(Call::convert(&id, "k")).await }
    });
    frozen
        .finish("the first convert reaching Stripe", held.handled())
        .await;
    assert_eq!(stripe.sessions_created(), 1);
    tokio::time::advance(Duration::from_millis(200)).await;
    let failed = frozen
        .finish("the convert after its 200 ms Stripe timeout", first)
        .await
        .unwrap();
    assert_eq!(
        (failed.status, failed.error_code().as_str()),
        (502, "payment_provider_error"),
        "{}",
        failed.body
    );
    assert_eq!(failed.json()["error"]["retryable"], true);
    let trial = t
        .app
        .store
        .get_trial(&TrialId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(trial.checkout.is_none());

    // The key was released: the retry runs (no 409, no replay of the 502) and Stripe answers it
    // with the session it made for the call that timed out.
    let retried = frozen
        .finish("the retry", t.send(Call::convert(&id, "k")))
        .await;
    assert_eq!(
        (retried.status, retried.replayed()),
        (200, false),
        "{}",
        retried.body
    );
    assert_eq!(
        stripe.sessions_created(),
        1,
        "the same Stripe idempotency key: no second session"
    );
    let sent = stripe.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].idempotency_key, sent[1].idempotency_key);
    drop(held);
}

/// Waits until the Stripe call `held` holds has been handled, collecting the converts that
/// answer meanwhile; fails if all of them answer without one reaching Stripe.
async fn until_handled(held: &mut Held, tasks: &mut JoinSet<TestResponse>) -> Vec<TestResponse> {
    let mut answered = Vec::new();
    loop {
        tokio::select! {
            _ = held.handled() => return answered,
            next = tasks.join_next() => match next {
                Some(res) => answered.push(res.unwrap()),
                None => panic!("no convert reached Stripe: {answered:?}"),
            },
        }
    }
}

#[tokio::test]
async fn concurrent_converts_with_one_key_create_one_session() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    // The convert that reaches Stripe first is held there, with the key's lease, until every
    // other one has answered: any other that got the lease would call Stripe too.
    let mut held = stripe.hold_next();
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let (t, id) = (t.clone(), id.clone());
        tasks.spawn(async move { t.send(Call::convert(&id, "same")).await });
    }
    let mut others = until_handled(&mut held, &mut tasks).await;
    while others.len() < 9 {
        others.push(tasks.join_next().await.unwrap().unwrap());
    }
    for res in &others {
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (409, "idempotency_key_in_use"),
            "{}",
            res.body
        );
    }
    held.release();
    let winner = tasks.join_next().await.unwrap().unwrap();
    assert_eq!(
        (winner.status, winner.replayed()),
        (200, false),
        "{}",
        winner.body
    );
    assert!(tasks.join_next().await.is_none());
    // Stripe was called once: the calls it received, not the sessions it deduplicated.
    assert_eq!(stripe.requests().len(), 1, "{:?}", stripe.requests());
    assert_eq!(stripe.sessions_created(), 1);
    let replay = t.send(Call::convert(&id, "same")).await;
    assert!(replay.replayed(), "{}", replay.body);
    assert_eq!(replay.body, winner.body);
    assert_eq!(stripe.requests().len(), 1);
}

#[tokio::test]
async fn the_same_key_while_the_first_request_holds_its_lease_is_409_and_not_stored() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let mut held = stripe.hold_next();
    let mut first = tokio::spawn({
        let (t, id) = (t.clone(), id.clone());
        async move { t.send(Call::convert(&id, "k")).await }
    });
    tokio::select! {
        _ = held.handled() => {}
        res = &mut first => panic!("answered without reaching Stripe: {}", res.unwrap().body),
    }

    // The first request is inside Stripe, holding the key.
    let second = t.send(Call::convert(&id, "k")).await;
    assert_eq!(
        (second.status, second.error_code().as_str()),
        (409, "idempotency_key_in_use"),
        "{}",
        second.body
    );
    assert_eq!(second.json()["error"]["retryable"], true);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(!second.replayed());
    // The key with another request is refused as reused, in flight or not.
    let other = t
        .send(Call::convert(&id, "k").json(&serde_json::json!({ "billing_starts": "now" })))
        .await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        other.body
    );
    assert_eq!(
        stripe.requests().len(),
        1,
        "the refused requests never reach Stripe"
    );

    held.release();
    let first = first.await.unwrap();
    assert_eq!(
        (first.status, first.replayed()),
        (200, false),
        "{}",
        first.body
    );
    // The 409 was not stored: the key now replays the first request's answer.
    let again = t.send(Call::convert(&id, "k")).await;
    assert!(again.replayed(), "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(stripe.requests().len(), 1);
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
            &fingerprint(PROJECT, "POST", &path, b""),
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

#[tokio::test(start_paused = true)]
async fn the_stripe_call_gives_up_before_the_invocation_deadline_and_releases_the_key() {
    let mut frozen = Frozen::new();
    // A generous Stripe timeout, but the invocation has 1.3 s left: the call gets 0.3 s (the
    // rest is kept for our writes).
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 10_000).await;
    let id = t.start_trial(ORG, "growth").await;
    let mut held = stripe.hold_next();
    let started = tokio::time::Instant::now();
    let first = tokio::spawn({
        let (t, id) = (t.clone(), id.clone());
        let deadline = t.now() * 1000 + 1_300;
        async move { t.send(Call::convert(&id, "k").deadline_ms(deadline)).await }
    });
    frozen
        .finish("the convert reaching Stripe", held.handled())
        .await;
    tokio::time::advance(Duration::from_millis(300)).await;
    // With the 10 s timeout as the limit, this would still be waiting.
    let res = frozen
        .finish("the convert 0.3 s into its Stripe call", first)
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (502, "payment_provider_error"),
        "{}",
        res.body
    );
    // Paused tokio time: exactly what the test advanced.
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    // Released at once: the retry does not wait for the lease to run out, and gets the
    // session Stripe made for the stalled call.
    let retried = frozen
        .finish("the retry", t.send(Call::convert(&id, "k")))
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(stripe.sessions_created(), 1);
    assert_eq!(stripe.requests().len(), 2);
    drop(held);
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

// ---------------------------------------------------------------------------- billing_starts

/// Convert with a JSON body.
fn convert_with(id: &str, key: &str, body: serde_json::Value) -> Call {
    Call::convert(id, key).json(&body)
}

/// The last point in time at which a trial started at T0 still gets its trial end.
const LINE: i64 = T0 + 7 * DAY - TRIAL_END_MIN_LEAD_SECS - TRIAL_END_MARGIN_SECS;

#[tokio::test]
async fn billing_starts_now_when_asked_or_when_the_trial_end_is_too_close() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let asked = t.start_trial(ORG, "growth").await;
    let at_line = t.start_trial("org_b", "growth").await;
    let past_line = t.start_trial("org_c", "growth").await;

    let res = t
        .send(convert_with(
            &asked,
            "now",
            json!({ "billing_starts": "now" }),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["billing_starts"], "now");
    // Charged when the customer pays: from the time of the answer on.
    assert_eq!(body["first_charge_at"], rfc3339(T0));
    assert_eq!(
        stripe.requests()[0].param("subscription_data[trial_end]"),
        None
    );
    // While that session is open, any convert answers it, with the billing it was opened with.
    let again = t.send(Call::convert(&asked, "default")).await.json();
    assert_eq!(again["checkout_url"], body["checkout_url"]);
    assert_eq!(again["billing_starts"], "now");
    assert_eq!(stripe.requests().len(), 1);

    // Stripe wants the trial end at least 48 hours ahead (plus our margin for its clock).
    t.clock.set(LINE);
    let res = t
        .send(Call::convert(&at_line, "k").org("org_b"))
        .await
        .json();
    assert_eq!(res["billing_starts"], "trial_end");
    assert_eq!(res["first_charge_at"], "2026-04-13T10:00:00Z");
    let expires_at = (T0 + 7 * DAY).to_string();
    assert_eq!(
        stripe.requests()[1].param("subscription_data[trial_end]"),
        Some(expires_at.as_str())
    );
    t.clock.set(LINE + 1);
    let res = t.send(Call::convert(&past_line, "k").org("org_c")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = res.json();
    assert_eq!(res["billing_starts"], "now");
    assert_eq!(res["first_charge_at"], rfc3339(LINE + 1));
    assert_eq!(
        stripe.requests()[2].param("subscription_data[trial_end]"),
        None
    );
    // The session stored on the trial remembers it.
    let stored = writes::stored(&t, &past_line).await.unwrap();
    assert_eq!(stored.checkout.unwrap().trial_end, None);
    let stored = writes::stored(&t, &at_line).await.unwrap();
    assert_eq!(stored.checkout.unwrap().trial_end, Some(T0 + 7 * DAY));
}

#[tokio::test]
async fn an_unknown_billing_starts_is_a_400_that_stores_nothing() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    for (body, code) in [
        (
            json!({ "billing_starts": "later" }),
            "invalid_billing_starts",
        ),
        (json!({ "billing_starts": null }), "invalid_billing_starts"),
        (json!(["now"]), "invalid_json"),
    ] {
        let res = t.send(convert_with(&id, "k", body.clone())).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, code),
            "{body}: {}",
            res.body
        );
    }
    assert!(stripe.requests().is_empty());
    // Nothing was stored under the key: with a good body it runs.
    let res = t
        .send(convert_with(
            &id,
            "k",
            json!({ "billing_starts": "trial_end" }),
        ))
        .await;
    assert_eq!((res.status, res.replayed()), (200, false), "{}", res.body);
    // The body is part of the request: the same key with another body is another request.
    let res = t
        .send(convert_with(&id, "k", json!({ "billing_starts": "now" })))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
}

#[tokio::test]
async fn a_retry_across_the_48_hour_line_gets_the_session_of_the_first_attempt() {
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 200).await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(LINE);
    // Stripe creates the session (with the trial end) but answers too late.
    // The answer is held until after convert gave up on it: no race with a timer.
    let held = stripe.hold_next();
    let failed = t.send(Call::convert(&id, "k")).await;
    drop(held);
    assert_eq!(failed.error_code(), "payment_provider_error");

    // The retry comes when the trial end is no longer 48 hours ahead.
    t.clock.set(LINE + 3_600);
    let retried = t.send(Call::convert(&id, "k")).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let body = retried.json();
    assert_eq!(body["billing_starts"], "trial_end");
    assert_eq!(body["first_charge_at"], "2026-04-13T10:00:00Z");
    assert_eq!(
        stripe.sessions_created(),
        1,
        "one session, whatever the retry"
    );
    let sent = stripe.requests();
    assert_eq!(
        sent.len(),
        3,
        "first, retry as of now, retry as first asked"
    );
    assert!(sent
        .iter()
        .all(|r| r.idempotency_key == sent[0].idempotency_key));
    assert_eq!(sent[1].param("subscription_data[trial_end]"), None);
    assert_eq!(
        sent[2].param("subscription_data[trial_end]"),
        sent[0].param("subscription_data[trial_end]")
    );
    let stored = writes::stored(&t, &id).await.unwrap().checkout.unwrap();
    assert_eq!(stored.trial_end, Some(T0 + 7 * DAY));
    assert_eq!(body["checkout_url"], stored.url.as_str());
}

// ---------------------------------------------------------------------------- payments on their way

/// Waits until the stand-in has settled `session`'s delayed payment (it does so at once with
/// `Options::async_payment_delay` zero, in a task of its own).
async fn settled(stripe: &StripeStandIn, session: &str) {
    for _ in 0..2_000 {
        if !stripe.in_flight(session) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the delayed payment of {session} never settled");
}

/// The stand-in settling delayed payments at once (their events are delivered by the test).
fn instant_settlement() -> Options {
    Options {
        async_payment_delay: Duration::ZERO,
        ..Options::default()
    }
}

async fn session_of(t: &TestApp, id: &str) -> String {
    writes::stored(t, id)
        .await
        .expect("trial")
        .checkout
        .expect("a session")
        .session_id
}

/// A convert with key `k1`, then the customer pays its session with a delayed method that
/// `succeeds` or not, settled at once at the stand-in (whose events the test delivers): the
/// convert's answer and the session.
async fn paid_later(
    t: &TestApp,
    stripe: &StripeStandIn,
    id: &str,
    succeeds: bool,
) -> (serde_json::Value, String) {
    let res = t.send(Call::convert(id, "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let session = session_of(t, id).await;
    stripe
        .pay(&session, PayMethod::Delayed { succeeds })
        .await
        .unwrap();
    settled(stripe, &session).await;
    (res.json(), session)
}

#[tokio::test]
async fn a_payment_on_its_way_is_answered_instead_of_a_second_session() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let (first, session) = paid_later(&t, &stripe, &id, true).await;
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "awaiting_payment"
    );

    // A day later the session's own expiry has passed: without the pending payment a convert
    // would open a second session, and the customer could end up with two subscriptions.
    t.clock.advance(DAY + 3_600);
    t.dynamo.reset();
    let res = t.send(Call::convert(&id, "k2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["payment_pending"], true);
    assert_eq!(body["checkout_url"], first["checkout_url"]);
    assert_eq!(body["billing_starts"], "trial_end");
    assert_eq!(stripe.requests().len(), 1, "Stripe is not called");
    assert_eq!(t.dynamo.total(), 3, "{:?}", t.dynamo.by_operation());
    assert!(t.send(Call::convert(&id, "k2")).await.replayed());

    // The bank says yes: converted.
    assert_eq!(
        t.deliver_from(
            &stripe,
            "checkout.session.async_payment_succeeded",
            &session
        )
        .await,
        "converted"
    );
    let res = t.send(Call::convert(&id, "k3")).await;
    assert_eq!(res.error_code(), "trial_already_converted");
}

#[tokio::test]
async fn a_failed_delayed_payment_lets_convert_open_a_new_session() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let (first, session) = paid_later(&t, &stripe, &id, false).await;
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "awaiting_payment"
    );
    assert_eq!(
        t.send(Call::convert(&id, "k2")).await.json()["payment_pending"],
        true
    );
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.async_payment_failed", &session)
            .await,
        "checkout_cleared"
    );
    let body = a_second_session_opens(&t, &stripe, &id, "k3").await;
    assert_ne!(body["checkout_url"], first["checkout_url"]);
}

/// The trial holds no session and no payment on its way, and a convert with `key` opens the
/// second session at Stripe: its answer.
async fn a_second_session_opens(
    t: &TestApp,
    stripe: &StripeStandIn,
    id: &str,
    key: &str,
) -> serde_json::Value {
    let trial = writes::stored(t, id).await.unwrap();
    assert_eq!((trial.pending, trial.checkout), (None, None));
    let res = t.send(Call::convert(id, key)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["payment_pending"], false);
    assert_eq!(stripe.sessions_created(), 2);
    body
}

#[tokio::test]
async fn a_delayed_payment_holds_the_purge_until_it_succeeds() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let (_, session) = paid_later(&t, &stripe, &id, true).await;
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "awaiting_payment"
    );

    // Grace over and the session long expired: purge would delete a trial nobody converted.
    t.clock.set(T0 + 11 * DAY);
    trials::jobs::run(&t.app, Job::Expire, None).await;
    let purge = trials::jobs::run(&t.app, Job::Purge, None).await;
    assert_eq!((purge.processed, purge.skipped), (0, 1), "{purge:?}");
    let trial = writes::stored(&t, &id).await.expect("not purged");
    assert_eq!(trial.status, TrialStatus::Expired);
    assert_eq!(trial.pending.map(|p| p.session_id), Some(session.clone()));
    // Convert still answers the payment on its way, grace or not.
    let res = t.send(Call::convert(&id, "k2")).await;
    assert_eq!(
        (res.status, res.json()["payment_pending"].clone()),
        (200, json!(true))
    );

    // Days later the bank confirms: the money lands on a trial that still exists.
    assert_eq!(
        t.deliver_from(
            &stripe,
            "checkout.session.async_payment_succeeded",
            &session
        )
        .await,
        "converted"
    );
    assert_eq!(
        t.send(Call::status(&id)).await.json()["status"],
        "CONVERTED"
    );
    let purge = trials::jobs::run(&t.app, Job::Purge, None).await;
    assert_eq!(purge.processed, 0);
}

// ---------------------------------------------------------------------------- convert vs purge

#[tokio::test]
async fn a_convert_whose_stripe_call_spans_the_end_of_grace_records_no_session() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let grace_end = T0 + 10 * DAY;
    t.clock.set(grace_end - 1);
    // Stripe takes two seconds: the grace period ends during the call.
    let clock = t.clock.clone();
    stripe.on_request(move |_| clock.advance(2));
    let res = t.send(Call::convert(&id, "late")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired"),
        "{}",
        res.body
    );
    assert_eq!(stripe.sessions_created(), 1);
    let trial = writes::stored(&t, &id).await.unwrap();
    assert_eq!(trial.checkout, None, "nothing holds the purge back");
    trials::jobs::run(&t.app, Job::Expire, None).await;
    let purge = trials::jobs::run(&t.app, Job::Purge, None).await;
    assert_eq!(purge.processed, 1, "{purge:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_purge_keeps_a_trial_whose_session_was_recorded_after_it_read_the_index() {
    let t = TestApp::new().await;
    let trial = writes::seed_trial(&t, ORG, T0).await;
    let policy = t.policy();
    let grace_end = trial.expires_at + policy.grace_secs;
    t.clock.set(trial.expires_at);
    let expired = trials::jobs::run(&t.app, Job::Expire, None).await;
    assert_eq!(expired.processed, 1);
    // The job reads the index at the end of grace; before its delete goes out, a convert that
    // had checked the trial a second earlier records its session (the index, eventually
    // consistent in DynamoDB, has not shown it to the job).
    t.clock.set(grace_end);
    let held = t.dynamo.hold_next("TransactWriteItems");
    let job = {
        let app = t.app.clone();
        tokio::spawn(async move { trials::jobs::run(&app, Job::Purge, None).await })
    };
    held.reached().await;
    let checkout = Checkout {
        session_id: "cs_test_late".into(),
        url: "http://127.0.0.1/checkout/pay/cs_test_late".into(),
        expires_at: grace_end - 1 + DAY,
        trial_end: None,
    };
    let store = &t.app.store;
    let update = store
        .checkout_update(&trial, &checkout, grace_end - 1, policy)
        .unwrap();
    let outcome = store
        .tx()
        .update(Slot::Trial, update)
        .commit()
        .await
        .unwrap();
    assert!(outcome.committed(), "the late convert recorded its session");
    held.release();
    let purge = job.await.unwrap();
    assert_eq!(
        (purge.processed, purge.skipped, purge.failed),
        (0, 1, 0),
        "{purge:?}"
    );
    let kept = writes::stored(&t, trial.id.as_str()).await.expect("kept");
    assert_eq!(
        kept.checkout.map(|c| c.session_id).as_deref(),
        Some("cs_test_late")
    );
    // Once that session has expired unpaid, the next run deletes it.
    t.clock.set(grace_end - 1 + DAY);
    let purge = trials::jobs::run(&t.app, Job::Purge, None).await;
    assert_eq!(purge.processed, 1, "{purge:?}");
}

/// A leased route's stored answer (convert's, completed in place of its lease) expires with
/// the key's TTL like any other: a day later the key runs afresh.
#[tokio::test]
async fn a_converts_stored_answer_expires_with_the_key_ttl() {
    let (t, _stripe) = with_stripe(|c| c.idempotency_ttl_secs = DAY).await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(t.send(Call::convert(&id, "k")).await.status, 200);
    let other = || Call::convert(&id, "k").json(&json!({ "billing_starts": "now" }));
    t.clock.advance(DAY - 1);
    assert_eq!(t.send(other()).await.error_code(), "idempotency_key_reused");
    t.clock.advance(1);
    let fresh = t.send(other()).await;
    assert_eq!(
        (fresh.status, fresh.replayed()),
        (200, false),
        "{}",
        fresh.body
    );
}

// ------------------------------------------------------------------------- typed request bodies

#[tokio::test]
async fn a_field_a_route_does_not_take_is_400_invalid_field_naming_it_and_stores_nothing() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let calls = [
        Call::convert(&id, "u1").json(&json!({ "billing_starts": "now", "coupon": "x" })),
        Call::post(&format!("/v1/trials/{id}/usage"))
            .idempotency_key("u2")
            .json(&json!({ "option": "seats", "quantity": 1, "coupon": "x" })),
        Call::post("/v1/trials/skip")
            .idempotency_key("u3")
            .org("org_skipper")
            .json(&json!({ "plan": "growth", "coupon": "x" })),
        Call::post(&format!("/v1/trials/{id}/extend"))
            .admin()
            .idempotency_key("u4")
            .json(&json!({ "days": 1, "coupon": "x" })),
    ];
    for call in calls {
        let res = t.send(call).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_field"),
            "{}",
            res.body
        );
        assert!(
            res.body.contains("`coupon`"),
            "names the field: {}",
            res.body
        );
    }
    // Nothing was written: the trial is as started, and the skipping org has no trial.
    let trial = writes::stored(&t, &id).await.expect("trial");
    assert_eq!(trial.status, TrialStatus::Active);
    assert!(trial.checkout.is_none());
    assert!(trial.used.is_empty());
    let again = t.send(Call::start("growth", "u5").org("org_skipper")).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

// ---------------------------------------------------------------------------- events out of order

/// A convert, then the customer's delayed payment that Stripe reports as failed; the stand-in's
/// `completed` (unpaid) and `async_payment_failed` events are delivered by the test.
async fn failed_delayed_payment(t: &TestApp, stripe: &StripeStandIn, id: &str) -> String {
    paid_later(t, stripe, id, false).await.1
}

#[tokio::test]
async fn a_completed_delivered_after_the_payment_failed_does_not_hold_the_trial() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let session = failed_delayed_payment(&t, &stripe, &id).await;
    // Stripe does not order its events: the failure first, then `completed` (e.g. retried
    // after a 5xx).
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.async_payment_failed", &session)
            .await,
        "checkout_cleared"
    );
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "checkout_unchanged"
    );
    // Convert opens a new session instead of answering a payment that will never come.
    a_second_session_opens(&t, &stripe, &id, "k2").await;
    // And the purge does not wait for it: past grace, the trial goes.
    t.clock.set(T0 + 11 * DAY);
    trials::jobs::run(&t.app, Job::Expire, None).await;
    assert_eq!(
        trials::jobs::run(&t.app, Job::Purge, None).await.processed,
        1
    );
}

#[tokio::test]
async fn a_completed_for_a_session_the_trial_no_longer_holds_changes_nothing() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let old = failed_delayed_payment(&t, &stripe, &id).await;
    // The old session expired (forgotten on the trial) and a newer one is open.
    t.clock.advance(DAY + 60);
    let res = t.send(Call::convert(&id, "k2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let new = session_of(&t, &id).await;
    assert_ne!(new, old);
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &old)
            .await,
        "checkout_unchanged"
    );
    let trial = writes::stored(&t, &id).await.unwrap();
    assert_eq!(trial.pending, None);
    assert_eq!(trial.checkout.map(|c| c.session_id), Some(new));
}

/// A delayed payment reported `completed` (unpaid) at T0 and never settled.
async fn pending_since_t0(t: &TestApp, stripe: &StripeStandIn, id: &str) -> String {
    let (_, session) = paid_later(t, stripe, id, true).await;
    assert_eq!(
        t.deliver_from(stripe, "checkout.session.completed", &session)
            .await,
        "awaiting_payment"
    );
    session
}

#[tokio::test]
async fn past_its_maximum_age_a_payment_on_its_way_no_longer_holds_convert() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |c| {
        c.pending_payment_max_age_secs = 2 * DAY
    })
    .await;
    let id = t.start_trial(ORG, "growth").await;
    let session = pending_since_t0(&t, &stripe, &id).await;
    t.clock.set(T0 + 2 * DAY - 1);
    let res = t.send(Call::convert(&id, "k2")).await;
    assert_eq!(
        (res.status, res.json()["payment_pending"].clone()),
        (200, json!(true)),
        "{}",
        res.body
    );
    assert_eq!(stripe.sessions_created(), 1);
    t.clock.set(T0 + 2 * DAY);
    let res = t.send(Call::convert(&id, "k3")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["payment_pending"], false);
    assert_eq!(stripe.sessions_created(), 2);
    let trial = writes::stored(&t, &id).await.unwrap();
    assert_eq!(
        trial.pending, None,
        "the new session replaces the lost payment"
    );
    assert_ne!(trial.checkout.map(|c| c.session_id), Some(session.clone()));
    // Should the old debit land after all, it still converts the trial (money is never
    // refused).
    let succeeded = "checkout.session.async_payment_succeeded";
    let outcome = t.deliver_from(&stripe, succeeded, &session).await;
    assert_eq!(outcome, "converted");
}

#[tokio::test]
async fn past_its_maximum_age_a_payment_on_its_way_no_longer_holds_the_purge() {
    let (t, stripe) = with_stripe_options(instant_settlement(), |c| {
        c.pending_payment_max_age_secs = 11 * DAY
    })
    .await;
    let id = t.start_trial(ORG, "growth").await;
    pending_since_t0(&t, &stripe, &id).await;
    // Grace ends at T0 + 10 days: the payment on its way holds the trial one day longer.
    t.clock.set(T0 + 10 * DAY);
    trials::jobs::run(&t.app, Job::Expire, None).await;
    let purge = trials::jobs::run(&t.app, Job::Purge, None).await;
    assert_eq!((purge.processed, purge.skipped), (0, 1), "{purge:?}");
    t.clock.set(T0 + 11 * DAY - 1);
    assert_eq!(
        trials::jobs::run(&t.app, Job::Purge, None).await.processed,
        0
    );
    t.clock.set(T0 + 11 * DAY);
    assert_eq!(
        trials::jobs::run(&t.app, Job::Purge, None).await.processed,
        1
    );
    assert!(writes::stored(&t, &id).await.is_none());
}

// ---------------------------------------------------------------------------- paused trials

#[tokio::test]
async fn a_paused_trial_bills_from_its_time_left_counted_from_the_convert() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    // Paused a day in (six days left), converted ten days later.
    t.clock.set(T0 + DAY);
    let pause = Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p");
    let res = t.send(pause).await;
    assert_eq!(res.status, 200, "{}", res.body);
    t.clock.set(T0 + 11 * DAY);
    let res = t.send(Call::convert(&id, "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["billing_starts"], "trial_end");
    // Now + six days, not the end before the pause (T0 + 7 days, in the past).
    assert_eq!(body["first_charge_at"], rfc3339(T0 + 17 * DAY));
    assert_eq!(body["first_charge_at"], "2026-04-23T10:00:00Z");
    let sent = stripe.requests();
    let trial_end = (T0 + 17 * DAY).to_string();
    assert_eq!(
        sent[0].param("subscription_data[trial_end]"),
        Some(trial_end.as_str())
    );
}

/// A PAUSED trial's trial end moves with the clock (its time left counted from now), so a retry
/// of a convert whose Stripe answer was lost asks for another trial end: it goes under a key of
/// its own and gets a session of its own, where the same key would be Stripe's
/// `idempotency_error` (the same key with other parameters) and a 502 for good.
#[tokio::test]
async fn a_retried_convert_of_a_paused_trial_gets_a_session_for_its_new_end() {
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 200).await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.set(T0 + DAY);
    let pause = Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p");
    assert_eq!(t.send(pause).await.status, 200);
    t.clock.set(T0 + 2 * DAY);
    // Stripe creates the session but answers after convert gave up on it.
    let held = stripe.hold_next();
    let failed = t.send(Call::convert(&id, "k")).await;
    drop(held);
    assert_eq!(failed.error_code(), "payment_provider_error");
    t.clock.advance(60);
    let retried = t.send(Call::convert(&id, "k")).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    // Six days left, counted from the retry.
    let end = T0 + 2 * DAY + 60 + 6 * DAY;
    assert_eq!(retried.json()["first_charge_at"], rfc3339(end));
    let sent = stripe.requests();
    assert_eq!(sent.len(), 2, "the first attempt and the retry");
    assert_ne!(sent[0].idempotency_key, sent[1].idempotency_key);
    assert_eq!(
        sent[1].param("subscription_data[trial_end]"),
        Some(end.to_string().as_str())
    );
    assert_eq!(stripe.sessions_created(), 2);
    let stored = writes::stored(&t, &id).await.unwrap().checkout.unwrap();
    assert_eq!(retried.json()["checkout_url"], stored.url.as_str());
}

// ---------------------------------------------------------------------------- the plan

#[tokio::test]
async fn a_convert_naming_another_plan_changes_then_converts_and_the_trials_own_plan_is_accepted() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    let res = t
        .send(Call::convert(&id, "k1").json(&json!({ "plan": "pro" })))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["plan"], "pro");
    let url = res.json()["checkout_url"].clone();
    let pro_price = t
        .app
        .config
        .catalog
        .get("pro")
        .unwrap()
        .stripe_price
        .clone();
    assert_eq!(
        stripe.requests()[0].param("line_items[0][price]"),
        pro_price.as_deref()
    );
    let stored = writes::stored(&t, &id).await.unwrap();
    assert_eq!(stored.plan.as_str(), "pro");
    assert!(stored.checkout.is_some());
    let changed = t.events_of("trial.plan_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["previous_plan"], "growth");
    // The same key: the stored answer, nothing changed or called again.
    let again = t
        .send(Call::convert(&id, "k1").json(&json!({ "plan": "pro" })))
        .await;
    assert!(again.replayed());
    assert_eq!(stripe.sessions_created(), 1);
    // A non-string plan, or one the catalog does not have, is no plan at all.
    for (key, plan) in [("k2", json!(7)), ("k2b", json!("nope"))] {
        let res = t
            .send(Call::convert(&id, key).json(&json!({ "plan": plan })))
            .await;
        assert_eq!(
            (res.status, res.error_code()),
            (400, "invalid_plan".to_owned())
        );
    }
    // The trial's own plan converts as without the field: its open session.
    let res = t
        .send(Call::convert(&id, "k3").json(&json!({ "plan": "pro" })))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["checkout_url"], url);
    assert_eq!(stripe.sessions_created(), 1);
}

#[tokio::test]
async fn a_convert_to_a_plan_it_cannot_change_to_changes_nothing_and_calls_no_one() {
    let (t, stripe) = with_stripe(|c| {
        c.catalog = trials_tests::builtin_catalog_with(|v| {
            v["plans"][2]
                .as_object_mut()
                .unwrap()
                .remove("stripe_price");
        })
    })
    .await;
    let id = t.start_trial(ORG, "growth").await;
    let res = t
        .send(Call::convert(&id, "k1").json(&json!({ "plan": "pro" })))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (409, "plan_not_purchasable".to_owned()),
        "{}",
        res.body
    );
    // Expired, within grace: it may convert, but its plan no longer changes.
    t.clock.set(T0 + 8 * DAY);
    let res = t
        .send(Call::convert(&id, "k2").json(&json!({ "plan": "starter" })))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (409, "trial_already_expired".to_owned()),
        "{}",
        res.body
    );
    assert_eq!(stripe.sessions_created(), 0);
    assert_eq!(
        writes::stored(&t, &id).await.unwrap().plan.as_str(),
        "growth"
    );
}
