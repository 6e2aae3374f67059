//! Domain events through the real `aws-sdk-eventbridge` client to a local `PutEvents`
//! recorder: each transition once, failed entries retried, an outage loses nothing.
use trials::domain::events::SOURCE;
use trials::store::outbox::OUTBOX_RETRY_AFTER_SECS;
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::{TestApp, DAY, T0};

use crate::jobs::{cancel, convert, expire, outbox, purge, seed_trial, stored};

const BUS: &str = "trials-test-bus";

async fn app_with_recorder() -> (TestApp, EventBridgeRecorder) {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher(BUS)).await;
    (t, rec)
}

#[tokio::test]
async fn every_transition_publishes_its_event_once() {
    let (t, rec) = app_with_recorder().await;
    let grace = t.app.config.policy.grace_secs;
    let expiring = t.start_trial("org_exp", "growth").await;
    let canceled = t.start_trial("org_can", "starter").await;
    let converted = t.start_trial("org_conv", "pro").await;

    let canceled_at = T0 + DAY;
    t.clock.set(canceled_at);
    assert!(cancel(&t, &stored(&t, &canceled).await.unwrap(), canceled_at).await);
    assert!(convert(&t, &stored(&t, &converted).await.unwrap(), canceled_at).await);

    t.clock.set(T0 + 7 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    t.clock.set(T0 + 7 * DAY + grace);
    assert_eq!(purge(&t).await.processed, 2);

    // Later runs find nothing left to publish.
    t.clock.advance(OUTBOX_RETRY_AFTER_SECS + 1);
    let r = expire(&t).await;
    assert_eq!(
        (r.processed, r.events_republished, r.complete),
        (0, 0, true)
    );
    assert_eq!(purge(&t).await.processed, 0);
    assert!(outbox(&t).await.is_empty());

    let mut expected = vec![
        format!("{expiring}.started"),
        format!("{canceled}.started"),
        format!("{converted}.started"),
        format!("{canceled}.canceled"),
        format!("{converted}.converted"),
        format!("{expiring}.expired"),
        format!("{expiring}.purged"),
        format!("{canceled}.purged"),
    ];
    let mut got = rec.event_ids();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "each transition once");

    for e in rec.accepted() {
        assert_eq!(e.source, SOURCE);
        assert_eq!(e.bus, BUS);
        // The detail names its type and its deterministic id, `<trial>.<transition>`.
        assert_eq!(e.detail["type"], e.detail_type.as_str());
        let id = e.event_id().to_owned();
        let trial = e.detail["trial_id"].as_str().unwrap();
        assert_eq!(id, format!("{trial}.{}", &e.detail_type["trial.".len()..]));
        for field in ["org_id", "plan", "occurred_at"] {
            assert!(e.detail[field].is_string(), "{field} in {}", e.detail);
        }
    }
    let by_id = |id: String| {
        rec.accepted()
            .into_iter()
            .find(|e| e.event_id() == id)
            .unwrap()
            .detail
    };
    let expired = by_id(format!("{expiring}.expired"));
    assert_eq!(expired["occurred_at"], "2026-04-13T10:00:00Z");
    assert_eq!(expired["grace_period_ends_at"], "2026-04-16T10:00:00Z");
    let purged = by_id(format!("{canceled}.purged"));
    assert_eq!(purged["status"], "CANCELED");
    assert_eq!(purged["canceled_at"], "2026-04-07T10:00:00Z");
    assert_eq!(by_id(format!("{expiring}.purged"))["status"], "EXPIRED");
}

#[tokio::test]
async fn failed_entries_are_retried_until_accepted() {
    let (t, rec) = app_with_recorder().await;
    // The API's own publish: its one entry fails once, the retry is accepted.
    rec.fail_entries(1, |e| e.detail_type == "trial.started");
    let id = t.start_trial("org_a", "growth").await;
    assert_eq!(rec.count(&format!("{id}.started")), 1);
    assert_eq!(rec.failed_entries(), 1);
    assert_eq!(rec.calls(), vec![1, 1]);

    // The expire job's publish of 12 events: two batches; three entries fail once (the rest
    // of their call is accepted) and only they are sent again.
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(seed_trial(&t, &format!("org_{i}"), T0).await.id.to_string());
    }
    for unlucky in &ids[3..6] {
        let unlucky = format!("{unlucky}.expired");
        rec.fail_entries(1, move |e| e.event_id() == unlucky);
    }
    let before = rec.calls().len();
    t.clock.set(T0 + 7 * DAY);
    let r = expire(&t).await;
    assert_eq!((r.processed, r.failed), (13, 0));
    for id in ids.iter().chain([&id]) {
        assert_eq!(rec.count(&format!("{id}.expired")), 1, "{id}");
    }
    assert_eq!(rec.failed_entries(), 4);
    let calls = &rec.calls()[before..];
    assert!(calls.iter().all(|&n| n <= 10), "batches of 10: {calls:?}");
    assert_eq!(
        calls.iter().sum::<usize>(),
        13 + 3,
        "only failed entries resent"
    );
    assert!(outbox(&t).await.is_empty());
}

