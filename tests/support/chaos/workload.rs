//! The workloads under the layer, for the chaos tests and `make chaos`: a client that
//! retries a 5xx with the same `Idempotency-Key` (as the API asks clients to), concurrency
//! bounded by a semaphore, and what each call saw (first answer, last answer, attempts, the
//! latency of every attempt).
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::requests::Call;
use crate::{TestApp, TestResponse};

/// Attempts a retrying client makes at most (the first one included).
pub const CLIENT_ATTEMPTS: usize = 5;

/// One call as the retrying client saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The route, for latency figures (`start`, `usage`...).
    pub route: &'static str,
    /// The first attempt's status.
    pub first: u16,
    /// The last attempt's answer: the first below 500, or the last 5xx when attempts ran out.
    pub last: TestResponse,
    pub attempts: usize,
    /// Each attempt's latency.
    pub latencies: Vec<Duration>,
}

impl Sent {
    pub fn first_failed(&self) -> bool {
        self.first >= 500
    }
}

/// Sends the call `call` builds (the same key every time) until it answers below 500, at most
/// [`CLIENT_ATTEMPTS`] times, pausing 20, 40, 80... ms between attempts.
pub async fn send_retrying(t: &TestApp, route: &'static str, call: impl Fn() -> Call) -> Sent {
    let mut latencies = Vec::new();
    let mut first = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let began = Instant::now();
        let res = t.send(call()).await;
        latencies.push(began.elapsed());
        first.get_or_insert(res.status);
        if res.status < 500 || attempt == CLIENT_ATTEMPTS {
            return Sent {
                route,
                first: first.unwrap_or(res.status),
                last: res,
                attempts: attempt,
                latencies,
            };
        }
        tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
    }
}

/// Runs `n` calls, at most `concurrency` at once; answers in call order.
pub async fn concurrently<F, Fut>(n: usize, concurrency: usize, call: F) -> Vec<Sent>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Sent> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permits = permits.clone();
        let fut = call(i);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            (i, fut.await)
        });
    }
    let mut out: Vec<Option<Sent>> = vec![None; n];
    while let Some(done) = tasks.join_next().await {
        let (i, sent) = done.expect("workload task");
        out[i] = Some(sent);
    }
    out.into_iter()
        .map(|s| s.expect("every call ran"))
        .collect()
}

/// The org of the `i`-th distinct-org start.
pub fn org(prefix: &str, i: usize) -> String {
    format!("org_{prefix}{i:04}")
}

/// Creates (and caches) the kit's API key of each org before a workload, so the workload's
/// figures are the API's alone.
pub async fn warm_keys(t: &TestApp, orgs: impl IntoIterator<Item = String>) {
    for org in orgs {
        t.api_key(&org).await;
    }
}

/// `n` starts of `n` distinct orgs (`org(prefix, i)`), each with its own key.
pub async fn starts_of_distinct_orgs(
    t: &TestApp,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Vec<Sent> {
    warm_keys(t, (0..n).map(|i| org(prefix, i))).await;
    concurrently(n, concurrency, |i| {
        let t = t.clone();
        let org = org(prefix, i);
        async move {
            send_retrying(&t, "start", || {
                Call::start("growth", &format!("start-{org}")).org(&org)
            })
            .await
        }
    })
    .await
}

/// `n` starts for `org`, each with a new key.
pub async fn starts_for_one_org(t: &TestApp, org: &str, n: usize, concurrency: usize) -> Vec<Sent> {
    warm_keys(t, [org.to_owned()]).await;
    concurrently(n, concurrency, |i| {
        let t = t.clone();
        let org = org.to_owned();
        async move {
            send_retrying(&t, "start", || {
                Call::start("growth", &format!("again-{i}")).org(&org)
            })
            .await
        }
    })
    .await
}

/// `POST /v1/trials/{id}/usage` of one unit of `option`, under `key`.
pub fn usage_call(id: &str, option: &str, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&serde_json::json!({ "option": option, "quantity": 1 }))
}

/// `n` usage calls of one unit each on trial `id` (of the default org), each with its own key.
pub async fn usage_on_one_trial(
    t: &TestApp,
    id: &str,
    option: &str,
    n: usize,
    concurrency: usize,
) -> Vec<Sent> {
    concurrently(n, concurrency, |i| {
        let t = t.clone();
        let id = id.to_owned();
        let option = option.to_owned();
        async move {
            send_retrying(&t, "usage", || {
                usage_call(&id, &option, &format!("usage-{i}"))
            })
            .await
        }
    })
    .await
}

/// How many calls' first attempt answered 5xx.
pub fn first_attempt_5xx(sent: &[Sent]) -> usize {
    sent.iter().filter(|s| s.first_failed()).count()
}

/// Final statuses and how many calls ended with each.
pub fn final_statuses(sent: &[Sent]) -> BTreeMap<u16, usize> {
    let mut out = BTreeMap::new();
    for s in sent {
        *out.entry(s.last.status).or_default() += 1;
    }
    out
}

/// The `q`-quantile (0..=1) of `samples`, nearest rank.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// Every item of the app's table, read without the layer (what the store holds, whatever the
/// layer did to the requests that wrote it).
pub async fn all_items(t: &TestApp) -> Vec<trials::store::codec::Item> {
    let client = trials::aws::local_dynamodb(&t.endpoint);
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(t.app.store.table_name())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the table");
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

/// A string attribute of a stored item, or `""` when it has none.
pub fn text(item: &trials::store::codec::Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Every item of the app's table by kind (`pk` up to its first `#`; a trial's timeline
/// entries, in the trial's partition, as `TIMELINE`), read without the layer.
pub async fn items_by_kind(t: &TestApp) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for item in all_items(t).await {
        let text = |name: &str| text(&item, name);
        let (pk, sk) = (text("pk"), text("sk"));
        let kind = match pk.split('#').next().unwrap_or_default() {
            _ if sk.starts_with(trials::store::timeline::ENTRY_PREFIX) => "TIMELINE".to_owned(),
            kind => kind.to_owned(),
        };
        *out.entry(kind).or_default() += 1;
    }
    out
}
