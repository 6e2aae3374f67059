//! What the benchmarks run against: an embedded dynoxide with the table, API keys and a trial
//! for the function processes; in-process apps (the test kit) for round trips, latency and
//! sweep cost.
use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use serde_json::json;
use trials::auth::issue as keys;
use trials::config::Secret;
use trials::domain::api_key::{ApiKey, Projects};
use trials::domain::catalog::Catalog;
use trials::domain::{OrgId, Trial, TrialId};
use trials::jobs::{self, Job};
use trials::store::Store;
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{Call, TestApp, TestResponse, DAY, T0};

use crate::report::{Latency, RouteTrips, Sweep};

const TABLE: &str = "trials-bench";
const WEBHOOK_SECRET: &str = "whsec_bench";

#[derive(Clone, Copy)]
pub enum Event {
    Start,
    Status,
}

/// The store the function processes share, with keys for `org_bench_<n>` and one trial.
pub struct Fixtures {
    pub env: Vec<(String, String)>,
    keys: Vec<ApiKey>,
    trial: String,
}

fn org(n: usize) -> String {
    format!("org_bench_{n}")
}

impl Fixtures {
    pub async fn start() -> Result<Fixtures, String> {
        let endpoint = trials_local::embedded::start_dynoxide(None).await?;
        let store = Store::new(trials::aws::local_dynamodb(&endpoint), TABLE, 4);
        store.ensure_table().await.map_err(|e| e.to_string())?;
        let mut api_keys = Vec::new();
        for n in 0..1_100 {
            let org = OrgId::parse(&org(n)).expect("org id");
            let (key, _) = keys::create(&store, org, Projects::All, T0)
                .await
                .map_err(|e| e.to_string())?;
            api_keys.push(key);
        }
        // The status events' trial, for org 0 (starts use orgs 1 and up).
        let org0 = OrgId::parse(&org(0)).expect("org id");
        let trial = Trial::start(
            TrialId::generate(),
            org0,
            unix_now(),
            Catalog::builtin().get("growth").expect("growth").snapshot(),
        );
        put_trials(&store, std::slice::from_ref(&trial)).await?;
        let env = vec![
            ("TABLE_NAME".to_owned(), TABLE.to_owned()),
            ("DYNAMODB_ENDPOINT".to_owned(), endpoint),
            (
                "STRIPE_WEBHOOK_SECRET".to_owned(),
                WEBHOOK_SECRET.to_owned(),
            ),
            // As deployed: CloudWatch EMF metric lines beside the log lines (on by default only
            // inside Lambda, which these processes are not).
            ("METRICS".to_owned(), "on".to_owned()),
        ];
        Ok(Fixtures {
            env,
            keys: api_keys,
            trial: trial.id.to_string(),
        })
    }

