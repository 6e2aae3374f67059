//! `POST /v1/webhooks/stripe`: signatures built here by Stripe's documented algorithm
//! (HMAC-SHA256 of `"{t}.{body}"`, hex), deliveries repeated, reordered and failed.
use serde_json::{json, Value};
use trials::api::Route;
use trials::config::Secret;
use trials::crypto::{hex, hmac_sha256};
use trials::domain::trial::SessionBinding;
use trials::domain::{OrgId, Plan, Trial, TrialId, TrialStatus};
use trials::jobs::{self, Job};
use trials::store::Slot;
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::logs::capture;
use trials_tests::{writes, Call, TestApp, TestResponse, DAY, T0};

const PATH: &str = "/v1/webhooks/stripe";
const SECRET: &str = "whsec_test_current";
const ORG: &str = "org_abc123";
const UNKNOWN_TRIAL: &str = "trial_0123456789abcdef01234567";

fn signature(body: &str, secret: &str, t: i64) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex(&mac))
}

fn event(id: &str, kind: &str, session: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": T0,
        "type": kind,
        "data": { "object": session },
        "livemode": false,
    })
    .to_string()
}

/// A Checkout Session for `trial` as Stripe sends it (the reference in both places we read).
fn session(id: &str, trial: &str, payment_status: &str) -> Value {
    json!({
        "id": id,
        "object": "checkout.session",
        "client_reference_id": trial,
        "metadata": { "trial_id": trial, "org_id": ORG, "plan": "growth" },
        "mode": "subscription",
        "payment_status": payment_status,
        "status": "complete",
        "customer": "cus_test_1",
        "subscription": format!("sub_for_{id}"),
        "amount_total": 4900,
        "currency": "usd",
    })
}

fn completed(event_id: &str, trial: &str, session_id: &str) -> String {
    event(
        event_id,
        "checkout.session.completed",
        session(session_id, trial, "paid"),
    )
}

async fn app() -> TestApp {
    TestApp::with_config(|c| c.webhook.secrets = vec![Secret::new(SECRET)]).await
}

fn call(body: &str, signature: Option<&str>) -> Call {
    let call = Call::post(PATH).raw_body(body);
    match signature {
        Some(sig) => call.header("stripe-signature", sig),
        None => call,
    }
}

/// Delivers `body` signed now with the current secret, through the function's own entry point.
async fn deliver(t: &TestApp, body: &str) -> TestResponse {
    let sig = signature(body, SECRET, t.now());
    t.send_to(Route::StripeWebhook, call(body, Some(&sig)))
        .await
}

