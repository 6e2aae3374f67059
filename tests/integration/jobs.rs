//! The scheduled jobs against embedded dynoxide with an injected clock: the boundaries, races
//! with convert and cancel, the purge's guard, the read bound and the deadline.
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use trials::clock::{Clock, ManualClock};
use trials::domain::{OrgId, TrialId, TrialStatus};
use trials::jobs::{self, Job, RunReport};
use trials::store::schema::{shard_of, trial_pk, DUE_AT, DUE_PK, PK, SK, TRIAL_SK};
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::{Call, TestApp, DAY, T0};

pub use trials_tests::writes::{cancel, convert, seed_trial, stored};

pub async fn expire(t: &TestApp) -> RunReport {
    jobs::run(&t.app, Job::Expire, None).await
}

pub async fn purge(t: &TestApp) -> RunReport {
    jobs::run(&t.app, Job::Purge, None).await
}

/// The trial's raw item (to read its place in the due index).
pub async fn raw(t: &TestApp, id: &str) -> HashMap<String, AttributeValue> {
    t.app
        .store
        .client()
        .get_item()
        .table_name(t.app.store.table_name())
        .key(
            PK,
            AttributeValue::S(trial_pk(&TrialId::parse(id).unwrap())),
        )
        .key(SK, AttributeValue::S(TRIAL_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .unwrap_or_default()
}

/// `(due_pk, due_at)` of the trial, if it waits in the due index.
pub async fn due(t: &TestApp, id: &str) -> Option<(String, i64)> {
    let item = raw(t, id).await;
    let pk = item.get(DUE_PK)?.as_s().ok()?.clone();
    let at = item.get(DUE_AT)?.as_n().ok()?.parse().ok()?;
    Some((pk, at))
}

/// Ids of the event items in the table (a test-only scan).
pub async fn event_items(t: &TestApp) -> Vec<String> {
    let out = t
        .app
        .store
        .client()
        .scan()
        .table_name(t.app.store.table_name())
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", AttributeValue::S("EVENT#".into()))
        .send()
        .await
        .expect("scan");
    let mut ids: Vec<String> = out
        .items()
        .iter()
        .filter_map(|i| i.get("event_id")?.as_s().ok().cloned())
        .collect();
    ids.sort();
    ids
}

fn shard(t: &TestApp, id: &str) -> u32 {
    shard_of(id, t.app.store.shards())
}

#[tokio::test]
async fn expire_takes_a_trial_at_expires_at_and_not_a_second_before() {
    // No ending-soon reminders: the run before the end must read nothing at all.
    let t =
        TestApp::with_config(|c| c.catalog.override_lifecycle(None, None, Some(Vec::new()))).await;
    let a = t.start_trial("org_a", "growth").await;
    t.clock.set(T0 + 1);
    let b = t.start_trial("org_b", "growth").await;
    let expires_a = T0 + 7 * DAY;

    // One second before A's end: nothing is due, nothing is read.
    t.clock.set(expires_a - 1);
    let r = expire(&t).await;
    assert_eq!(
        (r.processed, r.skipped, r.failed, r.complete),
        (0, 0, 0, true)
    );
    assert_eq!(r.items_read, 0);
    assert_eq!(stored(&t, &a).await.unwrap().status, TrialStatus::Active);

    // At A's end (one second before B's): A alone.
    t.clock.set(expires_a);
    let r = expire(&t).await;
    assert_eq!(
        (r.processed, r.skipped, r.failed, r.complete),
        (1, 0, 0, true)
    );
    assert_eq!(stored(&t, &a).await.unwrap().status, TrialStatus::Expired);
    assert_eq!(stored(&t, &b).await.unwrap().status, TrialStatus::Active);
    // A now waits in the purge queue for the end of its grace.
    let grace = t.terms("growth").grace_secs;
    assert_eq!(
        due(&t, &a).await,
        Some((format!("PURGE#{}", shard(&t, &a)), expires_a + grace))
    );

    // One second later: B is due; A is not read again.
    t.clock.set(expires_a + 1);
    let r = expire(&t).await;
    assert_eq!((r.processed, r.skipped, r.items_read), (1, 0, 1));
    assert_eq!(stored(&t, &b).await.unwrap().status, TrialStatus::Expired);
    // Status agrees with the stored state.
    let res = t.send(Call::status(&a).org("org_a")).await;
    assert_eq!(res.json()["status"], "EXPIRED");
}

#[tokio::test]
async fn purge_takes_expired_and_canceled_trials_at_the_end_of_grace_and_keeps_the_guard() {
    let t = TestApp::new().await;
    let grace = t.terms("growth").grace_secs;
    let expired = t.start_trial("org_exp", "growth").await;
    let second = t.start_trial("org_second", "growth").await;
    let canceled_trial = seed_trial(&t, "org_can", T0).await;
    let canceled = canceled_trial.id.to_string();
    let canceled_at = T0 + DAY;
    t.clock.set(canceled_at);
    assert!(cancel(&t, &canceled_trial, canceled_at).await);
    assert_eq!(
        due(&t, &canceled).await,
        Some((
            format!("PURGE#{}", shard(&t, &canceled)),
            canceled_at + grace
        ))
    );

    // CANCELED: one second before the end of its grace, then at it.
    t.clock.set(canceled_at + grace - 1);
    let r = purge(&t).await;
    assert_eq!((r.processed, r.failed, r.items_read), (0, 0, 0));
    assert!(stored(&t, &canceled).await.is_some());
    t.clock.set(canceled_at + grace);
    let r = purge(&t).await;
    assert_eq!(
        (r.processed, r.skipped, r.failed, r.complete),
        (1, 0, 0, true)
    );
    assert!(stored(&t, &canceled).await.is_none());

    // The canceled trial left the expire queue; the other two expire on time. A trial the
    // expire job has not reached yet stays ACTIVE.
    let expires = T0 + 7 * DAY;
    t.clock.set(expires);
    assert_eq!(expire(&t).await.processed, 2);
    let late = seed_trial(&t, "org_later", T0).await.id.to_string();

    // EXPIRED: one second before the end of grace, then at it.
    t.clock.set(expires + grace - 1);
    let r = purge(&t).await;
    assert_eq!((r.processed, r.failed, r.items_read), (0, 0, 0));
    assert!(stored(&t, &expired).await.is_some());
    let res = t.send(Call::status(&expired).org("org_exp")).await;
    assert_eq!(
        (res.status, res.json()["status"].clone()),
        (200, json!("EXPIRED"))
    );

    t.clock.set(expires + grace);
    let r = purge(&t).await;
    assert_eq!(
        (r.processed, r.skipped, r.failed, r.complete),
        (2, 0, 0, true)
    );
    assert!(stored(&t, &expired).await.is_none());
    assert!(stored(&t, &second).await.is_none());
    // A trial the expire job has not reached is not in the purge queue yet: the expire job
    // moves it there already due, and the next purge takes it.
    assert_eq!(stored(&t, &late).await.unwrap().status, TrialStatus::Active);
    assert_eq!(expire(&t).await.processed, 1);
    assert_eq!(purge(&t).await.processed, 1);
    assert!(stored(&t, &late).await.is_none());

    for (org, id) in [("org_exp", &expired), ("org_can", &canceled)] {
        let guard = t
            .app
            .store
            .get_guard(&OrgId::parse(org).unwrap())
            .await
            .unwrap()
            .expect("the guard survives the purge");
        assert!(guard.purged, "{org}");
        assert_eq!(
            guard.trial_id.as_ref().map(|i| i.as_str()),
            Some(id.as_str())
        );

        // Its org is told the trial expired (410); any other org, that there is none (404).
        let res = t.send(Call::status(id).org(org)).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (410, "trial_expired")
        );
        let res = t.send(Call::status(id).org("org_other")).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (404, "trial_not_found")
        );

        // And the org still cannot start a second trial.
        let res = t
            .send(Call::start("pro", &format!("again-{org}")).org(org))
            .await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (409, "trial_already_exists"),
            "{}",
            res.body
        );
    }
    // Nothing left to do.
    let r = purge(&t).await;
    assert_eq!((r.processed, r.items_read), (0, 0));
}

