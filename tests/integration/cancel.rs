use trials::domain::api_key::ApiKey;
use trials::domain::trial::{Checkout, SessionBinding};
use trials::domain::TrialStatus;
use trials::jobs::{self, Job};
use trials::services::checkout_sessions::SessionToExpire;
use trials::store::codec::{get_n, key, Item};
use trials::store::schema::{session_expiry_pk, SESSION_EXPIRY_SK, TTL};
use trials::store::Slot;
use trials::stripe::client::NewCheckoutSession;
use trials_local::stripe_standin::{Fault, Options, PayMethod, StripeStandIn};
use trials_tests::requests::ORG;
use trials_tests::stripe::{with_stripe, with_stripe_options};
use trials_tests::{writes, Call, TestApp, DAY, T0};

#[tokio::test]
async fn cancel_moves_an_active_trial_to_canceled() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.advance(3600);
    let res = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "CANCELED");
    assert_eq!(body["canceled_at"], "2026-04-06T11:00:00Z");
    assert_eq!(body["days_remaining"], 0);
    let status = t.send(Call::status(&id)).await.json();
    assert_eq!(status["status"], "CANCELED");
    assert_eq!(status["canceled_at"], "2026-04-06T11:00:00Z");
}

#[tokio::test]
async fn a_second_cancel_is_409_and_a_retry_replays() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let first = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(
        (first.status, first.replayed()),
        (200, false),
        "{}",
        first.body
    );
    assert_eq!(first.json()["status"], "CANCELED");
    let replay = t.send(Call::cancel(&id, "c1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    let again = t.send(Call::cancel(&id, "c2")).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "trial_canceled")
    );
}

#[tokio::test]
async fn converted_expired_unknown_and_foreign_trials_cannot_be_canceled() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let trial = writes::stored(&t, &id).await.expect("trial");
    assert!(writes::convert(&t, &trial, t.now()).await);
    let res = t.send(Call::cancel(&id, "a")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_converted")
    );

    let other = t.start_trial("org_b", "pro").await;
    let res = t.send(Call::cancel(&other, "b")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    t.clock.set(T0 + 7 * DAY);
    let res = t.send(Call::cancel(&other, "b").org("org_b")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_expired")
    );
    let res = t
        .send(Call::cancel("trial_0123456789abcdef01234567", "c"))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    let res = t.send(Call::post(&format!("/v1/trials/{id}/cancel"))).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "missing_idempotency_key")
    );
}

#[tokio::test]
async fn a_canceled_trial_cannot_convert_and_the_org_cannot_start_again() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    let res = t.send(Call::convert(&id, "v")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_canceled")
    );
    let res = t.send(Call::start("pro", "s2")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_exists")
    );
    assert!(stripe.requests().is_empty());
}

#[tokio::test]
async fn cancel_is_two_dynamodb_round_trips() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.dynamo.reset();
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    // The read of the trial, then one transaction (trial, idempotency record, event).
    assert_eq!(
        t.dynamo.count("GetItem"),
        1,
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.count("TransactWriteItems"), 1);
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
}