fn outcome(res: &TestResponse) -> String {
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn status(t: &TestApp, id: &str) -> Value {
    let res = t.send(Call::status(id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn stored(t: &TestApp, id: &str) -> Trial {
    t.app
        .store
        .get_trial(&TrialId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("trial exists")
}

/// DynamoDB requests of the last delivery.
fn round_trips(t: &TestApp) -> usize {
    t.dynamo.total()
}

async fn open_checkout(t: &TestApp, id: &str, session_id: &str) {
    writes::open_checkout(t, id, session_id).await
}

// ---------------------------------------------------------------------------- signatures

#[tokio::test]
async fn every_signature_failure_is_the_same_400_and_touches_nothing() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let body = completed("evt_sig", &id, "cs_sig");
    let now = t.now();
    let good = signature(&body, SECRET, now);
    let tampered = body.replace("cus_test_1", "cus_attacker");
    let mac_only = good.split_once(",v1=").unwrap().1.to_owned();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("tampered body", tampered, Some(good.clone())),
        (
            "wrong secret",
            body.clone(),
            Some(signature(&body, "whsec_wrong", now)),
        ),
        (
            "stale",
            body.clone(),
            Some(signature(&body, SECRET, now - 301)),
        ),
        (
            "future",
            body.clone(),
            Some(signature(&body, SECRET, now + 301)),
        ),
        (
            "timestamp moved",
            body.clone(),
            Some(good.replacen(&now.to_string(), &(now - 1).to_string(), 1)),
        ),
        ("missing", body.clone(), None),
        ("empty", body.clone(), Some(String::new())),
        ("garbled", body.clone(), Some("not a signature".into())),
        ("no t", body.clone(), Some(format!("v1={mac_only}"))),
        ("no v1", body.clone(), Some(format!("t={now}"))),
        (
            "v0 only",
            body.clone(),
            Some(format!("t={now},v0={mac_only}")),
        ),
        (
            "t not a number",
            body.clone(),
            Some(format!("t=now,v1={mac_only}")),
        ),
        (
            "truncated mac",
            body.clone(),
            Some(format!("t={now},v1={}", &mac_only[..40])),
        ),
    ];
    t.dynamo.reset();
    let mut bodies = Vec::new();
    for (name, body, sig) in &cases {
        let res = t
            .send_to(Route::StripeWebhook, call(body, sig.as_deref()))
            .await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_signature"),
            "{name}: {}",
            res.body
        );
        assert!(!res.body.contains(SECRET), "{name}");
        bodies.push(res.body);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one message for every cause: {bodies:?}");
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());
    assert_eq!(status(&t, &id).await["status"], "ACTIVE");
}

#[tokio::test]
async fn timestamps_just_inside_the_tolerance_verify_either_way() {
    let t = app().await;
    for (i, skew) in [-300, 300, -299, 299, 0].into_iter().enumerate() {
        let body = event(&format!("evt_skew_{i}"), "customer.created", json!({}));
        let sig = signature(&body, SECRET, t.now() + skew);
        let res = t
            .send_to(Route::StripeWebhook, call(&body, Some(&sig)))
            .await;
        assert_eq!(outcome(&res), "ignored", "skew {skew}");
    }
    // The tolerance is configuration.
    let strict = TestApp::with_config(|c| {
        c.webhook.secrets = vec![Secret::new(SECRET)];
        c.webhook.tolerance_secs = 10;
    })
    .await;
    let body = event("evt_strict", "customer.created", json!({}));
    for (skew, expected) in [(-10, 200), (11, 400), (-11, 400)] {
        let sig = signature(&body, SECRET, strict.now() + skew);
        let res = strict
            .send_to(Route::StripeWebhook, call(&body, Some(&sig)))
            .await;
        assert_eq!(res.status, expected, "skew {skew}: {}", res.body);
    }
}

#[tokio::test]
async fn one_valid_v1_among_several_is_enough() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let body = completed("evt_multi", &id, "cs_multi");
    let now = t.now();
    let mac = |secret: &str| {
        signature(&body, secret, now)
            .split_once(",v1=")
            .unwrap()
            .1
            .to_owned()
    };
    let header = format!(
        "t={now},v1={},v0={},v1=nothex,v1={}",
        mac("whsec_old"),
        mac(SECRET),
        mac(SECRET)
    );
    let res = t
        .send_to(Route::StripeWebhook, call(&body, Some(&header)))
        .await;
    assert_eq!(outcome(&res), "converted");
}

#[tokio::test]
async fn during_a_rotation_either_secret_verifies() {
    let t = TestApp::with_config(|c| {
        c.webhook.secrets = vec![Secret::new("whsec_old"), Secret::new("whsec_new")]
    })
    .await;
    for (i, secret) in ["whsec_old", "whsec_new"].into_iter().enumerate() {
        let body = event(&format!("evt_rot_{i}"), "customer.created", json!({}));
        let sig = signature(&body, secret, t.now());
        let res = t
            .send_to(Route::StripeWebhook, call(&body, Some(&sig)))
            .await;
        assert_eq!(outcome(&res), "ignored", "{secret}");
    }
    let body = event("evt_rot_x", "customer.created", json!({}));
    let sig = signature(&body, SECRET, t.now());
    let res = t
        .send_to(Route::StripeWebhook, call(&body, Some(&sig)))
        .await;
    assert_eq!(res.error_code(), "invalid_signature");
}

#[tokio::test]
async fn without_a_configured_secret_every_delivery_is_refused() {
    let t = TestApp::new().await;
    assert!(t.app.config.webhook.secrets.is_empty());
    let body = event("evt_none", "customer.created", json!({}));
    for secret in ["", SECRET] {
        let sig = signature(&body, secret, t.now());
        let res = t.send(call(&body, Some(&sig))).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_signature")
        );
    }
    assert_eq!(t.dynamo.total(), 0);
}

