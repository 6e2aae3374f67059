//! Domain events through the table's stream: each mutation writes its event item in its
//! transaction; the event source mapping's emulation (`TestApp::publish_events`, the code
//! `trials-local` runs) reads dynoxide's stream and hands the records, in Lambda's event
//! shape, to the `publish` function's code, which sends them with the real
//! `aws-sdk-eventbridge` client to a local `PutEvents` recorder.
use serde_json::{json, Value};
use trials::api::Route;
use trials::config::Secret;
use trials::crypto::{hex, hmac_sha256};
use trials::domain::events::{DomainEvent, SOURCE};
use trials::publish::stream;
use trials_local::stream::StreamReader;
use trials_local::stripe_standin::{StripeStandIn, LOCAL_SECRET_KEY};
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::{Call, TestApp, DAY, T0};

use crate::jobs::{event_items, expire, purge, seed_trial, stored};

const BUS: &str = "trials-test-bus";
const WEBHOOK_SECRET: &str = "whsec_events";

async fn app_with_recorder() -> (TestApp, EventBridgeRecorder) {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher(BUS)).await;
    (t, rec)
}

/// A TestApp whose convert talks to the Stripe stand-in and whose webhook knows a secret.
pub(crate) async fn app_with_stripe_and_recorder() -> (TestApp, EventBridgeRecorder, StripeStandIn)
{
    let rec = EventBridgeRecorder::start().await;
    let standin = StripeStandIn::start().await.expect("Stripe stand-in");
    let base = standin.base_url().to_owned();
    let t = TestApp::with(
        |c| {
            c.stripe.api_base = base;
            c.stripe.secret_key = Some(Secret::new(LOCAL_SECRET_KEY));
            c.webhook.secrets = vec![Secret::new(WEBHOOK_SECRET)];
        },
        |_| rec.publisher(BUS),
    )
    .await;
    let clock = t.clock.clone();
    standin.set_clock(move || trials::clock::Clock::now(&clock));
    (t, rec, standin)
}