#[tokio::test]
async fn concurrent_cancels_with_different_keys_cancel_once() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move { t.send(Call::cancel(&id, &format!("k{i}"))).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let res = task.await.unwrap();
        if res.status == 409 {
            assert_eq!(res.error_code(), "trial_canceled");
        }
        statuses.push(res.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_purged_trial_is_410_and_the_org_still_cannot_start_again() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    t.clock.advance(3 * DAY);
    trials::jobs::run(&t.app, trials::jobs::Job::Purge, None).await;
    let res = t.send(Call::cancel(&id, "again")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired")
    );
    let res = t.send(Call::start("growth", "restart")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_exists")
    );
}

// ---------------------------------------------------------------------------- the open session

/// The work item a cancel left for the session, as stored (`None`: there is none).
async fn session_to_expire(t: &TestApp, session: &str) -> Option<SessionToExpire> {
    session_to_expire_item(t, session)
        .await
        .map(|item| SessionToExpire::from_item(&item).expect("a work item"))
}

async fn session_to_expire_item(t: &TestApp, session: &str) -> Option<Item> {
    let out = t
        .app
        .store
        .client()
        .get_item()
        .table_name(t.app.store.table_name())
        .set_key(Some(key(session_expiry_pk(session), SESSION_EXPIRY_SK)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

/// A trial with an open session from a real convert: (trial id, session id).
async fn trial_with_session(t: &TestApp) -> (String, String) {
    let id = t.start_trial(ORG, "growth").await;
    let res = t.send(Call::convert(&id, "convert")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let session = writes::stored(t, &id)
        .await
        .unwrap()
        .checkout
        .unwrap()
        .session_id;
    (id, session)
}

/// The Stripe requests about `session`'s expiry, as "METHOD path".
fn expiry_calls(stripe: &StripeStandIn, session: &str) -> Vec<String> {
    stripe
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .starts_with(&format!("/v1/checkout/sessions/{session}"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn session_status(stripe: &StripeStandIn, session: &str) -> &'static str {
    stripe.session(session).expect("a session").status.as_str()
}

#[tokio::test]
async fn cancel_expires_the_open_checkout_session_at_stripe() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, session) = trial_with_session(&t).await;
    t.dynamo.reset();
    let res = t.send(Call::cancel(&id, "c")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "CANCELED");
    assert_eq!(
        expiry_calls(&stripe, &session),
        [format!("POST /v1/checkout/sessions/{session}/expire")]
    );
    assert_eq!(session_status(&stripe, &session), "expired");
    // The read, the transaction (with the work item), and the item's delete once Stripe said so.
    assert_eq!(
        t.dynamo.count("GetItem"),
        1,
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.count("TransactWriteItems"), 1);
    assert_eq!(t.dynamo.count("DeleteItem"), 1);
    assert_eq!(t.dynamo.total(), 3);
    assert_eq!(session_to_expire(&t, &session).await, None);
    // Stripe's `checkout.session.expired` follows: the canceled trial forgets the session.
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.expired", &session)
            .await,
        "checkout_cleared"
    );
    assert_eq!(writes::stored(&t, &id).await.unwrap().checkout, None);
    // Nothing left for the job.
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.items_read), (0, 0));
}

#[tokio::test]
async fn when_stripe_fails_the_cancel_succeeds_and_the_expire_job_retries_with_backoff() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, session) = trial_with_session(&t).await;
    stripe.fail_next(Fault::ServerError);
    let res = t.send(Call::cancel(&id, "c")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(t.send(Call::status(&id)).await.json()["status"], "CANCELED");
    assert_eq!(session_status(&stripe, &session), "open");
    // The cancel's transaction left the work: the session, due now.
    let work = session_to_expire(&t, &session).await.expect("work item");
    assert_eq!((work.attempts, work.trial_id.as_str()), (0, id.as_str()));
    // DynamoDB's TTL sweep may remove it only a day after Stripe expires the session itself:
    // never while the session can still be paid.
    let item = session_to_expire_item(&t, &session).await.unwrap();
    assert_eq!(
        get_n(&item, TTL),
        Some(work.session_expires_at + 86_400),
        "{item:?}"
    );

    // The expire function's next run tries again; Stripe fails again: next try in a minute.
    stripe.fail_next(Fault::ServerError);
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (0, 1), "{run:?}");
    assert_eq!(session_to_expire(&t, &session).await.unwrap().attempts, 1);
    let calls = expiry_calls(&stripe, &session).len();
    assert_eq!(calls, 2);
    t.clock.advance(59);
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.items_read), (0, 0), "not due yet");
    assert_eq!(expiry_calls(&stripe, &session).len(), calls);

    t.clock.advance(1);
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (1, 0), "{run:?}");
    assert_eq!(session_status(&stripe, &session), "expired");
    assert_eq!(session_to_expire(&t, &session).await, None);
    // The expire job proper is untouched by it.
    assert_eq!(jobs::run(&t.app, Job::Expire, None).await.processed, 0);
}