/// The answer is the same 400 either way; the log tells operators which it was: the secret is
/// not configured (every delivery will fail), or this signature did not verify.
// current_thread: the subscriber set as default for this thread sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn the_log_tells_a_missing_secret_from_a_signature_that_does_not_verify() {
    let (logs, _guard) = capture();
    const UNSET: &str = "STRIPE_WEBHOOK_SECRET is not set";
    const REFUSED: &str = "Stripe-Signature refused";
    let body = event("evt_log", "customer.created", json!({}));

    let unset = TestApp::new().await;
    let sig = signature(&body, SECRET, unset.now());
    assert_eq!(unset.send(call(&body, Some(&sig))).await.status, 400);
    let text = logs.text();
    assert_eq!(
        (text.matches(UNSET).count(), text.matches(REFUSED).count()),
        (1, 0),
        "{text}"
    );

    let t = app().await;
    let wrong = signature(&body, "whsec_not_ours", t.now());
    assert_eq!(t.send(call(&body, Some(&wrong))).await.status, 400);
    let text = logs.text();
    assert_eq!(
        (text.matches(UNSET).count(), text.matches(REFUSED).count()),
        (1, 1),
        "{text}"
    );
    assert!(!text.contains(SECRET) && !text.contains(&wrong), "{text}");
}

// ---------------------------------------------------------------------------- payloads

#[tokio::test]
async fn a_signed_body_that_is_not_an_event_is_invalid_payload() {
    let t = app().await;
    for body in [
        "not json",
        "[]",
        "{}",
        r#"{"type":"checkout.session.completed"}"#,
        r#"{"id":"evt_1"}"#,
        r#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"object":"checkout.session"}}}"#,
    ] {
        let res = deliver(&t, body).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_payload"),
            "{body}: {}",
            res.body
        );
    }
    assert_eq!(t.dynamo.total(), 0);
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    t.dynamo.reset();
    // (`invoice.paid` is followed now, see `subscription.rs`; `invoice.created` is not.)
    let body = event(
        "evt_invoice",
        "invoice.created",
        json!({ "id": "in_1", "object": "invoice", "subscription": "sub_1" }),
    );
    let res = deliver(&t, &body).await;
    assert_eq!(outcome(&res), "ignored");
    assert_eq!(res.json()["event_id"], "evt_invoice");
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());
    assert_eq!(status(&t, &id).await["status"], "ACTIVE");
}

// ---------------------------------------------------------------------------- conversion

#[tokio::test]
async fn five_deliveries_of_one_event_convert_once() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    open_checkout(&t, &id, "cs_paid").await;
    let body = completed("evt_completed", &id, "cs_paid");
    let mut outcomes = Vec::new();
    for i in 0..5 {
        t.dynamo.reset();
        outcomes.push(outcome(&deliver(&t, &body).await));
        // A payment for a session we created: one request; its redeliveries, one too (the
        // dedupe record's condition fails inside the same transaction).
        assert_eq!(
            round_trips(&t),
            1,
            "delivery {i}: {:?}",
            t.dynamo.by_operation()
        );
        t.clock.advance(60);
    }
    assert_eq!(
        outcomes,
        [
            "converted",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "CONVERTED");
    assert_eq!(view["converted_at"], "2026-04-06T10:00:00Z");
    let trial = stored(&t, &id).await;
    assert_eq!(trial.converted_at, Some(T0));
    let payment = trial.payment.expect("payment stored");
    assert_eq!(payment.session_id.as_deref(), Some("cs_paid"));
    assert_eq!(payment.customer_id.as_deref(), Some("cus_test_1"));
    assert_eq!(payment.subscription_id.as_deref(), Some("sub_for_cs_paid"));
    assert_eq!(trial.checkout, None, "the paid session is no longer open");
}