#[tokio::test]
async fn a_converted_trial_is_neither_expired_nor_purged() {
    let t = TestApp::new().await;
    let trial = seed_trial(&t, "org_paid", T0).await;
    let id = trial.id.to_string();
    assert!(convert(&t, &trial, T0 + DAY).await);
    assert_eq!(due(&t, &id).await, None);
    t.clock.set(T0 + 365 * DAY);
    assert_eq!(expire(&t).await.items_read, 0);
    assert_eq!(purge(&t).await.items_read, 0);
    assert_eq!(
        stored(&t, &id).await.unwrap().status,
        TrialStatus::Converted
    );
}

/// Runs the expire job with its trial write held at the store boundary: the job has read the
/// due trial and decided; `between` runs before its write reaches DynamoDB.
async fn expire_with_write_held<F, Fut>(t: &TestApp, between: F) -> RunReport
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let held = t.dynamo.hold_next("TransactWriteItems");
    let job = {
        let t = t.clone();
        tokio::spawn(async move { expire(&t).await })
    };
    held.reached().await;
    between(t.clone()).await;
    held.release();
    job.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_racing_cancel_exactly_one_wins_in_either_order() {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher("trials-test")).await;
    let grace = t.policy().grace_secs;

    // The job first: it expires the trial; the cancel that follows is refused.
    let first = seed_trial(&t, "org_job_first", T0).await;
    t.clock.set(first.expires_at);
    let report = expire(&t).await;
    assert_eq!((report.processed, report.skipped), (1, 0));
    assert!(
        !cancel(&t, &first, first.expires_at - 1).await,
        "cancel loses"
    );
    let now = stored(&t, first.id.as_str()).await.unwrap();
    assert_eq!((now.status, now.canceled_at), (TrialStatus::Expired, None));
    assert_eq!(
        due(&t, first.id.as_str()).await.unwrap().1,
        first.expires_at + grace
    );

    // The cancel between the job's read and its write (another host's clock a second behind):
    // the job's condition fails on the item, it counts the trial skipped.
    let second = seed_trial(&t, "org_cancel_first", T0 + DAY).await;
    t.clock.set(second.expires_at);
    let racer = second.clone();
    let report = expire_with_write_held(&t, move |t| async move {
        assert!(
            cancel(&t, &racer, racer.expires_at - 1).await,
            "cancel wins"
        );
    })
    .await;
    assert_eq!((report.processed, report.skipped, report.failed), (0, 1, 0));
    let now = stored(&t, second.id.as_str()).await.unwrap();
    assert_eq!(now.status, TrialStatus::Canceled);
    assert_eq!(now.canceled_at, Some(second.expires_at - 1));
    assert_eq!(
        due(&t, second.id.as_str()).await.unwrap().1,
        second.expires_at - 1 + grace
    );

    // Each trial's one transition, and its event alone, reach the bus.
    t.publish_events().await;
    assert_eq!(rec.count(&format!("{}.expired", first.id)), 1);
    assert_eq!(rec.count(&format!("{}.canceled", first.id)), 0);
    assert_eq!(rec.count(&format!("{}.canceled", second.id)), 1);
    assert_eq!(rec.count(&format!("{}.expired", second.id)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_racing_convert_never_loses_the_payment_in_either_order() {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher("trials-test")).await;

    // The job first: EXPIRED, then the payment still converts it (within grace).
    let first = seed_trial(&t, "org_job_first", T0).await;
    t.clock.set(first.expires_at);
    assert_eq!(expire(&t).await.processed, 1);
    assert!(
        convert(&t, &first, first.expires_at).await,
        "money is never refused"
    );

    // The payment between the job's read and its write: the expiry never overwrites it.
    let second = seed_trial(&t, "org_paid_first", T0 + DAY).await;
    t.clock.set(second.expires_at);
    let racer = second.clone();
    let report = expire_with_write_held(&t, move |t| async move {
        assert!(convert(&t, &racer, racer.expires_at).await);
    })
    .await;
    assert_eq!((report.processed, report.skipped, report.failed), (0, 1, 0));

    t.publish_events().await;
    for (trial, expired) in [(&first, 1), (&second, 0)] {
        let id = trial.id.as_str();
        assert_eq!(stored(&t, id).await.unwrap().status, TrialStatus::Converted);
        assert_eq!(due(&t, id).await, None, "out of the due index");
        assert_eq!(rec.count(&format!("{id}.converted")), 1);
        assert_eq!(rec.count(&format!("{id}.expired")), expired);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_runs_expire_each_trial_once() {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher("trials-test")).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(seed_trial(&t, &format!("org_{i}"), T0).await.id.to_string());
    }
    t.clock.set(T0 + 7 * DAY);
    // The second run reads the index before the first writes: every trial it then finds moved
    // on is skipped, never expired twice.
    let held = t.dynamo.hold_next("TransactWriteItems");
    let first = {
        let t = t.clone();
        tokio::spawn(async move { expire(&t).await })
    };
    held.reached().await;
    let second = {
        let t = t.clone();
        tokio::spawn(async move { expire(&t).await })
    };
    // Let the second run read and write everything it can, then the first one goes on.
    let b = second.await.unwrap();
    held.release();
    let a = first.await.unwrap();
    let c = expire(&t).await;
    assert_eq!(a.processed + b.processed + c.processed, 40);
    assert_eq!(a.failed + b.failed + c.failed, 0);
    assert!(
        a.skipped >= 1,
        "the held run found its trial expired by the other: {a:?}"
    );
    assert_eq!(c.items_read, 0, "nothing left due");
    t.publish_events().await;
    for id in &ids {
        assert_eq!(rec.count(&format!("{id}.expired")), 1);
    }
}

#[tokio::test]
async fn a_run_reads_the_due_trials_not_the_stored_ones() {
    let t = TestApp::new().await;
    let shards = u64::from(t.app.store.shards());
    // 5,000 trials not due (started a day later) and 50 due.
    let mut seeds = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let t = t.clone();
        seeds.spawn(async move {
            for i in (worker..5_000).step_by(8) {
                seed_trial(&t, &format!("org_idle_{i}"), T0 + DAY).await;
            }
        });
    }
    for i in 0..50 {
        seed_trial(&t, &format!("org_due_{i}"), T0).await;
    }
    while let Some(done) = seeds.join_next().await {
        done.unwrap();
    }

    t.clock.set(T0 + 7 * DAY);
    t.dynamo.reset();
    let r = expire(&t).await;
    assert_eq!((r.processed, r.failed, r.complete), (50, 0, true));
    // Exactly the due items are read: one page per shard of each of the expire job's queues
    // (resume, expire, remind; the seeded trials have no reminder cursors).
    assert_eq!(r.items_read, 50);
    assert_eq!(r.queries, 3 * shards);
    assert_eq!(t.dynamo.count("Query") as u64, r.queries);
    assert_eq!(t.dynamo.count("Scan"), 0);
    assert_eq!(t.dynamo.count("TransactWriteItems"), 50);

    // The purge at the end of the due trials' grace reads them alone too: the 5,000 wait in
    // the expire queue, not in the purge queue.
    t.clock.set(T0 + 10 * DAY);
    t.dynamo.reset();
    let r = purge(&t).await;
    assert_eq!((r.processed, r.failed, r.complete), (50, 0, true));
    assert_eq!(r.items_read, 50);
    assert_eq!(r.queries, shards);
    assert_eq!(t.dynamo.count("Scan"), 0);
}