#[tokio::test]
async fn an_outage_never_loses_an_event() {
    let (t, rec) = app_with_recorder().await;
    rec.set_outage(true);
    // The API answers through the outage: the change is committed, its event waits.
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(t.start_trial(&format!("org_{i}"), "growth").await);
    }
    assert!(rec.accepted().is_empty());
    assert_eq!(outbox(&t).await.len(), 12);

    // The expire job commits its transitions; their events join the outbox. The stranded
    // ones it tries once and leaves.
    t.clock.set(T0 + 7 * DAY);
    let r = expire(&t).await;
    assert_eq!(r.processed, 12);
    assert_eq!(r.events_republished, 0);
    assert!(r.events_failed > 0);
    assert!(
        !r.complete,
        "the outbox sweep stopped at the first refused batch"
    );
    assert_eq!(outbox(&t).await.len(), 24);

    // The purge job does not delete a trial whose `trial.purged` it could not publish.
    t.clock.set(T0 + 10 * DAY);
    let r = purge(&t).await;
    assert_eq!((r.processed, r.complete), (0, false));
    assert!(r.failed > 0);
    for id in &ids {
        assert!(stored(&t, id).await.is_some(), "{id} kept");
    }
    assert!(rec.accepted().is_empty());

    // The bus is back: the next runs publish everything, once, in batches of at most 10.
    rec.set_outage(false);
    let calls_before = rec.calls().len();
    t.clock.advance(OUTBOX_RETRY_AFTER_SECS);
    let r = expire(&t).await;
    assert_eq!(
        (r.events_republished, r.events_failed, r.complete),
        (24, 0, true)
    );
    let r = purge(&t).await;
    assert_eq!((r.processed, r.failed, r.complete), (12, 0, true));
    assert!(rec.calls()[calls_before..].iter().all(|&n| n <= 10));
    for id in &ids {
        for kind in ["started", "expired", "purged"] {
            assert_eq!(rec.count(&format!("{id}.{kind}")), 1, "{id}.{kind}");
        }
        assert!(stored(&t, id).await.is_none());
    }
    assert_eq!(rec.accepted().len(), 36);
    assert!(outbox(&t).await.is_empty());
}

#[tokio::test]
async fn an_event_published_but_not_acknowledged_is_published_again_with_the_same_id() {
    let (t, rec) = app_with_recorder().await;
    let id = t.start_trial("org_a", "growth").await;
    // The publish succeeded but the outbox delete never happened (the process died): put the
    // event back as it was.
    let event = trials::domain::events::DomainEvent::for_trial(
        trials::domain::events::EventKind::Started,
        &stored(&t, &id).await.unwrap(),
        T0,
        None,
        serde_json::json!({}),
    );
    let put = t.app.store.outbox_put(&event, T0).unwrap();
    t.app
        .store
        .client()
        .put_item()
        .table_name(t.app.store.table_name())
        .set_item(Some(put.item))
        .send()
        .await
        .unwrap();
    t.clock.advance(OUTBOX_RETRY_AFTER_SECS);
    assert_eq!(expire(&t).await.events_republished, 1);
    // At least once: the consumer sees the same deterministic id twice and keeps one.
    assert_eq!(rec.count(&format!("{id}.started")), 2);
    assert!(outbox(&t).await.is_empty());
}

#[tokio::test]
async fn an_entry_refused_on_every_attempt_waits_in_the_outbox_for_the_next_run() {
    let (t, rec) = app_with_recorder().await;
    let trial = seed_trial(&t, "org_a", T0).await;
    let event_id = format!("{}.expired", trial.id);
    {
        let event_id = event_id.clone();
        rec.fail_entries(3, move |e| e.event_id() == event_id);
    }
    t.clock.set(T0 + 7 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    assert_eq!(rec.count(&event_id), 0);
    assert_eq!(rec.failed_entries(), 3, "three attempts");
    assert_eq!(outbox(&t).await, vec![event_id.clone()]);

    // Not stranded yet: the writer's own window has not passed.
    t.clock.advance(OUTBOX_RETRY_AFTER_SECS - 1);
    assert_eq!(expire(&t).await.events_republished, 0);
    t.clock.advance(1);
    assert_eq!(expire(&t).await.events_republished, 1);
    assert_eq!(rec.count(&event_id), 1);
    assert!(outbox(&t).await.is_empty());
}

#[tokio::test]
async fn the_publisher_sends_batches_of_ten_and_stops_at_a_failed_call() {
    let rec = EventBridgeRecorder::start().await;
    let publisher = rec.publisher(BUS);
    let events: Vec<_> = (0..25)
        .map(|i| {
            trials::domain::events::DomainEvent::unmatched_payment(
                &format!("evt_{i}"),
                T0,
                serde_json::json!({}),
            )
        })
        .collect();
    assert_eq!(publisher.publish(&events).await.len(), 25);
    assert_eq!(rec.calls(), vec![10, 10, 5]);
    assert_eq!(rec.accepted()[0].detail_type, "trial.payment_unmatched");

    // An outage: the SDK's own attempts at the first batch, then the publisher gives up on the
    // rest (the caller's events stay in the outbox) instead of adding latency.
    rec.set_outage(true);
    assert!(publisher.publish(&events).await.is_empty());
    assert_eq!(rec.calls().len(), 3 + 3, "{:?}", rec.calls());
}
