//! Issue 25: the API under DynamoDB as it really behaves (`trials_tests::chaos`): transaction
//! conflicts (15 ms hold), 2% throttles, 1% 500s before the write, 2% 500s after it, with a
//! client that retries 5xx with the same `Idempotency-Key`.
//!
//! Every test asserts invariants only (exactly once, exact counts, every event once); the
//! first-attempt 5xx counts are printed (`--nocapture`), never asserted: `make chaos` reports
//! them at the issue's scale. The workloads are small so `cargo test` stays quick.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use trials::api::Route;
use trials::domain::catalog::Catalog;
use trials::domain::events::{DomainEvent, EventKind};
use trials::domain::TrialStatus;
use trials::jobs::{self, Job};
use trials::store::Slot;
use trials_local::stripe_standin::{PayMethod, StripeStandIn, LOCAL_SECRET_KEY};
use trials_tests::chaos::workload::{
    all_items, final_statuses, first_attempt_5xx, items_by_kind, org, send_retrying,
    starts_for_one_org, starts_of_distinct_orgs, text, usage_on_one_trial, warm_keys, Sent,
};
use trials_tests::chaos::{Chaos, ChaosSpec};
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::requests::ORG;
use trials_tests::stripe::{signature, WEBHOOK_SECRET};
use trials_tests::{writes, Call, TestApp};

const SEED: u64 = 25;
const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

pub(crate) fn chaos(t: &TestApp) -> &Chaos {
    t.chaos.as_ref().expect("an app under the layer")
}

fn report(t: &TestApp, workload: &str, sent: &[Sent]) {
    eprintln!(
        "{workload}: {} of {} first attempts 5xx; final {:?}; layer {:?}",
        first_attempt_5xx(sent),
        sent.len(),
        final_statuses(sent),
        chaos(t).stats()
    );
}

