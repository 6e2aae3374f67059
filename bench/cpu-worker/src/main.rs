//! Warm CPU time per invocation of each function's code (BENCHMARKS.md section 7).
//!
//! ```text
//! cpu-worker --endpoint URL --stripe-base URL --stripe-key KEY --records FILE --out FILE
//!            [--invocations 1000] [--warmup 20] [--only NAME,NAME] [--baseline-only]
//! ```
//! The harness serves DynamoDB (dynoxide) and the Stripe stand-in from its own process and
//! starts this one, which holds nothing but the functions' code, their clients and the log
//! writer (stdout, drained by the harness as Lambda's log pipe would be). Per function: the
//! state its invocations need is seeded, the API key cache warmed and every request built
//! first; then `getrusage(RUSAGE_SELF)` (user + sys, every thread of the process) is read
//! around the invocations only, run one after another as a warm Lambda instance runs them.
//!
//! Beside them, the **baseline**: one `GetItem` per invocation with the same client
//! (`trials::aws::local_dynamodb`), doing nothing else, in a process of its own without our log
//! subscriber (`--baseline-only`): what a function that only reads one item costs. The same
//! loop also runs here, under the subscriber, which shows what logging adds to every SDK call.
//! Both sides leave out the Lambda runtime's own work (reading the event, posting the
//! response).
//!
//! Every invocation must do what it is there for (a 201 start, a webhook that converts, a job
//! run that processes exactly one trial...), else the worker fails: a figure for an error path
//! would measure the wrong code.
//!
//! `CPU_WORKER_PERF_CTL=<fifo>`: writes `enable` / `disable` to a `perf record --control`
//! FIFO around each measured loop, so a profile holds the invocations and not the seeding.
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};
use trials::api::Route;
use trials::clock::ManualClock;
use trials::config::{Config, Secret};
use trials::domain::api_key::{ApiKey, KeyInfo, Projects};
use trials::domain::catalog::TrialTerms;
use trials::domain::{OrgId, Trial, TrialId, TrialPolicy};
use trials::jobs::{self, Job, RunReport};
use trials::publish::Publisher;
use trials::store::schema::{trial_pk, TRIAL_SK};
use trials::store::Store;
use trials::App;

/// 2026-04-06T10:00:00Z, the test kit's T0: API invocations run at this instant.
const T0: i64 = 1_775_469_600;
const DAY: i64 = 86_400;
/// The jobs' trials expire from here on, one second apart (well before T0's trials do).
const JOBS_BASE: i64 = T0 - 30 * DAY;
const PROJECT: &str = "proj_bench";
const WEBHOOK_SECRET: &str = "whsec_cpu_bench";
const TABLE: &str = "trials-cpu-bench";

struct Args {
    endpoint: String,
    stripe_base: String,
    stripe_key: String,
    records: String,
    out: String,
    invocations: usize,
    warmup: usize,
    only: Option<Vec<String>>,
    baseline_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        endpoint: String::new(),
        stripe_base: String::new(),
        stripe_key: String::new(),
        records: String::new(),
        out: String::new(),
        invocations: 1_000,
        warmup: 20,
        only: None,
        baseline_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint" => args.endpoint = value()?,
            "--stripe-base" => args.stripe_base = value()?,
            "--stripe-key" => args.stripe_key = value()?,
            "--records" => args.records = value()?,
            "--out" => args.out = value()?,
            "--invocations" => {
                args.invocations = value()?.parse().map_err(|_| "--invocations: a number")?
            }
            "--warmup" => args.warmup = value()?.parse().map_err(|_| "--warmup: a number")?,
            "--only" => args.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--baseline-only" => args.baseline_only = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for (name, v) in [
        ("--endpoint", &args.endpoint),
        ("--stripe-base", &args.stripe_base),
        ("--stripe-key", &args.stripe_key),
        ("--records", &args.records),
        ("--out", &args.out),
    ] {
        if v.is_empty() {
            return Err(format!("{name} is required"));
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("cpu-worker: {e}");
        std::process::exit(1);
    }
}