/// Each session a cancel leaves to expire is its own work item: the sessions of two canceled
/// trials whose Stripe calls failed are both expired by the job.
#[tokio::test]
async fn the_job_expires_every_session_the_cancels_left_behind() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let mut sessions = Vec::new();
    for org in [ORG, "org_second"] {
        let id = t.start_trial(org, "growth").await;
        let converted = t.send(Call::convert(&id, "convert").org(org)).await;
        assert_eq!(converted.status, 200, "{}", converted.body);
        let session = writes::stored(&t, &id)
            .await
            .unwrap()
            .checkout
            .unwrap()
            .session_id;
        stripe.fail_next(Fault::ServerError);
        let canceled = t.send(Call::cancel(&id, "c").org(org)).await;
        assert_eq!(canceled.status, 200, "{}", canceled.body);
        assert_eq!(session_status(&stripe, &session), "open");
        sessions.push(session);
    }
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (2, 0), "{run:?}");
    for session in &sessions {
        assert_eq!(session_status(&stripe, session), "expired");
        assert_eq!(session_to_expire(&t, session).await, None);
    }
}

#[tokio::test]
async fn a_late_stripe_answer_is_settled_by_the_job_finding_the_session_expired() {
    let (t, stripe) = with_stripe(|c| c.stripe.timeout_ms = 200).await;
    let (id, session) = trial_with_session(&t).await;
    // Stripe expires the session but answers after the cancel stopped waiting.
    // The answer is held until after cancel gave up on it: no race with a timer.
    let held = stripe.hold_next();
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    drop(held);
    assert!(session_to_expire(&t, &session).await.is_some());
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (1, 0), "{run:?}");
    // Stripe refuses to expire it again; looking the session up shows it can no longer be paid.
    assert_eq!(
        expiry_calls(&stripe, &session)[1..],
        [
            format!("POST /v1/checkout/sessions/{session}/expire"),
            format!("GET /v1/checkout/sessions/{session}"),
        ]
    );
    assert_eq!(session_to_expire(&t, &session).await, None);
}

#[tokio::test]
async fn work_left_after_the_session_ran_out_is_dropped_without_calling_stripe() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, session) = trial_with_session(&t).await;
    stripe.fail_next(Fault::ServerError);
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    let calls = stripe.requests().len();
    // Stripe expires a session 24 hours after it was created, by itself.
    t.clock.advance(DAY);
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (1, 0), "{run:?}");
    assert_eq!(stripe.requests().len(), calls);
    assert_eq!(session_to_expire(&t, &session).await, None);
}

#[tokio::test]
async fn the_expire_function_runs_both_jobs_and_a_paid_session_needs_nothing() {
    assert_eq!(
        Job::Expire.function_jobs(),
        [Job::Expire, Job::ExpireSessions]
    );
    assert_eq!(Job::Purge.function_jobs(), [Job::Purge]);
    // A session the customer paid before the cancel (the payment then converts the trial,
    // flagged): Stripe refuses to expire it, and that is the end of the work.
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, session) = trial_with_session(&t).await;
    stripe.fail_next(Fault::ServerError);
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    stripe
        .pay(&session, trials_local::stripe_standin::PayMethod::Card)
        .await
        .unwrap();
    let run = jobs::run(&t.app, Job::ExpireSessions, None).await;
    assert_eq!((run.processed, run.failed), (1, 0), "{run:?}");
    assert_eq!(session_status(&stripe, &session), "complete");
    assert_eq!(session_to_expire(&t, &session).await, None);
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "converted_after_cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_recorded_between_the_cancels_read_and_write_is_expired_too() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    // A convert racing the cancel: its session exists at Stripe, and it records it on the trial
    // after the cancel read the trial (no session then) and before the cancel's write.
    let created = t
        .app
        .stripe
        .create_checkout_session(
            &NewCheckoutSession {
                price: "price_growth".into(),
                quantity: 1,
                success_url: "http://127.0.0.1/ok".into(),
                cancel_url: "http://127.0.0.1/back".into(),
                client_reference_id: id.clone(),
                metadata: vec![("trial_id".into(), id.clone())],
                trial_end: None,
            },
            "racing-convert",
            None,
        )
        .await
        .unwrap();
    let trial = writes::stored(&t, &id).await.unwrap();
    let policy = t.policy();
    let now = t.now();
    let checkout = Checkout {
        session_id: created.id.clone(),
        url: created.url.clone(),
        expires_at: created.expires_at,
        trial_end: None,
    };
    t.dynamo.reset();
    let held = t.dynamo.hold_next("TransactWriteItems");
    let cancel = {
        let (t, id) = (t.clone(), id.clone());
        tokio::spawn(async move { t.send(Call::cancel(&id, "c")).await })
    };
    held.reached().await;
    // The racer is another function: a client of its own (sharing the held request's client
    // would wait on its connection pool).
    let store = &trials::store::Store::new(
        trials::aws::local_dynamodb(&t.endpoint),
        t.app.store.table_name(),
        t.app.store.shards(),
    );
    let update = store
        .checkout_update(&trial, &checkout, now, policy)
        .unwrap();
    let outcome = store
        .tx()
        .update(Slot::Trial, update)
        .commit()
        .await
        .unwrap();
    assert!(
        outcome.committed(),
        "the racing convert recorded its session"
    );
    held.release();
    let res = cancel.await.unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(session_status(&stripe, &created.id), "expired");
    assert_eq!(
        writes::stored(&t, &id).await.unwrap().status,
        TrialStatus::Canceled
    );
    // The first write was refused (the trial held a session it had not seen); the second, on
    // the trial as it was then, carried the session's expiry.
    assert_eq!(
        t.dynamo.count("TransactWriteItems"),
        2,
        "{:?}",
        t.dynamo.by_operation()
    );
}

