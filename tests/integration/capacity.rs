//! Issue 25 item 5: the DynamoDB capacity each operation consumes, as DynamoDB reports it
//! (`ReturnConsumedCapacity=TOTAL`, summed by `trials_tests::capacity::CapacityMeter`; dynoxide
//! answers it with DynamoDB's rules: 1 WCU per started KB per item written, 1 RCU per started
//! 4 KB strongly consistent, 0.5 eventually consistent, transactions twice). Pinned here like
//! the round trips, so a change that makes an operation dearer fails a test and is deliberate;
//! BENCHMARKS.md "Capacity" prices these figures.
use std::collections::BTreeMap;

use serde_json::json;
use trials::domain::catalog::Catalog;
use trials::jobs::{self, Job};
use trials_local::stripe_standin::PayMethod;
use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{writes, Call, TestApp, TestResponse, Units};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

/// Units one call consumed: (read, write), summed over the operations it sent.
#[derive(Debug, PartialEq)]
struct Spent {
    read: f64,
    write: f64,
    by_operation: BTreeMap<String, Units>,
}

impl Spent {
    fn of(by_operation: BTreeMap<String, Units>) -> Spent {
        Spent {
            read: by_operation.values().map(|u| u.read).sum(),
            write: by_operation.values().map(|u| u.write).sum(),
            by_operation,
        }
    }

    /// (read units, write units), what the tests pin.
    fn units(&self) -> (f64, f64) {
        (self.read, self.write)
    }
}

/// Every operation's (read, write) units equal the pinned ones, all shown on a failure.
fn assert_units(pinned: &[(&str, &Spent, (f64, f64))]) {
    let got: Vec<_> = pinned
        .iter()
        .map(|(name, s, _)| (*name, s.units()))
        .collect();
    let want: Vec<_> = pinned
        .iter()
        .map(|(name, _, units)| (*name, *units))
        .collect();
    assert_eq!(got, want);
}

async fn metered(t: &TestApp, call: Call) -> (TestResponse, Spent) {
    t.capacity.start();
    let res = t.send(call).await;
    (res, Spent::of(t.capacity.stop()))
}

async fn metered_job(t: &TestApp, job: Job) -> Spent {
    t.capacity.start();
    let run = jobs::run(&t.app, job, None).await;
    assert_eq!(run.failed, 0, "{run:?}");
    Spent::of(t.capacity.stop())
}

fn usage(id: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&json!({ "option": "api_calls", "quantity": 1 }))
}

fn manage(id: &str, action: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/{action}")).idempotency_key(key)
}