/// A clock that moves `step_ms` each time it is read: a run that takes time.
struct TickingClock {
    inner: ManualClock,
    step_ms: i64,
}

impl Clock for TickingClock {
    fn now_millis(&self) -> i64 {
        self.inner.advance_millis(self.step_ms);
        self.inner.now_millis()
    }
}

#[tokio::test]
async fn a_run_stops_before_its_deadline_and_the_next_one_resumes() {
    // One shard, 250 due trials: three pages of one queue.
    let t = TestApp::with_config(|c| c.due_shards = 1).await;
    for i in 0..250 {
        seed_trial(&t, &format!("org_{i}"), T0).await;
    }
    t.clock.set(T0 + 7 * DAY);

    // A deadline already inside the safety margin: nothing is started.
    let now_ms = t.clock.now_millis();
    let r = jobs::run(&t.app, Job::Expire, Some(now_ms + jobs::SAFETY_MARGIN_MS)).await;
    assert_eq!((r.processed, r.queries, r.complete), (0, 0, false));

    // A deadline that comes during the run: part of the work, then a clean stop.
    let mut slow = t.app.clone();
    slow.clock = Arc::new(TickingClock {
        inner: t.clock.clone(),
        step_ms: 100,
    });
    let deadline = t.clock.now_millis() + jobs::SAFETY_MARGIN_MS + 1_000;
    let first = jobs::run(&slow, Job::Expire, Some(deadline)).await;
    assert!(!first.complete);
    assert!(
        first.processed > 0 && first.processed < 250,
        "partial: {first:?}"
    );
    assert_eq!(first.failed, 0);

    // The next run finishes, reading only what is left.
    let second = expire(&t).await;
    assert!(second.complete);
    assert_eq!(first.processed + second.processed, 250, "{second:?}");
    assert_eq!(second.items_read, 250 - first.processed);
    assert!(second.queries >= 2, "paged: {second:?}");
    let third = expire(&t).await;
    assert_eq!((third.processed, third.items_read), (0, 0));

    // The purge job honours its deadline the same way.
    t.clock.set(T0 + 10 * DAY);
    let deadline = t.clock.now_millis() + jobs::SAFETY_MARGIN_MS + 1_000;
    let mut slow = t.app.clone();
    slow.clock = Arc::new(TickingClock {
        inner: t.clock.clone(),
        step_ms: 100,
    });
    let first = jobs::run(&slow, Job::Purge, Some(deadline)).await;
    assert!(!first.complete && first.processed > 0 && first.processed < 250);
    let second = purge(&t).await;
    assert!(second.complete);
    assert_eq!(first.processed + second.processed, 250);
}