// ---------------------------------------------------------------------------- projects

/// `call` with `X-Project-Id: project`, authenticated by `key`.
fn as_project(call: Call, project: &str, key: &ApiKey) -> Call {
    call.without("x-project-id")
        .header("x-project-id", project)
        .bearer(key.expose())
}

#[tokio::test]
async fn a_key_limited_to_other_projects_neither_acts_on_nor_replays_the_trial() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let all = t.create_key(ORG, &[]).await;
    let only_b = t.create_key(ORG, &["proj_b"]).await;
    let a_and_b = t.create_key(ORG, &["proj_a", "proj_b"]).await;
    let res = t
        .send(as_project(Call::start("growth", "s"), "proj_a", &all))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.json()["id"].as_str().unwrap().to_owned();

    // A key for proj_b only: the trial of proj_a does not exist for it.
    for call in [
        Call::status(&id),
        Call::cancel(&id, "b-cancel"),
        Call::convert(&id, "b-convert"),
    ] {
        let res = t.send(as_project(call, "proj_b", &only_b)).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (404, "trial_not_found"),
            "{}",
            res.body
        );
    }
    assert!(stripe.requests().is_empty());
    // The org's key for all projects cancels it; a key of another grant reusing that
    // Idempotency-Key gets no replay of the answer.
    let canceled = t
        .send(as_project(Call::cancel(&id, "k"), "proj_a", &all))
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    for key in [&only_b, &a_and_b] {
        let res = t
            .send(as_project(Call::cancel(&id, "k"), "proj_b", key))
            .await;
        assert_eq!(
            (res.status, res.error_code().as_str(), res.replayed()),
            (422, "idempotency_key_reused", false),
            "{}",
            res.body
        );
    }
    // The same grant gets it under the same project only: the project is part of the
    // idempotency scope (issue 26), so under another project it is another request.
    let res = t
        .send(as_project(Call::cancel(&id, "k"), "proj_a", &all))
        .await;
    assert!(res.replayed());
    assert_eq!(res.body, canceled.body);
    let res = t
        .send(as_project(Call::cancel(&id, "k"), "proj_b", &all))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str(), res.replayed()),
        (422, "idempotency_key_reused", false),
        "{}",
        res.body
    );
    // A key whose projects include the trial's acts on it, whichever of them it names.
    let res = t
        .send(as_project(Call::status(&id), "proj_b", &a_and_b))
        .await;
    assert_eq!(
        (res.status, res.json()["status"].as_str()),
        (200, Some("CANCELED"))
    );
    // A trial stored before projects were recorded: keys for all projects only.
    let legacy = writes::seed_trial(&t, "org_legacy", T0).await;
    assert_eq!(legacy.project_id, None);
    let path = Call::status(legacy.id.as_str()).org("org_legacy");
    let only_b = t.create_key("org_legacy", &["proj_b"]).await;
    let res = t.send(as_project(path, "proj_b", &only_b)).await;
    assert_eq!(res.status, 404);
    let all = t.create_key("org_legacy", &[]).await;
    let path = Call::status(legacy.id.as_str()).org("org_legacy");
    let res = t.send(as_project(path, "proj_b", &all)).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn a_purged_trial_of_another_project_is_404_not_410() {
    let t = TestApp::new().await;
    let all = t.create_key(ORG, &[]).await;
    let only_b = t.create_key(ORG, &["proj_b"]).await;
    let res = t
        .send(as_project(Call::start("growth", "s"), "proj_a", &all))
        .await;
    let id = res.json()["id"].as_str().unwrap().to_owned();
    t.clock.set(T0 + 10 * DAY);
    jobs::run(&t.app, Job::Expire, None).await;
    assert_eq!(jobs::run(&t.app, Job::Purge, None).await.processed, 1);
    let res = t.send(as_project(Call::status(&id), "proj_a", &all)).await;
    assert_eq!(res.error_code(), "trial_expired");
    let res = t
        .send(as_project(Call::status(&id), "proj_b", &only_b))
        .await;
    assert_eq!(res.error_code(), "trial_not_found");
}