/// Prints a table row (`--nocapture`), the figures BENCHMARKS.md "Capacity" records.
fn row(name: &str, spent: &Spent) {
    eprintln!(
        "capacity | {name} | {} RCU | {} WCU | {:?}",
        spent.read,
        spent.write,
        spent
            .by_operation
            .iter()
            .map(|(op, u)| (op.as_str(), u.requests))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_meter_is_off_unless_started_and_sees_every_request() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    assert!(t.capacity.stop().is_empty(), "off by default");
    t.dynamo.reset();
    let (res, spent) = metered(&t, Call::status(&id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let requests: usize = spent.by_operation.values().map(|u| u.requests).sum();
    assert_eq!(requests, t.dynamo.total(), "{:?}", spent.by_operation);
    assert!(spent.read > 0.0, "{spent:?}");
}

#[tokio::test]
async fn start_status_usage_and_manage_consume_their_pinned_units() {
    let catalog = Catalog::from_json(ENTERPRISE).expect("catalog");
    let t = TestApp::with_config(|c| c.catalog = catalog).await;

    let (res, start) = metered(&t, Call::start("enterprise", "s1")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    row("start", &start);
    let id = res.json()["id"].as_str().unwrap().to_owned();

    let (res, refused) = metered(&t, Call::start("enterprise", "s2")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    row("refused start", &refused);

    let (res, status) = metered(&t, Call::status(&id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("status", &status);

    let (res, used) = metered(&t, usage(&id, "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("usage", &used);

    let (res, pause) = metered(&t, manage(&id, "pause", "p1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("pause", &pause);
    let (res, resume) = metered(&t, manage(&id, "resume", "r1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("resume", &resume);
    let extend = manage(&id, "extend", "e1")
        .admin()
        .json(&json!({ "days": 1 }));
    let (res, extend) = metered(&t, extend).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("extend", &extend);

    let (res, cancel) = metered(&t, Call::cancel(&id, "c1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("cancel", &cancel);

    // Every event's timeline entry (`store::timeline`) is one more transaction item: 2 WCU.
    assert_units(&[
        // 19: and the trial number's reservation (issue 27.2), one more 1 KB item.
        ("start", &start, (1.0, 19.0)),
        ("refused start", &refused, (1.0, 1.0)),
        ("status", &status, (1.0, 0.0)),
        ("usage", &used, (2.0, 5.0)),
        ("pause", &pause, (1.0, 19.0)),
        ("resume", &resume, (1.0, 19.0)),
        ("extend", &extend, (2.0, 20.0)),
        ("cancel", &cancel, (1.0, 16.0)),
    ]);
}

/// Usage on a busy trial (issue 25 item 3): the trial item carries its newest `KEPT_KEYS`
/// keys, so a recording costs the item's size in write units, at most that of a full map; the
/// first recording's cost is pinned above.
#[tokio::test]
async fn usage_on_a_busy_trial_consumes_its_pinned_units() {
    use trials::domain::usage::KEPT_KEYS;
    let catalog = Catalog::from_json(ENTERPRISE).expect("catalog");
    let t = TestApp::with_config(|c| c.catalog = catalog).await;
    let id = t.start_trial(ORG, "enterprise").await;
    for i in 0..KEPT_KEYS {
        let res = t.send(usage(&id, &format!("warm{i}"))).await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let (res, busy) = metered(&t, usage(&id, "busy")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("usage, 32 keys on the trial", &busy);
    assert_units(&[("usage, busy", &busy, (2.0, 9.0))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_payment_jobs_and_publish_consume_their_pinned_units() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let converted = t.start_trial(ORG, "growth").await;
    let expiring = t.start_trial("org_capacity2", "growth").await;

    let (res, convert) = metered(&t, Call::convert(&converted, "v1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    row("convert", &convert);

    let trial = writes::stored(&t, &converted).await.expect("trial");
    let session = trial
        .checkout
        .map(|c| c.session_id)
        .expect("an open session");
    stripe.pay(&session, PayMethod::Card).await.expect("paid");
    t.capacity.start();
    let outcome = t
        .deliver_from(&stripe, "checkout.session.completed", &session)
        .await;
    let payment = Spent::of(t.capacity.stop());
    assert_eq!(outcome, "converted");
    row("webhook payment", &payment);

    let policy = t.policy();
    t.clock.set(t.now() + policy.length_secs + 1);
    let expire = metered_job(&t, Job::Expire).await;
    row("expire (1 trial due)", &expire);
    t.clock.set(t.now() + policy.grace_secs + 1);
    let purge = metered_job(&t, Job::Purge).await;
    row("purge (1 trial due)", &purge);
    assert!(writes::stored(&t, &expiring).await.is_none(), "purged");
    t.capacity.start();
    let pumped = t.publish_events().await;
    let publish = Spent::of(t.capacity.stop());
    row(&format!("publish ({} events)", pumped.published), &publish);
    assert_eq!(pumped.published, 6, "{pumped:?}");

    // Each event's timeline entry: 2 WCU; the purge reads the trial's partition (1 RCU) and
    // deletes its entries (2 WCU each) in its transaction. Publish trims each trial's timeline
    // to the cap: one consistent keys-only Query per trial of the batch (1 RCU each).
    assert_units(&[
        ("convert", &convert, (1.0, 10.0)),
        ("webhook payment", &payment, (0.0, 9.0)),
        ("expire", &expire, (8.0, 13.0)),
        ("purge", &purge, (3.0, 13.0)),
        ("publish, 2 trials' events", &publish, (2.0, 20.0)),
    ]);
}