/// Runs the purge job with its trial write held at the store boundary (see
/// `expire_with_write_held`).
async fn purge_with_write_held<F, Fut>(t: &TestApp, between: F) -> RunReport
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let held = t.dynamo.hold_next("TransactWriteItems");
    let job = {
        let t = t.clone();
        tokio::spawn(async move { purge(&t).await })
    };
    held.reached().await;
    between(t.clone()).await;
    held.release();
    job.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_between_the_purges_read_and_its_delete_keeps_the_trial() {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher("trials-test")).await;
    let trial = seed_trial(&t, "org_late_payment", T0).await;
    let grace = t.policy().grace_secs;
    t.clock.set(trial.expires_at);
    assert_eq!(expire(&t).await.processed, 1);
    t.clock.set(trial.expires_at + grace);
    let racer = trial.clone();
    let report = purge_with_write_held(&t, move |t| async move {
        assert!(convert(&t, &racer, t.now()).await, "the payment converts");
    })
    .await;
    assert_eq!((report.processed, report.skipped, report.failed), (0, 1, 0));
    let id = trial.id.as_str();
    assert_eq!(stored(&t, id).await.unwrap().status, TrialStatus::Converted);
    t.publish_events().await;
    assert_eq!(rec.count(&format!("{id}.converted")), 1);
    assert_eq!(
        rec.count(&format!("{id}.purged")),
        0,
        "no purged event for a payer"
    );
    let guard = t.app.store.get_guard(&trial.org_id).await.unwrap().unwrap();
    assert!(!guard.purged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_recorded_between_the_purges_read_and_its_delete_keeps_the_trial() {
    let t = TestApp::new().await;
    let trial = seed_trial(&t, "org_late_convert", T0).await;
    let grace = t.policy().grace_secs;
    let grace_end = trial.expires_at + grace;
    t.clock.set(trial.expires_at);
    assert_eq!(expire(&t).await.processed, 1);
    t.clock.set(grace_end);
    // A convert that judged the trial a second before grace ended records its session while
    // the purge is between its read of the index and its delete.
    let racer = trial.clone();
    let report = purge_with_write_held(&t, move |t| async move {
        let store = &t.app.store;
        let checkout = trials::domain::trial::Checkout {
            session_id: "cs_late".into(),
            url: "https://checkout.example/cs_late".into(),
            expires_at: grace_end + DAY,
            trial_end: None,
        };
        let written = store
            .tx()
            .update(
                trials::store::Slot::Trial,
                store
                    .checkout_update(&racer, &checkout, grace_end - 1, t.policy())
                    .unwrap(),
            )
            .commit()
            .await
            .unwrap();
        assert!(written.committed(), "the late convert recorded its session");
    })
    .await;
    assert_eq!((report.processed, report.skipped, report.failed), (0, 1, 0));
    let kept = stored(&t, trial.id.as_str()).await.expect("not deleted");
    assert_eq!(kept.checkout.unwrap().session_id, "cs_late");
    // Once the session has ended, the next run purges.
    t.clock.set(grace_end + DAY);
    assert_eq!(purge(&t).await.processed, 1);
    assert!(stored(&t, trial.id.as_str()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_extension_between_the_purges_read_and_its_delete_keeps_the_trial() {
    let t = TestApp::new().await;
    let trial = seed_trial(&t, "org_extended", T0).await;
    let grace = t.policy().grace_secs;
    t.clock.set(trial.expires_at);
    assert_eq!(expire(&t).await.processed, 1);
    t.clock.set(trial.expires_at + grace);
    // Its end moves a day later (an operator's extension) after the purge read the index, so
    // its grace now ends a day from now: only the grace re-check in the delete's condition
    // stands between the trial and deletion. (A day, not more: a cutoff off by as much as the
    // grace period either way must still delete nothing.)
    let id = trial.id.clone();
    let report = purge_with_write_held(&t, move |t| async move {
        t.app
            .store
            .client()
            .update_item()
            .table_name(t.app.store.table_name())
            .key(PK, AttributeValue::S(trial_pk(&id)))
            .key(SK, AttributeValue::S(TRIAL_SK.into()))
            .update_expression("SET expires_at = expires_at + :day")
            .expression_attribute_values(":day", AttributeValue::N(DAY.to_string()))
            .send()
            .await
            .unwrap();
    })
    .await;
    assert_eq!((report.processed, report.skipped, report.failed), (0, 1, 0));
    assert!(stored(&t, trial.id.as_str()).await.is_some(), "not deleted");
}