#[tokio::test]
async fn concurrent_deliveries_convert_once() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let body = completed("evt_race", &id, "cs_race");
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (t, body) = (t.clone(), body.clone());
            tokio::spawn(async move { outcome(&deliver(&t, &body).await) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "converted",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(status(&t, &id).await["status"], "CONVERTED");
}

/// After the conversion, the trial's own session again changes nothing; another session of the
/// same trial paid too is a second subscription: its money is recorded unmatched (kept,
/// recorded, alarmed), never dropped and never a second conversion.
#[tokio::test]
async fn another_payment_event_after_conversion_changes_nothing() {
    let (t, recorder) = app_with_recorder().await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(
        outcome(&deliver(&t, &completed("evt_a", &id, "cs_a")).await),
        "converted"
    );
    t.clock.advance(3600);
    // A second session paid for the same trial, and a late async success for the first.
    for (body, expected) in [
        (completed("evt_b", &id, "cs_b"), "unmatched"),
        (completed("evt_b", &id, "cs_b"), "duplicate"),
        (
            event(
                "evt_c",
                "checkout.session.async_payment_succeeded",
                session("cs_a", &id, "paid"),
            ),
            "already_converted",
        ),
        (completed("evt_a", &id, "cs_a"), "duplicate"),
    ] {
        t.dynamo.reset();
        assert_eq!(outcome(&deliver(&t, &body).await), expected);
        assert!(round_trips(&t) <= 2, "{:?}", t.dynamo.by_operation());
    }
    let trial = stored(&t, &id).await;
    assert_eq!(trial.converted_at, Some(T0));
    assert_eq!(
        trial.payment.unwrap().session_id.as_deref(),
        Some("cs_a"),
        "the first payment stays the one recorded"
    );
    let unmatched = published(&t, &recorder, "trial.payment_unmatched").await;
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0]["reason"], "converted_by_another_session");
    assert_eq!(unmatched[0]["trial_id"], id.as_str());
    assert_eq!(unmatched[0]["checkout_session_id"], "cs_b");
    assert_eq!(unmatched[0]["stripe_subscription_id"], "sub_for_cs_b");
}

/// A `completed` whose payment is on its way, for another session of a trial already
/// converted: nothing to record on the trial, answered `awaiting_payment` (the payment, should
/// it land, is recorded unmatched then).
#[tokio::test]
async fn a_pending_payment_for_a_converted_trial_waits_and_lands_unmatched() {
    let (t, recorder) = app_with_recorder().await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(
        outcome(&deliver(&t, &completed("evt_a", &id, "cs_a")).await),
        "converted"
    );
    let before = stored(&t, &id).await;
    let pending = event(
        "evt_b",
        "checkout.session.completed",
        session("cs_b", &id, "unpaid"),
    );
    assert_eq!(outcome(&deliver(&t, &pending).await), "awaiting_payment");
    assert_eq!(outcome(&deliver(&t, &pending).await), "duplicate");
    assert_eq!(
        stored(&t, &id).await,
        before,
        "nothing written on the trial"
    );
    let landed = event(
        "evt_c",
        "checkout.session.async_payment_succeeded",
        session("cs_b", &id, "paid"),
    );
    assert_eq!(outcome(&deliver(&t, &landed).await), "unmatched");
    let unmatched = published(&t, &recorder, "trial.payment_unmatched").await;
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0]["reason"], "converted_by_another_session");
    assert_eq!(stored(&t, &id).await, before);
}

#[tokio::test]
async fn the_reference_may_come_from_metadata_alone() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let mut object = session("cs_meta", &id, "no_payment_required");
    object["client_reference_id"] = Value::Null;
    let res = deliver(&t, &event("evt_meta", "checkout.session.completed", object)).await;
    assert_eq!(outcome(&res), "converted");
    assert_eq!(status(&t, &id).await["status"], "CONVERTED");
}

#[tokio::test]
async fn a_payment_converts_a_canceled_trial() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let trial = stored(&t, &id).await;
    assert!(writes::cancel(&t, &trial, t.now()).await);
    assert_eq!(status(&t, &id).await["status"], "CANCELED");

    t.clock.advance(DAY);
    t.dynamo.reset();
    let res = deliver(&t, &completed("evt_after_cancel", &id, "cs_1")).await;
    // Money is never dropped: the payment is kept, converts the trial, and is flagged.
    assert_eq!(outcome(&res), "converted_after_cancel");
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "CONVERTED");
    assert_eq!(view["converted_at"], "2026-04-07T10:00:00Z");
    assert!(
        t.dynamo.total() >= 2,
        "the rare path: refused, then the flagged conversion"
    );
}