// ---------------------------------------------------------------------------- a payment on its way

/// A trial whose checkout completed with a delayed payment (recorded at T0), and its session.
async fn trial_paying(t: &TestApp, stripe: &StripeStandIn) -> (String, String) {
    let (id, session) = trial_with_session(t).await;
    stripe
        .pay(&session, PayMethod::Delayed { succeeds: false })
        .await
        .unwrap();
    for _ in 0..2_000 {
        if !stripe.in_flight(&session) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        t.deliver_from(stripe, "checkout.session.completed", &session)
            .await,
        "awaiting_payment"
    );
    (id, session)
}

#[tokio::test]
async fn cancel_while_a_payment_is_on_its_way_is_409_payment_pending_naming_the_session() {
    let (t, stripe) = with_stripe_options(
        Options {
            async_payment_delay: std::time::Duration::ZERO,
            ..Options::default()
        },
        |_| {},
    )
    .await;
    let (id, session) = trial_paying(&t, &stripe).await;
    t.clock.advance(3_600);
    let res = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "payment_pending");
    let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&session), "{message}");
    assert_eq!(
        writes::stored(&t, &id).await.unwrap().status,
        TrialStatus::Active
    );
    // Stored for the key, like any refusal.
    assert!(t.send(Call::cancel(&id, "c1")).await.replayed());
    // The debit fails: the trial is cancelable again.
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.async_payment_failed", &session)
            .await,
        "checkout_cleared"
    );
    let res = t.send(Call::cancel(&id, "c2")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "CANCELED");
}

#[tokio::test]
async fn a_payment_recorded_after_the_cancels_read_makes_its_write_fail() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let read = writes::stored(&t, &id).await.unwrap();
    // The trial as the cancel read it (no payment on its way); then the payment is recorded.
    writes::open_checkout(&t, &id, "cs_debit").await;
    let read_with_session = writes::stored(&t, &id).await.unwrap();
    let binding = SessionBinding {
        trial_id: read.id.clone(),
        org_id: read.org_id.clone(),
        plan: read.plan.clone(),
    };
    let store = &t.app.store;
    let pending = store.pending_update(&binding, "cs_debit", t.now()).unwrap();
    assert!(store
        .tx()
        .update(Slot::Trial, pending)
        .commit()
        .await
        .unwrap()
        .committed());
    assert!(!writes::cancel(&t, &read_with_session, t.now()).await);
    assert_eq!(
        writes::stored(&t, &id).await.unwrap().status,
        TrialStatus::Active
    );
}