/// User and system CPU time of this process so far, in microseconds.
#[derive(Clone, Copy)]
struct Cpu {
    user_us: i64,
    sys_us: i64,
}

fn cpu_now() -> Cpu {
    // SAFETY: `getrusage` only writes into the zeroed struct we own and pass by pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) failed");
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    Cpu {
        user_us: us(usage.ru_utime),
        sys_us: us(usage.ru_stime),
    }
}

/// One measured loop.
struct Measured {
    name: String,
    invocations: usize,
    user_us: i64,
    sys_us: i64,
    wall_us: i64,
}

impl Measured {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "invocations": self.invocations,
            "user_us": self.user_us,
            "sys_us": self.sys_us,
            "wall_us": self.wall_us,
        })
    }
}

/// `perf record --control` support (see the module docs).
fn perf_ctl(command: &str) {
    if let Ok(path) = std::env::var("CPU_WORKER_PERF_CTL") {
        if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(path) {
            let _ = fifo.write_all(format!("{command}\n").as_bytes());
        }
    }
}

/// Runs `warm` through `f` unmeasured, then measures `inputs` through `f`, one after another.
async fn measure<T, F, Fut>(
    name: &str,
    warm: Vec<T>,
    inputs: Vec<T>,
    mut f: F,
) -> (Measured, Vec<Fut::Output>)
where
    F: FnMut(T) -> Fut,
    Fut: Future,
{
    for input in warm {
        f(input).await;
    }
    let count = inputs.len();
    let mut outputs = Vec::with_capacity(count);
    perf_ctl("enable");
    let wall = Instant::now();
    let before = cpu_now();
    for input in inputs {
        outputs.push(f(input).await);
    }
    let after = cpu_now();
    let wall_us = wall.elapsed().as_micros() as i64;
    perf_ctl("disable");
    let measured = Measured {
        name: name.to_owned(),
        invocations: count,
        user_us: after.user_us - before.user_us,
        sys_us: after.sys_us - before.sys_us,
        wall_us,
    };
    (measured, outputs)
}

struct Bench {
    app: App,
    clock: ManualClock,
    /// Warm-up invocations, then measured ones.
    warmup: usize,
    invocations: usize,
    records: Vec<Value>,
}

impl Bench {
    fn count(&self) -> usize {
        self.warmup + self.invocations
    }

    fn orgs(&self, set: &str) -> Vec<OrgId> {
        (0..self.count())
            .map(|i| OrgId::parse(&format!("org_cpu_{set}_{i}")).expect("org id"))
            .collect()
    }

    fn split<T>(&self, mut all: Vec<T>) -> (Vec<T>, Vec<T>) {
        let measured = all.split_off(self.warmup);
        (all, measured)
    }