#[tokio::test]
async fn a_payment_converts_an_expired_trial_past_grace_until_it_is_purged() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let terms = t.terms("growth");
    let policy = trials::domain::TrialPolicy {
        length_secs: terms.trial_length_secs,
        grace_secs: terms.grace_secs,
    };
    // Past expiry and past the grace period; the expire job has run, the purge job not yet.
    t.clock
        .set(T0 + policy.length_secs + policy.grace_secs + 3600);
    let trial = stored(&t, &id).await;
    assert!(writes::expire_write(&t, &trial, t.now()).await);
    assert_eq!(stored(&t, &id).await.status, TrialStatus::Expired);

    let res = deliver(&t, &completed("evt_late", &id, "cs_late")).await;
    assert_eq!(outcome(&res), "converted");
    let trial = stored(&t, &id).await;
    assert_eq!(trial.status, TrialStatus::Converted);
    // The purge job can no longer delete a paying customer.
    let store = &t.app.store;
    let purge = store
        .tx()
        .delete(
            Slot::Trial,
            store
                .purge_delete(&trial, t.now() + 10 * DAY, policy)
                .unwrap(),
        )
        .commit()
        .await
        .unwrap();
    assert!(!purge.committed());
    assert_eq!(status(&t, &id).await["status"], "CONVERTED");
}

#[tokio::test]
async fn async_payments_convert_on_success_only() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    open_checkout(&t, &id, "cs_async").await;
    let pending = event(
        "evt_pending",
        "checkout.session.completed",
        session("cs_async", &id, "unpaid"),
    );
    t.dynamo.reset();
    assert_eq!(outcome(&deliver(&t, &pending).await), "awaiting_payment");
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(outcome(&deliver(&t, &pending).await), "duplicate");
    assert_eq!(status(&t, &id).await["status"], "ACTIVE");

    t.clock.advance(2 * 3600);
    let succeeded = event(
        "evt_succeeded",
        "checkout.session.async_payment_succeeded",
        session("cs_async", &id, "paid"),
    );
    assert_eq!(outcome(&deliver(&t, &succeeded).await), "converted");
    // A failure notice arriving late (out of order) cannot undo the conversion.
    let failed = event(
        "evt_failed_late",
        "checkout.session.async_payment_failed",
        session("cs_async", &id, "unpaid"),
    );
    assert_eq!(outcome(&deliver(&t, &failed).await), "checkout_unchanged");
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "CONVERTED");
    assert_eq!(view["converted_at"], "2026-04-06T12:00:00Z");
}

// ---------------------------------------------------------------------------- sessions closing

#[tokio::test]
async fn expired_after_completed_leaves_the_trial_converted() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    open_checkout(&t, &id, "cs_1").await;
    assert_eq!(
        outcome(&deliver(&t, &completed("evt_done", &id, "cs_1")).await),
        "converted"
    );
    t.clock.advance(DAY);
    for (i, kind) in [
        "checkout.session.expired",
        "checkout.session.async_payment_failed",
    ]
    .into_iter()
    .enumerate()
    {
        let body = event(
            &format!("evt_close_{i}"),
            kind,
            session("cs_1", &id, "unpaid"),
        );
        t.dynamo.reset();
        assert_eq!(outcome(&deliver(&t, &body).await), "checkout_unchanged");
        assert!(round_trips(&t) <= 2, "{:?}", t.dynamo.by_operation());
        assert_eq!(outcome(&deliver(&t, &body).await), "duplicate");
    }
    let trial = stored(&t, &id).await;
    assert_eq!(trial.status, TrialStatus::Converted);
    assert_eq!(trial.converted_at, Some(T0));
    assert_eq!(trial.payment.unwrap().session_id.as_deref(), Some("cs_1"));
}