/// Stripe's delivery of a paid session created by convert (its metadata as convert wrote it).
pub(crate) async fn pay(t: &TestApp, event_id: &str, trial: &str, org: &str, plan: &str) -> Value {
    let stored = stored(t, trial).await.expect("trial");
    let session = stored.checkout.expect("open session");
    let body = json!({
        "id": event_id,
        "type": "checkout.session.completed",
        "data": { "object": {
            "id": session.session_id,
            "object": "checkout.session",
            "client_reference_id": trial,
            // As convert writes it on the session (the time to conversion counts from it).
            "metadata": {
                "trial_id": trial,
                "org_id": org,
                "plan": plan,
                "trial_started_at": stored.started_at.to_string(),
            },
            "mode": "subscription",
            "payment_status": "paid",
            "customer": "cus_1",
            "subscription": "sub_1",
        }},
    })
    .to_string();
    let now = t.now();
    let mac = hmac_sha256(
        WEBHOOK_SECRET.as_bytes(),
        format!("{now}.{body}").as_bytes(),
    );
    let res = t
        .send_to(
            Route::StripeWebhook,
            Call::post("/v1/webhooks/stripe")
                .raw_body(&body)
                .header("stripe-signature", &format!("t={now},v1={}", hex(&mac))),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// Cancels `canceled` (of `org_can`) and converts `converted` (of `org_conv`): a Checkout
/// Session is open for it, to be paid with [`pay`].
pub(crate) async fn cancel_and_convert(t: &TestApp, canceled: &str, converted: &str) {
    let res = t
        .send(Call::cancel(canceled, "cancel-1").org("org_can"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = t
        .send(Call::convert(converted, "convert-1").org("org_conv"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn every_transition_publishes_its_event_once_through_the_routes_and_jobs() {
    let (t, rec, _standin) = app_with_stripe_and_recorder().await;
    let grace = t.terms("growth").grace_secs;
    let expiring = t.start_trial("org_exp", "growth").await;
    let canceled = t.start_trial("org_can", "starter").await;
    let converted = t.start_trial("org_conv", "pro").await;

    let canceled_at = T0 + DAY;
    t.clock.set(canceled_at);
    cancel_and_convert(&t, &canceled, &converted).await;
    let session_id = stored(&t, &converted)
        .await
        .unwrap()
        .checkout
        .unwrap()
        .session_id;
    let paid = pay(&t, "evt_paid_1", &converted, "org_conv", "pro").await;
    assert_eq!(paid["outcome"], "converted");

    t.clock.set(T0 + 7 * DAY);
    assert_eq!(expire(&t).await.processed, 1);
    t.clock.set(T0 + 7 * DAY + grace);
    assert_eq!(purge(&t).await.processed, 2);

    // Nothing reached EventBridge from the request path: only the stream publishes.
    assert!(rec.accepted().is_empty());
    let pumped = t.publish_events().await;
    assert_eq!((pumped.published, pumped.failed), (9, 0));
    // Read again: the position has moved past them; nothing is published twice.
    assert_eq!(t.publish_events().await.published, 0);

    let mut expected = vec![
        format!("{expiring}.started"),
        format!("{canceled}.started"),
        format!("{converted}.started"),
        format!("{canceled}.canceled"),
        format!("{converted}.checkout_created.{session_id}"),
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
        assert_eq!(e.detail["type"], e.detail_type.as_str());
        for field in ["trial_id", "org_id", "plan", "occurred_at"] {
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
    let canceled_event = by_id(format!("{canceled}.canceled"));
    assert_eq!(canceled_event["canceled_at"], "2026-04-07T10:00:00Z");
    assert_eq!(canceled_event["org_id"], "org_can");
    let purged = by_id(format!("{canceled}.purged"));
    assert_eq!(purged["status"], "CANCELED");
    assert_eq!(purged["canceled_at"], "2026-04-07T10:00:00Z");
    // `trial.purged` carries the trial as it was: consumers clean up from it alone.
    assert_eq!(purged["trial"]["id"], canceled.as_str());
    assert_eq!(purged["trial"]["plan"], "starter");
    assert_eq!(purged["trial"]["status"], "CANCELED");
    assert_eq!(by_id(format!("{expiring}.purged"))["status"], "EXPIRED");
    let converted_event = by_id(format!("{converted}.converted"));
    assert_eq!(converted_event["checkout_session_id"], session_id.as_str());
    assert_eq!(converted_event["plan"], "pro");

    // The funnel counters, counted from these events by the stream's publisher.
    let plans: Vec<String> = ["starter", "growth", "pro"].map(String::from).to_vec();
    let stats = t.app.store.read_stats(&plans, 30, t.now()).await.unwrap();
    let count = |plan: &str, stage| stats[plan].count(stage);
    use trials::store::stats::Stage;
    assert_eq!(
        [Stage::Started, Stage::Canceled, Stage::Purged].map(|s| count("starter", s)),
        [1, 1, 1]
    );
    assert_eq!(
        [Stage::Started, Stage::Expired, Stage::Purged].map(|s| count("growth", s)),
        [1, 1, 1]
    );
    assert_eq!(
        [Stage::Started, Stage::Converted].map(|s| count("pro", s)),
        [1, 1]
    );
    assert_eq!(
        trials::store::stats::total(&stats).count(Stage::Converted),
        1
    );
    // Paid a day after it started: the time to conversion is counted in whole hours.
    assert_eq!(stats["pro"].median_hours_to_convert(), Some(24));
    assert_eq!(stats["growth"].median_hours_to_convert(), None);
}

#[tokio::test]
async fn failed_entries_come_back_as_batch_item_failures_and_are_published_on_redelivery() {
    let (t, rec) = app_with_recorder().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(t.start_trial(&format!("org_{i}"), "growth").await);
    }
    // Two entries fail on every attempt of this delivery: they are reported, the rest land.
    for unlucky in [&ids[3], &ids[11]] {
        let unlucky = format!("{unlucky}.started");
        rec.fail_entries(3, move |e| e.event_id() == unlucky);
    }
    // Batches of 10 in stream order: the first stops at the record of ids[3] (EventBridge
    // refused it on every attempt); the mapping delivers again from there.
    let first = t.publish_events().await;
    assert_eq!((first.published, first.failed), (9, 1));
    assert!(rec.calls().iter().all(|&n| n <= 10), "{:?}", rec.calls());
    let second = t.publish_events().await;
    assert_eq!(
        (second.published, second.failed),
        (8, 1),
        "ids[11] still refused"
    );
    let third = t.publish_events().await;
    assert_eq!((third.published, third.failed), (1, 0));
    assert_eq!(t.publish_events().await, Default::default(), "nothing left");
    for id in &ids {
        assert!(rec.count(&format!("{id}.started")) >= 1, "{id}");
    }
    assert_eq!(rec.count(&format!("{}.started", ids[3])), 1);
    assert_eq!(rec.count(&format!("{}.started", ids[11])), 1);
    // At least once: what followed a failed record in its batch is delivered again.
    assert_eq!(rec.count(&format!("{}.started", ids[4])), 2);
}

#[tokio::test]
async fn the_publish_function_reports_failed_records_by_sequence_number() {
    let (t, rec) = app_with_recorder().await;
    let a = t.start_trial("org_a", "growth").await;
    let b = t.start_trial("org_b", "growth").await;
    let records = stream_records(&t).await;
    let event = json!({ "Records": records });
    let unlucky = format!("{b}.started");
    rec.fail_entries(3, move |e| e.event_id() == unlucky);
    let result = stream::handle(&t.publisher, &t.app.store, &event).await;
    let seq_of_b = records
        .iter()
        .find(|r| r["dynamodb"]["NewImage"]["event_id"]["S"] == format!("{b}.started"))
        .map(|r| r["dynamodb"]["SequenceNumber"].clone())
        .expect("b's record");
    assert_eq!(
        result.response(),
        json!({ "batchItemFailures": [{ "itemIdentifier": seq_of_b }] })
    );
    assert_eq!(rec.count(&format!("{a}.started")), 1);
    assert_eq!(rec.count(&format!("{b}.started")), 0);
}

#[tokio::test]
async fn a_record_delivered_twice_is_published_twice() {
    let (t, rec) = app_with_recorder().await;
    let id = t.start_trial("org_a", "growth").await;
    let event = json!({ "Records": stream_records(&t).await });
    for _ in 0..2 {
        let result = stream::handle(&t.publisher, &t.app.store, &event).await;
        assert_eq!(result.failed_sequence_numbers, Vec::<String>::new());
    }
    // At least once: consumers dedupe on `event_id`, which is the same both times.
    assert_eq!(rec.count(&format!("{id}.started")), 2);
}

/// The funnel counts of `plan` today, as `trialctl stats` reads them.
async fn funnel(t: &TestApp, plan: &str) -> trials::store::stats::PlanStats {
    let stats = t.app.store.read_stats(&[plan.to_owned()], 1, t.now()).await;
    stats.unwrap().remove(plan).unwrap()
}

/// Issue 25 item 2: the publisher counts the funnel; a batch handed again after a crash (the
/// mapping redelivers it whole: the function died after counting, before answering) adds
/// nothing the second time.
#[tokio::test]
async fn a_batch_retried_after_a_crash_counts_each_event_once() {
    use trials::store::stats::Stage;
    let (t, _rec) = app_with_recorder().await;
    let a = t.start_trial("org_a", "growth").await;
    t.start_trial("org_b", "growth").await;
    let res = t.send(Call::cancel(&a, "cancel-a").org("org_a")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    // The requests themselves count nothing: no shared item on the request path.
    assert_eq!(funnel(&t, "growth").await.count(Stage::Started), 0);

    let event = json!({ "Records": stream_records(&t).await });
    for delivery in 0..2 {
        let result = stream::handle(&t.publisher, &t.app.store, &event).await;
        assert_eq!(
            result.failed_sequence_numbers,
            Vec::<String>::new(),
            "{delivery}"
        );
        let stats = funnel(&t, "growth").await;
        assert_eq!(
            [Stage::Started, Stage::Canceled].map(|s| stats.count(s)),
            [2, 1],
            "delivery {delivery}"
        );
    }
}

/// A count the store refused is reported as a batch item failure (the record comes again),
/// and the redelivery counts it once.
#[tokio::test]
async fn a_failed_count_is_redelivered_and_counted_once() {
    use trials::store::stats::Stage;
    let (t, rec) = app_with_recorder().await;
    let ids = [
        t.start_trial("org_a", "growth").await,
        t.start_trial("org_b", "growth").await,
    ];
    t.dynamo.set_failing(true);
    let during = t.publish_events().await;
    t.dynamo.set_failing(false);
    assert_eq!((during.published, during.failed), (0, 2));
    assert_eq!(funnel(&t, "growth").await.count(Stage::Started), 0);

    let after = t.publish_events().await;
    assert_eq!((after.published, after.failed), (2, 0));
    assert_eq!(funnel(&t, "growth").await.count(Stage::Started), 2);
    // Published on both deliveries (at least once), counted on one.
    for id in &ids {
        assert_eq!(rec.count(&format!("{id}.started")), 2, "{id}");
    }
    let again = json!({ "Records": stream_records(&t).await });
    stream::handle(&t.publisher, &t.app.store, &again).await;
    assert_eq!(funnel(&t, "growth").await.count(Stage::Started), 2);
}

#[tokio::test]
async fn an_eventbridge_outage_loses_nothing() {
    let (t, rec) = app_with_recorder().await;
    rec.set_outage(true);
    // The API answers through the outage: it never calls EventBridge.
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(t.start_trial(&format!("org_{i}"), "growth").await);
    }
    let during = t.publish_events().await;
    assert_eq!(during.published, 0);
    assert!(during.failed > 0);
    assert_eq!(
        event_items(&t).await.len(),
        12,
        "the events stay in the table"
    );

    rec.set_outage(false);
    let after = t.publish_events().await;
    assert_eq!(after.failed, 0);
    for id in &ids {
        assert_eq!(rec.count(&format!("{id}.started")), 1, "{id}");
    }
}

#[tokio::test]
async fn a_reader_killed_between_commit_and_read_resumes_from_its_checkpoint() {
    let (t, rec) = app_with_recorder().await;
    let dir = std::env::temp_dir().join(format!("trials-stream-{}", trials::crypto::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join(trials_local::stream::CHECKPOINT_FILE);
    let table = t.app.store.table_name().to_owned();

    let first = t.start_trial("org_a", "growth").await;
    let mut reader = StreamReader::new(t.db.clone(), &table, Some(checkpoint.clone()));
    assert_eq!(
        reader
            .pump(&t.publisher, &t.app.store)
            .await
            .unwrap()
            .published,
        1
    );
    // Committed while no reader runs (the process was killed).
    drop(reader);
    let second = t.start_trial("org_b", "growth").await;
    let third = t.start_trial("org_c", "growth").await;

    let mut restarted = StreamReader::new(t.db.clone(), &table, Some(checkpoint));
    assert!(restarted.position().is_some(), "the checkpoint was read");
    assert_eq!(
        restarted
            .pump(&t.publisher, &t.app.store)
            .await
            .unwrap()
            .published,
        2
    );
    for id in [&first, &second, &third] {
        assert_eq!(rec.count(&format!("{id}.started")), 1, "{id}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_trial_converted_before_the_purge_gets_no_purged_event() {
    let (t, rec) = app_with_recorder().await;
    let trial = seed_trial(&t, "org_late", T0).await;
    let grace = t.terms("growth").grace_secs;
    t.clock.set(trial.expires_at + grace);
    // The payment lands first: the purge's condition fails, no `trial.purged` is written.
    assert!(crate::jobs::convert(&t, &trial, t.now()).await);
    let r = purge(&t).await;
    assert_eq!(r.processed, 0);
    t.publish_events().await;
    assert_eq!(rec.count(&format!("{}.converted", trial.id)), 1);
    assert_eq!(rec.count(&format!("{}.purged", trial.id)), 0);
    assert!(stored(&t, trial.id.as_str()).await.is_some());
}

#[tokio::test]
async fn the_publisher_sends_batches_of_ten_and_reports_a_failed_call() {
    let rec = EventBridgeRecorder::start().await;
    let publisher = rec.publisher(BUS);
    let events: Vec<_> = (0..25)
        .map(|i| DomainEvent::unmatched_payment(&format!("evt_{i}"), T0, json!({})))
        .collect();
    assert_eq!(publisher.publish(&events).await.len(), 25);
    assert_eq!(rec.calls(), vec![10, 10, 5]);
    assert_eq!(rec.accepted()[0].detail_type, "trial.payment_unmatched");

    // An outage: the SDK's own attempts at the first batch, then the publisher gives up on the
    // rest (they are reported failed and delivered again) instead of hammering a failing bus.
    rec.set_outage(true);
    assert!(publisher.publish(&events).await.is_empty());
    assert_eq!(rec.calls().len(), 3 + 3, "{:?}", rec.calls());
}

/// The stream's records so far, in Lambda's event shape (what the mapping would deliver).
async fn stream_records(t: &TestApp) -> Vec<Value> {
    let db = t.db.clone();
    let table = t.app.store.table_name().to_owned();
    tokio::task::spawn_blocking(move || {
        trials_local::stream::read_records(&db, &table, None).expect("stream")
    })
    .await
    .unwrap()
    .into_iter()
    .map(|(_, record)| record)
    .filter(|r| {
        r["dynamodb"]["Keys"]["pk"]["S"]
            .as_str()
            .is_some_and(|pk| pk.starts_with("EVENT#"))
    })
    .collect()
}

/// A table created before events went through the stream (a data directory from an older
/// `make run`) gets its stream when the store starts on it; starting again changes nothing.
#[tokio::test]
async fn a_table_without_a_stream_gets_one_when_the_store_starts() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let (endpoint, _db) = trials_tests::start_dynoxide().await;
    let client = trials::aws::local_dynamodb(&endpoint);
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, ty: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(ty)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name("old")
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let streaming = || async {
        client
            .describe_table()
            .table_name("old")
            .send()
            .await
            .unwrap()
            .table()
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled())
    };
    assert!(!streaming().await);
    let store = trials::store::Store::new(client.clone(), "old", 4);
    store.ensure_table().await.unwrap();
    assert!(streaming().await, "the stream the publish function reads");
    store.ensure_table().await.unwrap();
    assert!(streaming().await);
}