    /// API keys for `orgs`, written concurrently (setup, not measured).
    async fn keys(&self, orgs: &[OrgId]) -> Result<Vec<(ApiKey, KeyInfo)>, String> {
        let mut out = Vec::with_capacity(orgs.len());
        for chunk in orgs.chunks(32) {
            let mut set = tokio::task::JoinSet::new();
            for (i, org) in chunk.iter().enumerate() {
                let store = self.app.store.clone();
                let org = org.clone();
                set.spawn(async move {
                    let created = trials::auth::issue::create(&store, org, Projects::All, T0).await;
                    (i, created)
                });
            }
            let mut got: Vec<Option<(ApiKey, KeyInfo)>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, created) = joined.map_err(|e| e.to_string())?;
                got[i] = Some(created.map_err(|e| e.to_string())?);
            }
            out.extend(got.into_iter().flatten());
        }
        Ok(out)
    }

    /// What a warm function's cache holds after its first request with each key.
    fn warm_cache(&self, keys: &[(ApiKey, KeyInfo)]) {
        for (key, info) in keys {
            self.app
                .keys
                .put_verified(key.hash(), info.clone(), T0 * 1000);
        }
    }

    /// Trials and their org guards, written in batches (setup, not measured).
    async fn seed(&self, trials: &[Trial]) -> Result<(), String> {
        let store = &self.app.store;
        let mut items = Vec::with_capacity(trials.len() * 2);
        for trial in trials {
            items.push(store.trial_item(trial, trial.policy()));
            let product = self.app.config.catalog.product_key(&trial.terms.product.id);
            let guard = store
                .guard_put(trial, &product)
                .map_err(|e| e.to_string())?;
            items.push(guard.item().clone());
        }
        for chunk in items.chunks(25) {
            let requests = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(|e| e.to_string())?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut pending = Some(HashMap::from([(store.table_name().to_owned(), requests)]));
            while let Some(batch) = pending.take().filter(|m| !m.is_empty()) {
                let out = store
                    .client()
                    .batch_write_item()
                    .set_request_items(Some(batch))
                    .send()
                    .await
                    .map_err(|e| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
                pending = out.unprocessed_items;
            }
        }
        Ok(())
    }

    /// One ACTIVE trial per org, started at `started(i)`.
    fn trials(&self, orgs: &[OrgId], started: impl Fn(usize) -> i64) -> Vec<Trial> {
        let terms = self.terms();
        orgs.iter()
            .enumerate()
            .map(|(i, org)| {
                Trial::start(TrialId::generate(), org.clone(), started(i), terms.clone())
            })
            .collect()
    }

    /// The terms of the plan every benchmark trial is on (`growth`), as start snapshots them.
    fn terms(&self) -> TrialTerms {
        self.app
            .config
            .catalog
            .get("growth")
            .expect("growth is in the built-in catalog")
            .snapshot()
    }
}

/// An API Gateway request as the functions get it: headers, path parameter, the invocation's
/// deadline in the Lambda context.
fn api_request(
    method: &str,
    path: &str,
    key: &ApiKey,
    org: &OrgId,
    idempotency_key: Option<&str>,
    id: Option<&TrialId>,
    body: Option<String>,
) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("authorization", format!("Bearer {}", key.expose()))
        .header("x-org-id", org.as_str())
        .header("x-project-id", PROJECT)
        .header("user-agent", "cpu-worker");
    if let Some(k) = idempotency_key {
        builder = builder.header("idempotency-key", k);
    }
    let body = match body {
        Some(b) => {
            builder = builder.header("content-type", "application/json");
            Body::Text(b)
        }
        None => Body::Empty,
    };
    let mut req: Request = builder.body(body).expect("request");
    if let Some(id) = id {
        req = req.with_path_parameters(HashMap::from([("id".to_owned(), id.to_string())]));
    }
    let mut ctx = lambda_http::Context::default();
    ctx.deadline = (T0 * 1000 + 10_000) as u64;
    req.with_lambda_context(ctx)
}

fn webhook_request(body: String, now: i64) -> Request {
    let mac = trials::crypto::hmac_sha256(
        WEBHOOK_SECRET.as_bytes(),
        format!("{now}.{body}").as_bytes(),
    );
    let signature = format!("t={now},v1={}", trials::crypto::hex(&mac));
    let req: Request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/v1/webhooks/stripe")
        .header("stripe-signature", signature)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .body(Body::Text(body))
        .expect("request");
    let mut ctx = lambda_http::Context::default();
    ctx.deadline = (T0 * 1000 + 10_000) as u64;
    req.with_lambda_context(ctx)
}

/// `checkout.session.completed`, paid, for a session convert created for `trial`.
fn completed(event_id: &str, session_id: &str, trial: &Trial) -> String {
    json!({
        "id": event_id, "object": "event", "api_version": "2025-03-31.basil", "created": T0,
        "type": "checkout.session.completed", "livemode": false,
        "data": { "object": {
            "id": session_id, "object": "checkout.session",
            "client_reference_id": trial.id.as_str(),
            "metadata": {
                "trial_id": trial.id.as_str(), "org_id": trial.org_id.as_str(),
                "plan": trial.plan.as_str()
            },
            "mode": "subscription", "payment_status": "paid", "status": "complete",
            "customer": "cus_bench", "subscription": format!("sub_{session_id}"),
            "amount_total": 4900, "currency": "usd"
        }}
    })
    .to_string()
}