#[tokio::test]
async fn a_closed_session_is_forgotten_only_while_it_is_the_open_one() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    open_checkout(&t, &id, "cs_old").await;
    // A trial holds one open session at a time: the next opens once the old one has expired.
    t.clock.advance(DAY);
    open_checkout(&t, &id, "cs_new").await;
    // The old session's (late) expiry event must not clear the newer one.
    let old = event(
        "evt_old_expired",
        "checkout.session.expired",
        session("cs_old", &id, "unpaid"),
    );
    assert_eq!(outcome(&deliver(&t, &old).await), "checkout_unchanged");
    assert_eq!(
        stored(&t, &id)
            .await
            .checkout
            .map(|c| c.session_id)
            .as_deref(),
        Some("cs_new")
    );
    let new = event(
        "evt_new_failed",
        "checkout.session.async_payment_failed",
        session("cs_new", &id, "unpaid"),
    );
    t.dynamo.reset();
    assert_eq!(outcome(&deliver(&t, &new).await), "checkout_cleared");
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(stored(&t, &id).await.checkout, None);
    // Its redelivery: the transaction's refusal names the dedupe record, so nothing is read or
    // written again.
    t.dynamo.reset();
    assert_eq!(outcome(&deliver(&t, &new).await), "duplicate");
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(status(&t, &id).await["status"], "ACTIVE");
    // A session for a trial we do not have: recorded, nothing else.
    let stray = event(
        "evt_stray_expired",
        "checkout.session.expired",
        session("cs_x", UNKNOWN_TRIAL, "unpaid"),
    );
    assert_eq!(outcome(&deliver(&t, &stray).await), "checkout_unchanged");
}

// ---------------------------------------------------------------------------- unmatched money

/// An app whose events go to the EventBridge stand-in, and the stand-in.
async fn app_with_recorder() -> (TestApp, EventBridgeRecorder) {
    let recorder = EventBridgeRecorder::start().await;
    let publisher = recorder.publisher("trials-test");
    let t = TestApp::with(
        |c| c.webhook.secrets = vec![Secret::new(SECRET)],
        |_| publisher,
    )
    .await;
    (t, recorder)
}

/// The details of the events of `detail_type` EventBridge accepted, in order, once the stream
/// has delivered what the table holds.
async fn published(t: &TestApp, recorder: &EventBridgeRecorder, detail_type: &str) -> Vec<Value> {
    t.publish_events().await;
    recorder
        .accepted()
        .into_iter()
        .filter(|r| r.detail_type == detail_type)
        .map(|r| r.detail)
        .collect()
}

#[tokio::test]
async fn a_payment_for_no_trial_is_acknowledged_and_recorded_for_operators() {
    let (t, recorder) = app_with_recorder().await;
    let body = completed("evt_orphan", UNKNOWN_TRIAL, "cs_orphan");
    t.dynamo.reset();
    assert_eq!(outcome(&deliver(&t, &body).await), "unmatched");
    assert!(round_trips(&t) <= 2, "{:?}", t.dynamo.by_operation());
    let unmatched = published(&t, &recorder, "trial.payment_unmatched").await;
    assert_eq!(unmatched.len(), 1);
    let detail = &unmatched[0];
    assert_eq!(detail["stripe_event_id"], "evt_orphan");
    assert_eq!(detail["reason"], "trial_not_found");
    assert_eq!(detail["trial_id"], UNKNOWN_TRIAL);
    assert_eq!(detail["checkout_session_id"], "cs_orphan");
    assert_eq!(detail["stripe_customer_id"], "cus_test_1");
    assert_eq!(detail["stripe_subscription_id"], "sub_for_cs_orphan");
    assert_eq!(detail["amount_total"], 4900);
    // The session's metadata leaves the table redacted (it may carry anything a caller put in
    // it); the event item in the table keeps it for `trialctl events`.
    assert_eq!(detail["metadata"], "<redacted>");

    // Stripe's retries change nothing and tell operators nothing twice.
    t.clock.advance(600);
    assert_eq!(outcome(&deliver(&t, &body).await), "duplicate");
    assert_eq!(
        published(&t, &recorder, "trial.payment_unmatched")
            .await
            .len(),
        1
    );

    // No usable reference at all.
    let mut object = session("cs_noref", "not-a-trial", "paid");
    object["metadata"] = json!({});
    let res = deliver(
        &t,
        &event("evt_noref", "checkout.session.completed", object),
    )
    .await;
    assert_eq!(outcome(&res), "unmatched");
    let unmatched = published(&t, &recorder, "trial.payment_unmatched").await;
    assert_eq!(unmatched.len(), 2);
    assert_eq!(unmatched[1]["reason"], "not_our_session");
    assert_eq!(unmatched[1]["client_reference_id"], "not-a-trial");
}