#[tokio::test]
async fn the_layer_answers_as_dynamodb_does() {
    // Every write faulted one way: each fault shows as the store error it is, and nothing
    // applied is lost from the layer's counts.
    let spec = ChaosSpec {
        throttle_rate: 1.0,
        ..ChaosSpec::off(SEED)
    };
    let t = TestApp::with_chaos(spec).await;
    let res = t.send(Call::start("growth", "k1")).await;
    assert_eq!(res.status, 503, "{}", res.body);
    let stats = chaos(&t).stats();
    // The SDK makes 3 attempts of each write, every one throttled: 2 of each 3 are retries.
    assert!(stats.throttled >= 3, "{stats:?}");
    assert_eq!(stats.sdk_retries * 3, stats.throttled * 2, "{stats:?}");
    assert!(!items_by_kind(&t).await.contains_key("TRIAL"));

    // Off: the same request starts the trial.
    let t = TestApp::with_chaos(ChaosSpec::off(SEED)).await;
    let res = t.send(Call::start("growth", "k1")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(chaos(&t).stats().faults(), 0);
}

#[tokio::test]
async fn the_same_seed_and_the_same_requests_give_the_same_faults() {
    // Sequential starts (one write at a time): the faults depend on the seed alone.
    let spec = ChaosSpec {
        throttle_rate: 0.1,
        unapplied_500_rate: 0.1,
        applied_500_rate: 0.1,
        ..ChaosSpec::off(SEED)
    };
    let run = |spec: ChaosSpec| async move {
        let t = TestApp::with_chaos(spec).await;
        let mut statuses = Vec::new();
        for i in 0..8 {
            let org = org("seeded", i);
            warm_keys(&t, [org.clone()]).await;
            statuses.push(t.send(Call::start("growth", "k").org(&org)).await.status);
        }
        (statuses, chaos(&t).stats())
    };
    let (a, b, other) = tokio::join!(
        run(spec.clone()),
        run(spec.clone()),
        run(ChaosSpec {
            seed: SEED + 1,
            ..spec
        })
    );
    assert!(a.1.faults() > 0, "{:?}", a.1);
    assert_eq!(a, b);
    assert_ne!(a.1, other.1, "another seed, other faults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_an_item_cancels_the_next_one_and_a_single_write_on_it() {
    // A hold far longer than the test: the test ends it (`release_holds`) once it has raced
    // the holder, so no interleaving depends on timing.
    let t = TestApp::with_chaos(ChaosSpec::off(SEED)).await;
    let trial = writes::seed_trial(&t, ORG, t.now()).await;
    chaos(&t).set_spec(ChaosSpec {
        hold: Duration::from_secs(600),
        ..ChaosSpec::off(SEED)
    });
    chaos(&t).reset_stats();

    // A cancel (the trial and its event: a transaction) holds the trial item...
    let cancel = {
        let t = t.clone();
        let trial = trial.clone();
        tokio::spawn(async move { writes::cancel(&t, &trial, t.now()).await })
    };
    chaos(&t).until_held().await;
    let store = &t.app.store;
    let now = t.now();
    // ...so an expire of it alone (a single UpdateItem) gets TransactionConflictException...
    let single = store
        .tx()
        .update(
            Slot::Trial,
            store.expire_update(&trial, now, trial.policy()).unwrap(),
        )
        .commit()
        .await;
    assert!(single.is_err(), "a write on a held item is a store error");
    // ...and the expire with its event (a transaction) is cancelled for the conflict on every
    // attempt the store makes.
    let event = DomainEvent::for_trial(EventKind::Expired, &trial, now, None, json!({}));
    let transaction = store
        .tx()
        .update(
            Slot::Trial,
            store.expire_update(&trial, now, trial.policy()).unwrap(),
        )
        .event(&event, now)
        .unwrap()
        .commit()
        .await;
    assert!(
        transaction.is_err(),
        "a transaction on a held item is a store error"
    );
    chaos(&t).release_holds();
    assert!(cancel.await.unwrap(), "the holder commits");
    let stats = chaos(&t).stats();
    assert_eq!(stats.write_conflicts, 1, "{stats:?}");
    assert!(stats.tx_conflicts >= 1, "{stats:?}");
    assert_eq!(
        stats.conflicts_by_kind.get("TRIAL"),
        Some(&(stats.write_conflicts + stats.tx_conflicts)),
        "{stats:?}"
    );
    assert_eq!(chaos(&t).held(), 0, "the hold ended with its transaction");
}

#[tokio::test]
async fn an_index_query_sees_a_write_only_after_the_lag() {
    let t = TestApp::with_chaos(ChaosSpec {
        gsi_lag: Duration::from_secs(600),
        ..ChaosSpec::off(SEED)
    })
    .await;
    let trial = writes::seed_trial(&t, ORG, t.now()).await;
    t.clock.set(t.now() + t.policy().length_secs + 1);
    // Due, but written a moment ago: the expire job's query of the index does not see it.
    let early = jobs::run(&t.app, Job::Expire, None).await;
    assert_eq!((early.processed, early.failed), (0, 0), "{early:?}");
    assert_eq!(chaos(&t).stats().gsi_hidden, 1);
    // Once the index has caught up (lag off), the next run expires it.
    chaos(&t).set_spec(ChaosSpec::off(SEED));
    let later = jobs::run(&t.app, Job::Expire, None).await;
    assert_eq!(later.processed, 1, "{later:?}");
    let stored = writes::stored(&t, trial.id.as_str()).await.unwrap();
    assert_eq!(stored.status, TrialStatus::Expired);
}

#[tokio::test]
async fn keys_left_unprocessed_by_a_batch_read_are_asked_for_again() {
    let t = TestApp::with_chaos(ChaosSpec {
        unprocessed_rate: 1.0,
        ..ChaosSpec::off(SEED)
    })
    .await;
    let key = t.api_key(ORG).await;
    let trial = writes::seed_trial(&t, ORG, t.now()).await;
    chaos(&t).reset_stats();
    // Two keys: the layer reads one and leaves the other unprocessed; the store asks again.
    let (stored, found) = t
        .app
        .store
        .get_api_key_and_trial(key.key_id(), &trial.id)
        .await
        .expect("read to the end");
    assert!(stored.is_some(), "the key record");
    assert_eq!(found.map(|f| f.id), Some(trial.id));
    let stats = chaos(&t).stats();
    assert_eq!(stats.unprocessed_keys, 1, "{stats:?}");
    assert_eq!(stats.requests.get("BatchGetItem"), Some(&2), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_of_distinct_orgs_each_land_exactly_once() {
    let t = TestApp::with_chaos(ChaosSpec::documented(SEED)).await;
    let n = 40;
    let sent = starts_of_distinct_orgs(&t, "distinct", n, 16).await;
    report(&t, "40 starts, 40 orgs, 16 concurrent", &sent);
    for (i, s) in sent.iter().enumerate() {
        let org = org("distinct", i);
        assert_eq!(
            s.last.status, 201,
            "{org} after {} attempts: {}",
            s.attempts, s.last.body
        );
        let answered = s.last.json()["id"].as_str().unwrap().to_owned();
        let current = t.send(Call::get("/v1/trials/current").org(&org)).await;
        assert_eq!(current.status, 200, "{org}: {}", current.body);
        assert_eq!(current.json()["id"], answered.as_str(), "{org}");
    }
    let kinds = items_by_kind(&t).await;
    assert_eq!(kinds.get("TRIAL"), Some(&n), "one trial per org: {kinds:?}");
    // Issue 25 item 2: the starts share no item, and the funnel is counted from the stream,
    // under the layer too (a failed count comes again; a lost response counts once): exactly
    // the trials.
    assert_eq!(chaos(&t).stats().conflicts_by_kind.get("STATS"), None);
    let mut passes = 0;
    while t.publish_events().await.failed > 0 {
        passes += 1;
        assert!(passes < 50, "the stream never drains");
    }
    let stats = t
        .app
        .store
        .read_stats(&["growth".to_owned()], 1, t.now())
        .await;
    let started = stats.unwrap()["growth"].count(trials::store::stats::Stage::Started);
    assert_eq!(started, n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_one_trial_accepts_exactly_the_limit() {
    let limit = 20;
    let (t, id) = enterprise_trial_under_the_layer(20).await;
    chaos(&t).reset_stats();

    let sent = usage_on_one_trial(&t, &id, "api_calls", 30, 8).await;
    report(&t, "30 usage calls on one trial, 8 concurrent", &sent);
    let statuses = final_statuses(&sent);
    assert_eq!(
        (statuses.get(&200), statuses.get(&429)),
        (Some(&limit), Some(&10)),
        "{statuses:?}"
    );
    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert_eq!(data["options"][0]["internal_name"], "api_calls");
    assert_eq!(data["options"][0]["used_value"], limit);
    let kinds = event_kinds(&t).await;
    assert_eq!(kinds.get("trial.limit_reached"), Some(&1), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_for_an_org_that_had_its_trial_all_end_409() {
    let t = TestApp::with_chaos(ChaosSpec::documented(SEED)).await;
    warm_keys(&t, [ORG.to_owned()]).await;
    let first = send_retrying(&t, "start", || Call::start("growth", "first")).await;
    assert_eq!(first.last.status, 201, "{}", first.last.body);
    chaos(&t).reset_stats();

    let sent = starts_for_one_org(&t, ORG, 20, 10).await;
    report(
        &t,
        "20 starts with new keys for one org, 10 concurrent",
        &sent,
    );
    for s in &sent {
        assert_eq!(
            s.last.status, 409,
            "after {} attempts: {}",
            s.attempts, s.last.body
        );
        assert_eq!(s.last.error_code(), "trial_already_exists");
    }
    let kinds = items_by_kind(&t).await;
    assert_eq!(kinds.get("TRIAL"), Some(&1), "{kinds:?}");
}

/// Cancel, convert with the webhook, and the expire and purge jobs, under every behaviour of
/// the layer (index lag and unprocessed batch keys too): each change happens once and every
/// event item is published exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_convert_webhook_and_jobs_happen_once_and_publish_every_event_once() {
    let spec = ChaosSpec::everything(SEED);
    let lag = spec.gsi_lag;
    let recorder = EventBridgeRecorder::start().await;
    let stripe = StripeStandIn::start().await.expect("Stripe stand-in");
    let base = stripe.base_url().to_owned();
    let t = TestApp::with_chaos_and(
        spec,
        |c| {
            c.stripe.api_base = base;
            c.stripe.secret_key = Some(trials::config::Secret::new(LOCAL_SECRET_KEY));
            c.stripe.timeout_ms = trials_tests::stripe::TIMEOUT_MS;
            c.webhook.secrets = vec![trials::config::Secret::new(WEBHOOK_SECRET)];
        },
        |_| recorder.publisher("trials"),
    )
    .await;
    let clock = t.clock.clone();
    stripe.set_clock(move || trials::clock::Clock::now(&clock));

    let orgs: Vec<String> = (0..4).map(|i| org("life", i)).collect();
    warm_keys(&t, orgs.clone()).await;
    let mut ids = Vec::new();
    for org in &orgs {
        let s = send_retrying(&t, "start", || Call::start("growth", "k").org(org)).await;
        assert_eq!(s.last.status, 201, "{org}: {}", s.last.body);
        ids.push(s.last.json()["id"].as_str().unwrap().to_owned());
    }
    let (canceled, converted, expiring) = (&ids[0], &ids[1], &ids[2..]);

    let cancel = send_retrying(&t, "cancel", || {
        Call::cancel(canceled, "cancel-1").org(&orgs[0])
    })
    .await;
    assert_eq!(cancel.last.status, 200, "{}", cancel.last.body);

    let convert = send_retrying(&t, "convert", || {
        Call::convert(converted, "convert-1").org(&orgs[1])
    })
    .await;
    assert_eq!(convert.last.status, 200, "{}", convert.last.body);
    let session = writes::stored(&t, converted)
        .await
        .expect("trial")
        .checkout
        .expect("an open session")
        .session_id;
    stripe.pay(&session, PayMethod::Card).await.expect("paid");
    let delivery = stripe
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.event_type == "checkout.session.completed" && d.session_id == session)
        .expect("Stripe's completed event");
    // Stripe redelivers until it gets a 2xx.
    let mut delivered = None;
    for _ in 0..5 {
        let call = Call::post("/v1/webhooks/stripe")
            .raw_body(&delivery.payload)
            .header(
                "stripe-signature",
                &signature(&delivery.payload, WEBHOOK_SECRET, t.now()),
            );
        let res = t.send_to(Route::StripeWebhook, call).await;
        if res.status < 500 {
            delivered = Some(res);
            break;
        }
    }
    let delivered = delivered.expect("the webhook answered below 500 within 5 deliveries");
    assert_eq!(delivered.status, 200, "{}", delivered.body);

    // The jobs, run until their work is done (the index shows writes only after the lag).
    let policy = t.policy();
    t.clock.set(t.now() + policy.length_secs + 1);
    settle(
        &t,
        Job::Expire,
        lag,
        |trial| trial.status == TrialStatus::Expired,
        expiring,
    )
    .await;
    t.clock.set(t.now() + policy.grace_secs + 1);
    let purged = [canceled.clone(), expiring[0].clone(), expiring[1].clone()];
    for _ in 0..20 {
        tokio::time::sleep(lag).await;
        let run = jobs::run(&t.app, Job::Purge, None).await;
        let mut gone = 0;
        for id in &purged {
            gone += usize::from(writes::stored(&t, id).await.is_none());
        }
        if gone == purged.len() && run.failed == 0 {
            break;
        }
    }
    for id in &purged {
        assert!(writes::stored(&t, id).await.is_none(), "{id} purged");
    }
    let kept = writes::stored(&t, converted).await.expect("converted kept");
    assert_eq!(kept.status, TrialStatus::Converted);
    eprintln!("lifecycle under the layer: {:?}", chaos(&t).stats());

    // Every event item, published exactly once; each transition's event exactly once. The
    // publisher's own writes (each event's funnel count) under the layer can fail, and the
    // stream then delivers the batch again: at least once on the bus, which this count of the
    // bus cannot tell from a bug. So the layer is off for the publishing; the counts under it,
    // retried, are `starts_of_distinct_orgs_each_land_exactly_once`'s.
    chaos(&t).set_spec(ChaosSpec::off(SEED));
    let mut published = BTreeMap::<String, usize>::new();
    let pumped = t.publish_events().await;
    assert_eq!(pumped.failed, 0, "{pumped:?}");
    // The stream read again from its position: nothing new to publish.
    assert_eq!(t.publish_events().await.published, 0);
    for id in recorder.event_ids() {
        *published.entry(id).or_default() += 1;
    }
    assert!(
        published.values().all(|&n| n == 1),
        "an event published twice: {published:?}"
    );
    let stored: BTreeSet<String> = event_items(&t).await.into_keys().collect();
    let sent: BTreeSet<String> = published.keys().cloned().collect();
    assert_eq!(sent, stored, "published = stored events");
    let kinds = event_items(&t).await;
    let count = |trial: &str, kind: &str| {
        kinds
            .values()
            .filter(|(t, k)| t == trial && k == kind)
            .count()
    };
    for id in &ids {
        assert_eq!(count(id, "trial.started"), 1, "{id}");
    }
    assert_eq!(count(canceled, "trial.canceled"), 1);
    assert_eq!(count(converted, "trial.converted"), 1);
    for id in expiring {
        assert_eq!(count(id, "trial.expired"), 1, "{id}");
    }
    for id in &purged {
        assert_eq!(count(id, "trial.purged"), 1, "{id}");
    }
}

/// Issue 25 item 3: a usage write applied whose every answer was lost (each SDK attempt too)
/// ends 503; the client's retry with the same key finds the key recorded on the trial and is
/// answered the recording again: counted once. The same for a recording that crosses the
/// warning threshold (a transaction with its event): the event exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_write_whose_answers_were_lost_is_answered_again_not_counted_twice() {
    let (t, id) = enterprise_trial_under_the_layer(100).await;
    let lose_every_answer = ChaosSpec {
        applied_500_rate: 1.0,
        ..ChaosSpec::off(SEED)
    };
    let call = |quantity: i64, key: &str| {
        Call::post(&format!("/v1/trials/{id}/usage"))
            .idempotency_key(key)
            .json(&json!({ "option": "api_calls", "quantity": quantity }))
    };
    for (quantity, key, used) in [(1, "lost-1", 1), (79, "lost-2", 80)] {
        chaos(&t).set_spec(lose_every_answer.clone());
        let lost = t.send(call(quantity, key)).await;
        assert_eq!(lost.status, 503, "{}", lost.body);
        chaos(&t).set_spec(ChaosSpec::off(SEED));
        let retried = t.send(call(quantity, key)).await;
        assert_eq!(retried.status, 200, "{}", retried.body);
        assert!(retried.replayed());
        assert_eq!(retried.json()["used_value"], used);
    }
    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    assert_eq!(data["options"][0]["used_value"], 80);
    let kinds = event_kinds(&t).await;
    assert_eq!(kinds.get("trial.limit_warning"), Some(&1), "{kinds:?}");
}

/// Runs `job` until every trial in `ids` satisfies `done` (at most 20 runs, each after the
/// index lag), then asserts it.
async fn settle(
    t: &TestApp,
    job: Job,
    lag: Duration,
    done: impl Fn(&trials::domain::Trial) -> bool,
    ids: &[String],
) {
    for _ in 0..20 {
        tokio::time::sleep(lag).await;
        jobs::run(&t.app, job, None).await;
        let mut all = true;
        for id in ids {
            all &= writes::stored(t, id)
                .await
                .is_some_and(|trial| done(&trial));
        }
        if all {
            return;
        }
    }
    for id in ids {
        let trial = writes::stored(t, id).await.expect("trial");
        assert!(done(&trial), "{id} after {job:?} runs: {:?}", trial.status);
    }
}

/// An app under the documented layer whose `enterprise` plan limits `api_calls` to `limit`
/// (the example catalog's is 100), and a trial of it started.
async fn enterprise_trial_under_the_layer(limit: i64) -> (TestApp, String) {
    let catalog = ENTERPRISE.replace("\"value\": 100,", &format!("\"value\": {limit},"));
    let catalog = Catalog::from_json(&catalog).expect("edited catalog");
    let t = TestApp::with_chaos_and(
        ChaosSpec::documented(SEED),
        |c| c.catalog = catalog,
        |_| trials::publish::Publisher::Log,
    )
    .await;
    let started = send_retrying(&t, "start", || Call::start("enterprise", "k1")).await;
    assert_eq!(started.last.status, 201, "{}", started.last.body);
    let id = started.last.json()["id"].as_str().unwrap().to_owned();
    (t, id)
}

/// The stored event items: event id -> (trial id, detail type), read without the layer.
async fn event_items(t: &TestApp) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for item in all_items(t).await {
        let text = |name: &str| text(&item, name);
        if !text("pk").starts_with("EVENT#") {
            continue;
        }
        let detail: serde_json::Value = serde_json::from_str(&text("detail")).unwrap_or_default();
        let trial = detail["trial_id"].as_str().unwrap_or_default().to_owned();
        out.insert(text("event_id"), (trial, text("detail_type")));
    }
    out
}

/// Stored events by detail type.
async fn event_kinds(t: &TestApp) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, kind) in event_items(t).await.into_values() {
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// The issue's storm at its scale (issue 25 item 6): before the guard read, 20–40 of the 100
/// calls were still 503 after the client's 5 attempts (and 85–90 first attempts 5xx); now each
/// refusal is a read and its own stored 409, with no transaction on the guard: every call ends
/// 409, at most 2 % of first attempts 5xx (the issue's target; 0 with this seed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_issue_scale_starts_for_an_org_that_had_its_trial_all_end_409() {
    let t = TestApp::with_chaos(ChaosSpec::documented(SEED)).await;
    warm_keys(&t, [ORG.to_owned()]).await;
    let first = send_retrying(&t, "start", || Call::start("growth", "first")).await;
    assert_eq!(first.last.status, 201, "{}", first.last.body);
    let sent = starts_for_one_org(&t, ORG, 100, 64).await;
    report(
        &t,
        "100 starts with new keys for one org, 64 concurrent",
        &sent,
    );
    assert_eq!(final_statuses(&sent).get(&409), Some(&100));
    assert!(
        first_attempt_5xx(&sent) <= 2,
        "{}",
        first_attempt_5xx(&sent)
    );
}

/// Usage on one busy trial at the issue's scale (issue 25 item 3). Before usage became one
/// conditional `UpdateItem` carrying its own key, every call was a transaction on the trial item
/// and concurrent calls cancelled each other: 104 of the 150 first attempts answered 5xx and
/// 10–20 calls were still 503 after the client's 5 attempts. Now: exactly the limit accepted,
/// the rest refused 429, `used_value` the limit, each limit event once, and at most 2 % of
/// first attempts 5xx (the issue's target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_issue_scale_usage_on_one_trial_accepts_exactly_the_limit() {
    let (t, id) = enterprise_trial_under_the_layer(100).await;
    chaos(&t).reset_stats();
    let sent = usage_on_one_trial(&t, &id, "api_calls", 150, 24).await;
    report(&t, "150 usage calls on one trial, 24 concurrent", &sent);
    let data = t
        .send(Call::get(&format!("/v1/trials/{id}/data")))
        .await
        .json();
    let statuses = final_statuses(&sent);
    assert_eq!(
        (statuses.get(&200), statuses.get(&429)),
        (Some(&100), Some(&50)),
        "{statuses:?}; {}",
        data["options"]
    );
    assert!(
        first_attempt_5xx(&sent) <= 3,
        "{} of 150 first attempts 5xx",
        first_attempt_5xx(&sent)
    );
    assert_eq!(data["options"][0]["internal_name"], "api_calls");
    assert_eq!(data["options"][0]["used_value"], 100);
    // Every accepted call's answer names a distinct usage: none counted twice, none lost.
    let mut used: Vec<i64> = sent
        .iter()
        .filter(|s| s.last.status == 200)
        .map(|s| s.last.json()["used_value"].as_i64().expect("used_value"))
        .collect();
    used.sort_unstable();
    assert_eq!(used, (1..=100).collect::<Vec<_>>());
    let kinds = event_kinds(&t).await;
    assert_eq!(kinds.get("trial.limit_warning"), Some(&1), "{kinds:?}");
    assert_eq!(kinds.get("trial.limit_reached"), Some(&1), "{kinds:?}");
}