    /// An API Gateway HTTP API (2.0) event; `run` picks a fresh org for starts.
    pub fn event(&self, kind: Event, run: usize) -> String {
        match kind {
            Event::Start => {
                let n = 1 + run % (self.keys.len() - 1);
                http_event(
                    "POST",
                    "/v1/trials/start",
                    &org(n),
                    self.keys[n].expose(),
                    Some(&format!("start-{run}")),
                    None,
                    Some(r#"{"plan":"growth"}"#),
                )
            }
            Event::Status => http_event(
                "GET",
                &format!("/v1/trials/{}", self.trial),
                &org(0),
                self.keys[0].expose(),
                None,
                Some(&self.trial),
                None,
            ),
        }
    }

    /// `count` invocations for `function`, to measure its memory under load.
    pub fn load(&self, function: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|run| match function {
                "start" => self.event(Event::Start, run),
                "status" => self.event(Event::Status, run),
                _ => json!({
                    "version": "0", "id": format!("bench-{run}"), "detail-type": "Scheduled Event",
                    "source": "aws.events", "account": "000000000000", "time": "2026-04-06T10:00:00Z",
                    "region": "us-east-1", "resources": [], "detail": {}
                })
                .to_string(),
            })
            .collect()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn http_event(
    method: &str,
    path: &str,
    org: &str,
    key: &str,
    idempotency_key: Option<&str>,
    id: Option<&str>,
    body: Option<&str>,
) -> String {
    let mut headers = json!({
        "authorization": format!("Bearer {key}"),
        "x-org-id": org,
        "x-project-id": "proj_bench",
        "content-type": "application/json",
    });
    if let Some(k) = idempotency_key {
        headers["idempotency-key"] = k.into();
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": id.map(|id| json!({ "id": id })),
        "requestContext": {
            "accountId": "000000000000", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench" },
            "requestId": "bench", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "06/Apr/2026:10:00:00 +0000", "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

async fn put_trials(store: &Store, trials: &[Trial]) -> Result<(), String> {
    for chunk in trials.chunks(25) {
        let requests = chunk
            .iter()
            .map(|t| {
                let put = PutRequest::builder()
                    .set_item(Some(store.trial_item(t, Default::default())))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut pending = Some(HashMap::from([(store.table_name().to_owned(), requests)]));
        while let Some(items) = pending.take().filter(|m| !m.is_empty()) {
            let out = store
                .client()
                .batch_write_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
            pending = out.unprocessed_items;
        }
    }
    Ok(())
}

fn sign(body: &str, t: i64) -> String {
    let mac =
        trials::crypto::hmac_sha256(WEBHOOK_SECRET.as_bytes(), format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", trials::crypto::hex(&mac))
}

/// A paid `checkout.session.completed` for a session convert created for `trial` of `org`
/// (its metadata binds the session to the trial, org and plan).
fn completed(event_id: &str, trial: &str, org: &str) -> String {
    json!({
        "id": event_id, "object": "event", "type": "checkout.session.completed", "created": T0,
        "data": { "object": {
            "id": format!("cs_test_{event_id}"), "object": "checkout.session", "client_reference_id": trial,
            "metadata": { "trial_id": trial, "org_id": org, "plan": "growth" },
            "customer": "cus_bench", "subscription": "sub_bench",
            "payment_status": "paid", "status": "complete", "mode": "subscription"
        }}
    })
    .to_string()
}

fn webhook(t: &TestApp, body: &str) -> Call {
    Call::post("/v1/webhooks/stripe")
        .without_auth()
        .header("stripe-signature", &sign(body, t.now()))
        .raw_body(body)
}

async fn bench_app() -> (TestApp, trials_local::stripe_standin::StripeStandIn) {
    with_stripe(|c| c.webhook.secrets = vec![Secret::new(WEBHOOK_SECRET)]).await
}

/// DynamoDB requests per operation, counted by the test kit's SDK interceptor. Each request
/// must succeed as intended (a figure for an error path would be for other code).
pub async fn round_trips() -> Result<Vec<RouteTrips>, String> {
    let (t, _stripe) = bench_app().await;
    let mut rows = Vec::new();
    let mut measure =
        |operation: &str, t: &TestApp, res: &TestResponse, status: u16, target: &str| {
            if res.status != status {
                return Err(format!(
                    "{operation}: expected HTTP {status}, got {}: {}",
                    res.status, res.body
                ));
            }
            rows.push(RouteTrips {
                operation: operation.to_owned(),
                dynamodb: t.dynamo.total(),
                detail: by_operation(t),
                target: target.to_owned(),
            });
            Ok(())
        };
    t.authorize(Call::get("/")).await; // warm the key cache, as steady traffic does
    t.dynamo.reset();
    let started = t.send(Call::start("growth", "rt-start")).await;
    measure("start", &t, &started, 201, "1")?;
    let id = json_id(started.body)?;
    t.dynamo.reset();
    let res = t.send(Call::status(&id)).await;
    measure("status (warm key cache)", &t, &res, 200, "1")?;
    let cold_key = keys::create(
        &t.app.store,
        OrgId::parse(ORG).unwrap(),
        Projects::All,
        t.now(),
    )
    .await
    .map_err(|e| e.to_string())?
    .0;
    t.dynamo.reset();
    let res = t.send(Call::status(&id).bearer(cold_key.expose())).await;
    measure("status (cold key cache)", &t, &res, 200, "1 (BatchGetItem)")?;
    t.dynamo.reset();
    let res = t.send(Call::convert(&id, "rt-convert")).await;
    measure("convert (+ 1 Stripe call)", &t, &res, 200, "≤ 3")?;
    t.dynamo.reset();
    let paid = t.send(webhook(&t, &completed("evt_rt", &id, ORG))).await;
    expect_outcome(&paid.body, "converted")?;
    measure(
        "webhook: payment for a session we created",
        &t,
        &paid,
        200,
        "1",
    )?;
    let other = t.start_trial("org_rt_cancel", "pro").await;
    t.authorize(Call::get("/").org("org_rt_cancel")).await;
    t.dynamo.reset();
    let res = t
        .send(Call::cancel(&other, "rt-cancel").org("org_rt_cancel"))
        .await;
    measure("cancel", &t, &res, 200, "2")?;
    rows.push(publish_round_trips().await?);
    Ok(rows)
}

fn by_operation(t: &TestApp) -> String {
    t.dynamo
        .by_operation()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expect_outcome(body: &str, outcome: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    if v["outcome"] == outcome {
        Ok(())
    } else {
        Err(format!("webhook: expected outcome {outcome}, got {body}"))
    }
}

/// The `publish` function on one stream batch of 10 event records (the mapping's batch size):
/// no DynamoDB request (the records carry the events), one `PutEvents` to a local EventBridge.
async fn publish_round_trips() -> Result<RouteTrips, String> {
    const BUS: &str = "trials-bench-bus";
    let recorder = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| recorder.publisher(BUS)).await;
    for i in 0..10 {
        t.start_trial(&format!("org_rt_publish_{i}"), "growth")
            .await;
    }
    t.dynamo.reset();
    let pumped = t.publish_events().await;
    let calls = recorder.calls();
    if pumped.published != 10 || calls.len() != 1 {
        return Err(format!(
            "publish: expected 10 events in 1 PutEvents, got {pumped:?} in {calls:?}"
        ));
    }
    let detail = match by_operation(&t) {
        d if d.is_empty() => format!("EventBridge PutEvents {}", calls.len()),
        d => format!("{d}, EventBridge PutEvents {}", calls.len()),
    };
    Ok(RouteTrips {
        operation: "publish (stream batch of 10 events)".into(),
        dynamodb: t.dynamo.total(),
        detail,
        target: "0 (+ 1 PutEvents per batch)".into(),
    })
}

fn json_id(body: String) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .ok_or(format!("no trial id in {body}"))
}

/// Handler time per request (the request is built and authorized before the clock starts).
async fn timed(t: &TestApp, call: Call) -> f64 {
    let req = t.authorize(call).await.build();
    let started = Instant::now();
    let _ = trials::api::handle_any(&t.app, req).await;
    started.elapsed().as_secs_f64() * 1000.0
}

pub async fn warm_latency(n: usize) -> Result<Vec<Latency>, String> {
    let (t, _stripe) = bench_app().await;
    let orgs: Vec<String> = (0..n).map(|i| format!("org_lat_{i}")).collect();
    for o in &orgs {
        t.api_key(o).await; // keys exist and are cached: steady traffic
    }
    let mut start = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for o in &orgs {
        let call = Call::start("growth", "lat-start").org(o);
        let req = t.authorize(call).await.build();
        let began = Instant::now();
        let res = trials::api::handle_any(&t.app, req).await;
        start.push(began.elapsed().as_secs_f64() * 1000.0);
        let body = trials_tests::requests::read(res).body;
        ids.push(json_id(body)?);
    }
    let mut status = Vec::with_capacity(n);
    let mut convert = Vec::with_capacity(n);
    let mut webhook_ms = Vec::with_capacity(n);
    let mut cancel = Vec::with_capacity(n);
    for (i, (o, id)) in orgs.iter().zip(&ids).enumerate() {
        status.push(timed(&t, Call::status(id).org(o)).await);
        if i % 2 == 0 {
            convert.push(timed(&t, Call::convert(id, "lat-convert").org(o)).await);
            webhook_ms
                .push(timed(&t, webhook(&t, &completed(&format!("evt_lat_{i}"), id, o))).await);
        } else {
            cancel.push(timed(&t, Call::cancel(id, "lat-cancel").org(o)).await);
        }
    }
    Ok(vec![
        Latency {
            route: "POST /v1/trials/start".into(),
            samples: start,
        },
        Latency {
            route: "GET /v1/trials/{id}".into(),
            samples: status,
        },
        Latency {
            route: "POST /v1/trials/{id}/convert (Stripe stand-in on loopback)".into(),
            samples: convert,
        },
        Latency {
            route: "POST /v1/webhooks/stripe".into(),
            samples: webhook_ms,
        },
        Latency {
            route: "POST /v1/trials/{id}/cancel".into(),
            samples: cancel,
        },
    ])
}

/// Expire then purge with `stored` trials of which `due` are due: items read, requests, time.
pub async fn sweep_cost() -> Result<Vec<Sweep>, String> {
    let mut rows = Vec::new();
    for stored in [10_000, 100_000] {
        let due = 1_000;
        let t = TestApp::new().await;
        let mut trials = Vec::with_capacity(stored);
        for i in 0..stored {
            // The due ones started 7 days ago; the rest today.
            let started = if i < due { T0 - 7 * DAY } else { T0 };
            let org = OrgId::parse(&format!("org_sweep_{i}")).expect("org id");
            trials.push(Trial::start(
                TrialId::generate(),
                org,
                started,
                t.terms("starter"),
            ));
        }
        put_trials(&t.app.store, &trials).await?;
        for (job, at) in [(Job::Expire, T0), (Job::Purge, T0 + 3 * DAY)] {
            t.clock.set(at);
            t.dynamo.reset();
            let began = Instant::now();
            let report = jobs::run(&t.app, job, None).await;
            rows.push(Sweep {
                job: job.name().to_owned(),
                stored,
                due,
                processed: report.processed,
                items_read: report.items_read,
                requests: t.dynamo.total(),
                wall_ms: began.elapsed().as_secs_f64() * 1000.0,
            });
        }
    }
    Ok(rows)
}