#[tokio::test]
async fn a_conversion_publishes_one_event_with_stripes_ids() {
    let (t, recorder) = app_with_recorder().await;
    let id = t.start_trial(ORG, "growth").await;
    let body = completed("evt_pub", &id, "cs_pub");
    for _ in 0..3 {
        deliver(&t, &body).await;
    }
    let converted = published(&t, &recorder, "trial.converted").await;
    assert_eq!(converted.len(), 1);
    let detail = &converted[0];
    assert_eq!(detail["trial_id"], id.as_str());
    assert_eq!(detail["org_id"], ORG);
    assert_eq!(detail["plan"], "growth");
    assert_eq!(detail["stripe_event_id"], "evt_pub");
    assert_eq!(detail["checkout_session_id"], "cs_pub");
    assert_eq!(detail["stripe_customer_id"], "cus_test_1");
    assert_eq!(detail["stripe_subscription_id"], "sub_for_cs_pub");
}

// ---------------------------------------------------------------------------- failures

#[tokio::test]
async fn a_dynamodb_outage_is_a_5xx_and_stripes_retry_converts() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let body = completed("evt_outage", &id, "cs_outage");
    t.dynamo.set_failing(true);
    let res = deliver(&t, &body).await;
    assert!(res.status >= 500, "{} {}", res.status, res.body);
    assert_eq!(res.error_code(), "service_unavailable");
    t.dynamo.set_failing(false);
    assert_eq!(status(&t, &id).await["status"], "ACTIVE");

    t.clock.advance(60);
    assert_eq!(outcome(&deliver(&t, &body).await), "converted");
    let view = status(&t, &id).await;
    assert_eq!(view["status"], "CONVERTED");
    assert_eq!(view["converted_at"], "2026-04-06T10:01:00Z");

    // The same for an event that only has to be recorded.
    let other = event(
        "evt_outage_2",
        "checkout.session.expired",
        session("cs_x", &id, "unpaid"),
    );
    t.dynamo.set_failing(true);
    assert!(deliver(&t, &other).await.status >= 500);
    t.dynamo.set_failing(false);
    assert_eq!(outcome(&deliver(&t, &other).await), "checkout_unchanged");
}

// ---------------------------------------------------------------------------- binding

#[tokio::test]
async fn a_payment_converts_only_through_a_session_we_created_for_that_trial() {
    let (t, recorder) = app_with_recorder().await;
    let id = t.start_trial(ORG, "growth").await;
    let other = t.start_trial("org_b", "growth").await;
    // Every signed payment below names our trial somewhere a buyer or another merchant
    // integration can put it; none is a session convert made for it.
    let ours = || session("cs_x", &id, "paid");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut s = ours();
        edit(&mut s);
        s
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a Payment Link: the reference only, no metadata",
            with(&|s| s["metadata"] = Value::Null),
            "not_our_session",
        ),
        (
            "metadata without the plan",
            with(&|s| s["metadata"] = json!({ "trial_id": id, "org_id": ORG })),
            "not_our_session",
        ),
        (
            "made for another org",
            with(&|s| s["metadata"]["org_id"] = json!("org_b")),
            "binding_mismatch",
        ),
        (
            "made for another plan",
            with(&|s| s["metadata"]["plan"] = json!("pro")),
            "binding_mismatch",
        ),
        (
            "a one-time payment, not a subscription",
            with(&|s| s["mode"] = json!("payment")),
            "not_our_session",
        ),
        (
            "the reference names our trial, the metadata another",
            with(&|s| {
                s["metadata"] = json!({ "trial_id": other, "org_id": "org_b", "plan": "growth" })
            }),
            "not_our_session",
        ),
    ];
    for (i, (name, object, _)) in cases.iter().enumerate() {
        t.dynamo.reset();
        let body = event(
            &format!("evt_bind_{i}"),
            "checkout.session.completed",
            object.clone(),
        );
        assert_eq!(outcome(&deliver(&t, &body).await), "unmatched", "{name}");
        // Recorded (a redelivery is a duplicate), never converting anything.
        assert_eq!(outcome(&deliver(&t, &body).await), "duplicate", "{name}");
        assert_eq!(stored(&t, &id).await.status, TrialStatus::Active, "{name}");
        assert_eq!(
            stored(&t, &other).await.status,
            TrialStatus::Active,
            "{name}"
        );
    }
    let unmatched = published(&t, &recorder, "trial.payment_unmatched").await;
    let reasons: Vec<&str> = unmatched
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = cases.iter().map(|(_, _, reason)| *reason).collect();
    assert_eq!(reasons, expected);
    for detail in &unmatched {
        assert_eq!(detail["checkout_session_id"], "cs_x");
        assert_eq!(detail["amount_total"], 4900);
    }
    // The session convert made converts.
    let body = event("evt_bind_ok", "checkout.session.completed", ours());
    assert_eq!(outcome(&deliver(&t, &body).await), "converted");
    assert_eq!(stored(&t, &id).await.status, TrialStatus::Converted);
    assert_eq!(stored(&t, &other).await.status, TrialStatus::Active);
}