fn body_of(res: &Response<Body>) -> &str {
    match res.body() {
        Body::Text(t) => t,
        _ => "",
    }
}

/// Every response has `status` (and, if given, contains `needle`).
fn check_responses(
    name: &str,
    responses: &[Response<Body>],
    status: u16,
    needle: Option<&str>,
) -> Result<(), String> {
    for res in responses {
        let body = body_of(res);
        if res.status().as_u16() != status || needle.is_some_and(|n| !body.contains(n)) {
            return Err(format!(
                "{name}: expected HTTP {status}{}, got {}: {body}",
                needle.map(|n| format!(" with {n}")).unwrap_or_default(),
                res.status()
            ));
        }
    }
    Ok(())
}

fn check_runs(name: &str, reports: &[RunReport]) -> Result<(), String> {
    match reports.iter().find(|r| r.processed != 1 || r.failed != 0) {
        Some(r) => Err(format!(
            "{name}: a run did not process exactly one trial: {r:?}"
        )),
        None => Ok(()),
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    // As the deployed functions: JSON log lines on stdout at LOG_LEVEL (default info). The
    // baseline is a function without them.
    if !args.baseline_only {
        trials::telemetry::init();
    }
    let records: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&args.records).map_err(|e| format!("{}: {e}", args.records))?,
    )
    .map_err(|e| format!("{}: {e}", args.records))?;
    if records.is_empty() {
        return Err("no stream records to publish".into());
    }

    let mut config = Config::from_lookup(|_| None)?;
    config.table_name = TABLE.into();
    config.stripe.api_base = args.stripe_base.clone();
    config.stripe.secret_key = Some(Secret::new(args.stripe_key.clone()));
    config.webhook.secrets = vec![Secret::new(WEBHOOK_SECRET)];
    let client = trials::aws::local_dynamodb(&args.endpoint);
    let store = Store::new(client.clone(), TABLE, config.due_shards);
    store.ensure_table().await.map_err(|e| e.to_string())?;
    let clock = ManualClock::at(T0);
    let app = App::new(config, store, Arc::new(clock.clone()));
    let bench = Bench {
        app,
        clock,
        warmup: args.warmup,
        invocations: args.invocations,
        records,
    };
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    };

    let terms = bench.terms();
    let policy = TrialPolicy {
        length_secs: terms.trial_length_secs,
        grace_secs: terms.grace_secs,
    };
    let live_orgs = bench.orgs("live");
    let live = bench.trials(&live_orgs, |_| T0 - DAY);
    bench.seed(&live).await?;

    // The baseline: one GetItem of a trial item, nothing else.
    let baseline = |label: &str| {
        let ids: Vec<String> = live.iter().map(|t| trial_pk(&t.id)).collect();
        let (warm, measured) = bench.split(ids);
        let client = client.clone();
        let label = label.to_owned();
        async move {
            let get = |pk: String| {
                client
                    .get_item()
                    .table_name(TABLE)
                    .key("pk", AttributeValue::S(pk))
                    .key("sk", AttributeValue::S(TRIAL_SK.to_owned()))
                    .consistent_read(true)
                    .send()
            };
            let (m, outs) = measure(&label, warm, measured, get).await;
            match outs
                .iter()
                .find(|o| !matches!(o, Ok(out) if out.item.is_some()))
            {
                Some(bad) => Err(format!("baseline GetItem: {bad:?}")),
                None => Ok(m),
            }
        }
    };
    let mut results = Vec::new();
    if args.baseline_only {
        results.push(baseline("baseline").await?);
        results.push(baseline("baseline").await?);
        return write_results(&args.out, &results);
    }
    results.push(baseline("GetItem under the log subscriber").await?);

    // What each function's invocations need, seeded up front (none of it measured): keys for
    // fresh orgs (start), live trials with their keys (status, then cancel), trials to convert
    // then pay for (convert, stripe-webhook), trials expiring one second apart (expire, purge).
    let start_orgs = bench.orgs("start");
    let start_keys = match wanted("start") {
        true => bench.keys(&start_orgs).await?,
        false => Vec::new(),
    };
    let live_keys = match wanted("status") || wanted("cancel") {
        true => bench.keys(&live_orgs).await?,
        false => Vec::new(),
    };
    let convert_orgs = bench.orgs("convert");
    let (convert_keys, converting) = match wanted("convert") || wanted("stripe-webhook") {
        true => {
            let converting = bench.trials(&convert_orgs, |_| T0 - DAY);
            bench.seed(&converting).await?;
            (bench.keys(&convert_orgs).await?, converting)
        }
        false => (Vec::new(), Vec::new()),
    };
    if wanted("expire") || wanted("purge") {
        let job_orgs = bench.orgs("job");
        let jobs_trials = bench.trials(&job_orgs, |i| JOBS_BASE + i as i64 - policy.length_secs);
        bench.seed(&jobs_trials).await?;
    }

    let app = &bench.app;

    if wanted("start") {
        bench.warm_cache(&start_keys);
        let requests: Vec<Request> = start_keys
            .iter()
            .zip(&start_orgs)
            .enumerate()
            .map(|(i, ((key, _), org))| {
                api_request(
                    "POST",
                    "/v1/trials/start",
                    key,
                    org,
                    Some(&format!("start-{i}")),
                    None,
                    Some(r#"{"plan":"growth"}"#.to_owned()),
                )
            })
            .collect();
        let (warm, measured) = bench.split(requests);
        let (m, outs) = measure("start", warm, measured, |req| {
            trials::api::handle(app, Route::Start, req)
        })
        .await;
        check_responses("start", &outs, 201, None)?;
        results.push(m);
    }

    if wanted("status") {
        bench.warm_cache(&live_keys);
        let requests: Vec<Request> = live
            .iter()
            .zip(&live_keys)
            .map(|(trial, (key, _))| {
                let path = format!("/v1/trials/{}", trial.id);
                api_request(
                    "GET",
                    &path,
                    key,
                    &trial.org_id,
                    None,
                    Some(&trial.id),
                    None,
                )
            })
            .collect();
        let (warm, measured) = bench.split(requests);
        let (m, outs) = measure("status", warm, measured, |req| {
            trials::api::handle(app, Route::Status, req)
        })
        .await;
        check_responses("status", &outs, 200, Some("\"ACTIVE\""))?;
        results.push(m);
    }

    if wanted("cancel") {
        bench.warm_cache(&live_keys);
        let requests: Vec<Request> = live
            .iter()
            .zip(&live_keys)
            .enumerate()
            .map(|(i, (trial, (key, _)))| {
                let path = format!("/v1/trials/{}/cancel", trial.id);
                let idem = format!("cancel-{i}");
                api_request(
                    "POST",
                    &path,
                    key,
                    &trial.org_id,
                    Some(&idem),
                    Some(&trial.id),
                    None,
                )
            })
            .collect();
        let (warm, measured) = bench.split(requests);
        let (m, outs) = measure("cancel", warm, measured, |req| {
            trials::api::handle(app, Route::Cancel, req)
        })
        .await;
        check_responses("cancel", &outs, 200, Some("\"CANCELED\""))?;
        results.push(m);
    }

    if wanted("convert") || wanted("stripe-webhook") {
        bench.warm_cache(&convert_keys);
        let requests: Vec<Request> = converting
            .iter()
            .zip(&convert_keys)
            .enumerate()
            .map(|(i, (trial, (key, _)))| {
                let path = format!("/v1/trials/{}/convert", trial.id);
                let idem = format!("convert-{i}");
                api_request(
                    "POST",
                    &path,
                    key,
                    &trial.org_id,
                    Some(&idem),
                    Some(&trial.id),
                    None,
                )
            })
            .collect();
        let (warm, measured) = bench.split(requests);
        let (m, outs) = measure("convert", warm, measured, |req| {
            trials::api::handle(app, Route::Convert, req)
        })
        .await;
        check_responses("convert", &outs, 200, Some("checkout_url"))?;
        if wanted("convert") {
            results.push(m);
        }
    }

    if wanted("stripe-webhook") {
        // The payments for the sessions convert just created.
        let requests: Vec<Request> = converting
            .iter()
            .enumerate()
            .map(|(i, trial)| {
                let body = completed(&format!("evt_cpu_{i}"), &format!("cs_cpu_{i}"), trial);
                webhook_request(body, T0)
            })
            .collect();
        let (warm, measured) = bench.split(requests);
        let (m, outs) = measure("stripe-webhook", warm, measured, |req| {
            trials::api::handle(app, Route::StripeWebhook, req)
        })
        .await;
        check_responses(
            "stripe-webhook",
            &outs,
            200,
            Some("\"outcome\":\"converted\""),
        )?;
        results.push(m);
    }

    if wanted("expire") || wanted("purge") {
        // Run i happens when trial i expires: each run finds exactly one trial due.
        let times: Vec<i64> = (0..bench.count()).map(|i| JOBS_BASE + i as i64).collect();
        let (warm, measured) = bench.split(times);
        let (m, reports) = measure("expire", warm, measured, |at| {
            bench.clock.set(at);
            jobs::run(app, Job::Expire, None)
        })
        .await;
        check_runs("expire", &reports)?;
        if wanted("expire") {
            results.push(m);
        }
    }

    if wanted("purge") {
        // The same trials, each as its grace period ends.
        let times: Vec<i64> = (0..bench.count())
            .map(|i| JOBS_BASE + policy.grace_secs + i as i64)
            .collect();
        let (warm, measured) = bench.split(times);
        let (m, reports) = measure("purge", warm, measured, |at| {
            bench.clock.set(at);
            jobs::run(app, Job::Purge, None)
        })
        .await;
        check_runs("purge", &reports)?;
        results.push(m);
    }
    bench.clock.set(T0);

    for batch in [1, 10] {
        let name = format!(
            "publish ({batch} record{})",
            if batch == 1 { "" } else { "s" }
        );
        if !wanted("publish") && !wanted(&name) {
            continue;
        }
        let publisher = Publisher::Log;
        let records = &bench.records;
        let events: Vec<Value> = (0..bench.count())
            .map(|i| {
                let batch: Vec<Value> = (0..batch)
                    .map(|j| records[(i * batch + j) % records.len()].clone())
                    .collect();
                json!({ "Records": batch })
            })
            .collect();
        let (warm, measured) = bench.split(events);
        let (publisher, store) = (&publisher, &app.store);
        // The funnel events among the records are counted too (one small transaction each;
        // repeats find their marker and add nothing).
        let (m, outs) = measure(&name, warm, measured, |event| async move {
            trials::publish::stream::handle(publisher, store, &event).await
        })
        .await;
        if let Some(bad) = outs
            .iter()
            .find(|r| r.published != batch || !r.failed_sequence_numbers.is_empty())
        {
            return Err(format!("{name}: {bad:?}"));
        }
        results.push(m);
    }

    results.push(baseline("GetItem under the log subscriber").await?);
    write_results(&args.out, &results)
}

fn write_results(path: &str, results: &[Measured]) -> Result<(), String> {
    let out = json!({ "results": results.iter().map(Measured::to_json).collect::<Vec<_>>() });
    std::fs::write(path, out.to_string()).map_err(|e| format!("{path}: {e}"))
}