#[tokio::test]
async fn a_delayed_payment_is_bound_like_any_other() {
    let t = app().await;
    let id = t.start_trial(ORG, "growth").await;
    let mut foreign = session("cs_foreign", &id, "unpaid");
    foreign["metadata"]["org_id"] = json!("org_b");
    let res = deliver(&t, &event("evt_f", "checkout.session.completed", foreign)).await;
    assert_eq!(outcome(&res), "unmatched");
    assert_eq!(stored(&t, &id).await.pending, None, "holds no purge back");
    open_checkout(&t, &id, "cs_ours").await;
    let res = deliver(
        &t,
        &event(
            "evt_p",
            "checkout.session.completed",
            session("cs_ours", &id, "unpaid"),
        ),
    )
    .await;
    assert_eq!(outcome(&res), "awaiting_payment");
    assert_eq!(
        stored(&t, &id)
            .await
            .pending
            .map(|p| p.session_id)
            .as_deref(),
        Some("cs_ours")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_purge_keeps_a_trial_whose_payment_started_after_it_read_the_index() {
    let t = app().await;
    let trial = writes::seed_trial(&t, ORG, T0).await;
    // The customer's session, opened by a convert on the first day (long expired by the purge).
    writes::open_checkout(&t, trial.id.as_str(), "cs_bank_debit").await;
    let policy = t.policy();
    t.clock.set(trial.expires_at);
    assert_eq!(jobs::run(&t.app, Job::Expire, None).await.processed, 1);
    let grace_end = trial.expires_at + policy.grace_secs;
    // The purge read the index; before its delete goes out, the customer's bank debit is
    // reported (`completed`, unpaid) and recorded on the trial.
    let binding = SessionBinding {
        trial_id: trial.id.clone(),
        org_id: OrgId::parse(ORG).unwrap(),
        plan: Plan::parse("growth").unwrap(),
    };
    t.clock.set(grace_end);
    let held = t.dynamo.hold_next("TransactWriteItems");
    let job = {
        let app = t.app.clone();
        tokio::spawn(async move { jobs::run(&app, Job::Purge, None).await })
    };
    held.reached().await;
    let store = &t.app.store;
    let update = store
        .pending_update(&binding, "cs_bank_debit", grace_end - 1)
        .unwrap();
    let written = store
        .tx()
        .update(Slot::Trial, update)
        .commit()
        .await
        .unwrap();
    assert!(written.committed(), "the payment on its way is recorded");
    held.release();
    let purge = job.await.unwrap();
    assert_eq!((purge.processed, purge.skipped), (0, 1), "{purge:?}");
    let kept = stored(&t, trial.id.as_str()).await;
    assert_eq!(
        kept.pending.map(|p| p.session_id).as_deref(),
        Some("cs_bank_debit")
    );
    // Days later the debit succeeds: the trial is there to convert.
    t.clock.advance(4 * DAY);
    assert_eq!(jobs::run(&t.app, Job::Purge, None).await.processed, 0);
    let paid = event(
        "evt_debit_ok",
        "checkout.session.async_payment_succeeded",
        session("cs_bank_debit", trial.id.as_str(), "paid"),
    );
    assert_eq!(outcome(&deliver(&t, &paid).await), "converted");
}
