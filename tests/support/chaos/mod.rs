//! A DynamoDB semantics layer: what real DynamoDB does that the embedded dynoxide never does
//! (dynoxide serialises every write: no conflicts, no throttles, no lost responses).
//!
//! It sits in process between the SDK client and dynoxide, as the client's HTTP connector
//! ([`ChaosClient`]): every attempt the SDK sends, retries included, passes through
//! [`Chaos`], which reads `X-Amz-Target` and the JSON body and either answers an error in
//! DynamoDB's JSON error format or forwards the request to dynoxide (headers and SigV4
//! signature as they are: dynoxide accepts them). It models, each switchable in
//! [`ChaosSpec`]:
//! - **transaction conflicts**: a `TransactWriteItems` holds its items (puts, updates, deletes
//!   and condition checks) for [`ChaosSpec::hold`] of real time before it is applied; another
//!   `TransactWriteItems` touching one of them meanwhile is cancelled
//!   (`TransactionCanceledException`, `TransactionConflict` at that item's index, `None`
//!   elsewhere), and a `PutItem` / `UpdateItem` / `DeleteItem` / `BatchWriteItem` on one gets
//!   `TransactionConflictException`;
//! - **throttling** of writes: `ThrottlingException` or `ProvisionedThroughputExceededException`
//!   (HTTP 400), half each;
//! - **500s** on writes, before the write is applied and after it is applied (the lost
//!   response: the SDK retries a write that already happened);
//! - **GSI lag**: a `Query` with `IndexName` does not see items written less than
//!   [`ChaosSpec::gsi_lag`] ago (they are left out of `Items` and `Count`; an item that a
//!   write took out of the index is not shown stale, which is the one lag case not modelled);
//! - **`UnprocessedKeys`** in `BatchGetItem`: each requested key, at
//!   [`ChaosSpec::unprocessed_rate`], is not read and comes back under `UnprocessedKeys`
//!   (at least one key of a request is always read, as DynamoDB answers a request it can
//!   serve none of with a throttle instead).
//!
//! Not modelled: a single write holds nothing (a transaction meeting an in-flight `PutItem`
//! goes through), `TransactGetItems` (unused here), and an item a write took out of an index
//! still showing there during the lag.
//!
//! Reproducible: the faults come from a SplitMix64 stream seeded by [`ChaosSpec::seed`] and
//! the sequence number of the write (or batch read), so the same seed and the same order of
//! writes give the same faults (concurrent workloads can order their writes differently run
//! to run; the tests assert invariants, which must hold for any order). A lost response is
//! lost whatever it was: a transaction refused for its conditions can have its answer
//! replaced by a 500 too.
//!
//! Cost: one JSON parse of each request body (and of `Query` / `BatchGetItem` responses when
//! their behaviour is on), one mutex for the held-item table, and the hold itself: every
//! `TransactWriteItems` takes at least [`ChaosSpec::hold`] of wall time.
//!
//! The SDK's own retries (standard mode, the SDK default for `BehaviorVersion::latest()`):
//! 3 attempts in total per call, for throttling codes and HTTP 500/502/503/504, with full
//! jitter backoff from a 1 s base (`rand * 1 s`, then `rand * 2 s`). Neither
//! `TransactionConflictException` nor `TransactionCanceledException` is retried by the SDK;
//! the store retries cancelled transactions itself (`store::tx`). A `TransactWriteItems`
//! retried after a lost response carries the same `ClientRequestToken` (the SDK fills it once
//! per call), which dynoxide, like DynamoDB, answers as a replay without writing again. The
//! SDK's retry quota is a token bucket per retry partition, process-wide (500 tokens, 5 per
//! retry, 1 back per first-attempt success); each chaos client gets a partition of its own
//! (`TestApp::with_chaos`), as a Lambda process would.
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{json, Value};

const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// Which behaviours are on, and how often. Rates are per write request (each attempt the SDK
/// makes, retries included); `Duration::ZERO` switches a delay off.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosSpec {
    pub seed: u64,
    /// How long a `TransactWriteItems` holds its items; zero: transactions never conflict.
    pub hold: Duration,
    /// Writes answered `ThrottlingException` / `ProvisionedThroughputExceededException`.
    pub throttle_rate: f64,
    /// Writes answered HTTP 500 without being applied.
    pub unapplied_500_rate: f64,
    /// Writes applied and then answered HTTP 500 (the lost response).
    pub applied_500_rate: f64,
    /// How long a write stays invisible to `Query` on an index.
    pub gsi_lag: Duration,
    /// The share of `BatchGetItem` keys moved to `UnprocessedKeys`.
    pub unprocessed_rate: f64,
}

impl ChaosSpec {
    /// Nothing on: the layer forwards everything (and still counts).
    pub fn off(seed: u64) -> ChaosSpec {
        ChaosSpec {
            seed,
            hold: Duration::ZERO,
            throttle_rate: 0.0,
            unapplied_500_rate: 0.0,
            applied_500_rate: 0.0,
            gsi_lag: Duration::ZERO,
            unprocessed_rate: 0.0,
        }
    }

    /// The documented mix: 15 ms hold, 2% throttles, 1% unapplied 500s, 2% applied
    /// then 500 (no GSI lag, no unprocessed keys).
    pub fn documented(seed: u64) -> ChaosSpec {
        ChaosSpec {
            hold: Duration::from_millis(15),
            throttle_rate: 0.02,
            unapplied_500_rate: 0.01,
            applied_500_rate: 0.02,
            ..ChaosSpec::off(seed)
        }
    }

    /// The documented mix plus index lag and unprocessed batch keys.
    pub fn everything(seed: u64) -> ChaosSpec {
        ChaosSpec {
            gsi_lag: Duration::from_millis(50),
            unprocessed_rate: 0.3,
            ..ChaosSpec::documented(seed)
        }
    }
}

/// What the layer did, since it started or its last [`Chaos::reset_stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Attempts that reached the layer, by operation (`PutItem`, `TransactWriteItems`...).
    pub requests: BTreeMap<String, usize>,
    /// Attempts the SDK marked as a retry (`amz-sdk-request: attempt=2..`).
    pub sdk_retries: usize,
    /// Transactions cancelled for a conflict.
    pub tx_conflicts: usize,
    /// Single writes answered `TransactionConflictException`.
    pub write_conflicts: usize,
    /// Conflicting items by kind: the prefix of `pk` before `#` (`TRIAL`, `ORG`, `STATS`...).
    pub conflicts_by_kind: BTreeMap<String, usize>,
    pub throttled: usize,
    pub unapplied_500: usize,
    pub applied_500: usize,
    /// Items left out of index queries for lag.
    pub gsi_hidden: usize,
    /// Keys moved to `UnprocessedKeys`.
    pub unprocessed_keys: usize,
}

impl ChaosStats {
    /// Every fault injected, of any kind.
    pub fn faults(&self) -> usize {
        self.tx_conflicts
            + self.write_conflicts
            + self.throttled
            + self.unapplied_500
            + self.applied_500
            + self.gsi_hidden
            + self.unprocessed_keys
    }
}

/// A held item: which transaction holds it.
type Holder = u64;

#[derive(Debug)]
struct State {
    /// Changed only by [`Chaos::set_spec`], between a test's phases.
    spec: Mutex<ChaosSpec>,
    /// Requests seen: the PRNG stream's position.
    sequence: AtomicU64,
    held: Mutex<HashMap<String, Holder>>,
    /// When each item was last written (for the index lag).
    written: Mutex<HashMap<String, Instant>>,
    stats: Mutex<ChaosStats>,
    /// Bumped by [`Chaos::release_holds`]: every hold waiting then ends at once.
    release: tokio::sync::watch::Sender<u64>,
}

/// The layer's shared state: the spec, the held items and the counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Chaos {
    state: Arc<State>,
}

impl Chaos {
    pub fn new(spec: ChaosSpec) -> Chaos {
        Chaos {
            state: Arc::new(State {
                spec: Mutex::new(spec),
                sequence: AtomicU64::new(0),
                held: Mutex::default(),
                written: Mutex::default(),
                stats: Mutex::default(),
                release: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    pub fn spec(&self) -> ChaosSpec {
        self.state.spec.lock().unwrap().clone()
    }

    /// Changes the behaviour from the next request on (e.g. a test's set-up without faults,
    /// then its race under a long hold).
    pub fn set_spec(&self, spec: ChaosSpec) {
        *self.state.spec.lock().unwrap() = spec;
    }

    pub fn stats(&self) -> ChaosStats {
        self.state.stats.lock().unwrap().clone()
    }

    pub fn reset_stats(&self) {
        *self.state.stats.lock().unwrap() = ChaosStats::default();
    }

    /// A retry partition name of its own (`chaos-<n>`): see `TestApp::with_chaos`.
    pub fn partition_name(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!("chaos-{}", NEXT.fetch_add(1, Ordering::SeqCst))
    }

    /// Items held by transactions in flight now.
    pub fn held(&self) -> usize {
        self.state.held.lock().unwrap().len()
    }

    /// Waits until some transaction holds an item (a test's explicit interleaving: a long
    /// hold, the racing write, then [`Chaos::release_holds`]). Fails the test after a
    /// generous minute instead of hanging.
    pub async fn until_held(&self) {
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            while self.held() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        waited.expect("no transaction came to hold an item");
    }

    /// Ends every hold now: the transactions waiting apply and answer.
    pub fn release_holds(&self) {
        self.state.release.send_modify(|n| *n += 1);
    }

    /// `inner` (the client's real HTTP client) behind this layer.
    pub fn http_client(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(ChaosClient {
            inner,
            chaos: self.clone(),
        })
    }

    fn stat(&self, f: impl FnOnce(&mut ChaosStats)) {
        f(&mut self.state.stats.lock().unwrap());
    }

    /// The request's own random stream: reproducible from the seed and its sequence number.
    /// Only the requests a fault can hit (writes, batch reads) take a number, so concurrent
    /// plain reads cannot shift the writes' faults.
    fn rng(&self) -> SplitMix64 {
        let n = self.state.sequence.fetch_add(1, Ordering::SeqCst);
        SplitMix64::new(self.spec().seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    async fn handle(
        &self,
        inner: SharedHttpConnector,
        request: HttpRequest,
    ) -> Result<HttpResponse, ConnectorError> {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .unwrap_or("unknown")
            .to_owned();
        let retry = request
            .headers()
            .get("amz-sdk-request")
            .is_some_and(|v| !v.contains("attempt=1;") && v.contains("attempt="));
        self.stat(|s| {
            *s.requests.entry(operation.clone()).or_default() += 1;
            s.sdk_retries += usize::from(retry);
        });
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let spec = &self.spec();

        let write_keys = match operation.as_str() {
            "PutItem" => Some(vec![item_key(&body["Item"])]),
            "UpdateItem" | "DeleteItem" => Some(vec![item_key(&body["Key"])]),
            "TransactWriteItems" => Some(transaction_keys(&body)),
            "BatchWriteItem" => Some(batch_write_keys(&body)),
            _ => None,
        };
        let Some(keys) = write_keys else {
            return match operation.as_str() {
                "Query" if spec.gsi_lag > Duration::ZERO && body["IndexName"].is_string() => {
                    let response = forward(&inner, request).await?;
                    self.hide_recent(response).await
                }
                "BatchGetItem" if spec.unprocessed_rate > 0.0 => {
                    self.batch_get(&inner, request, body, &mut self.rng()).await
                }
                _ => forward(&inner, request).await,
            };
        };

        // The faults of a write, in the order DynamoDB meets them: admission (throttle), the
        // front end failing before the write, the write's own conflicts, then the response lost.
        let mut rng = self.rng();
        let roll = rng.next_f64();
        let mut edge = spec.throttle_rate;
        if roll < edge {
            self.stat(|s| s.throttled += 1);
            let code = if rng.next_u64().is_multiple_of(2) {
                "ThrottlingException"
            } else {
                "ProvisionedThroughputExceededException"
            };
            return Ok(error(
                400,
                code,
                "Throughput exceeds the current capacity (chaos)",
            ));
        }
        edge += spec.unapplied_500_rate;
        if roll < edge {
            self.stat(|s| s.unapplied_500 += 1);
            return Ok(internal_error());
        }
        edge += spec.applied_500_rate;
        let lose_response = roll < edge;

        let response = if operation == "TransactWriteItems" {
            match self.transact(&inner, request, &keys).await? {
                Transacted::Conflict(response) => return Ok(response),
                Transacted::Done(response) => response,
            }
        } else {
            if spec.hold > Duration::ZERO {
                let held = self.state.held.lock().unwrap();
                if let Some(key) = keys.iter().flatten().find(|k| held.contains_key(*k)) {
                    let kind = kind_of(key);
                    drop(held);
                    self.stat(|s| {
                        s.write_conflicts += 1;
                        *s.conflicts_by_kind.entry(kind).or_default() += 1;
                    });
                    return Ok(error(
                        400,
                        "TransactionConflictException",
                        "Transaction is ongoing for the item",
                    ));
                }
            }
            let response = forward(&inner, request).await?;
            self.mark_written(&keys, &response);
            response
        };
        if lose_response {
            self.stat(|s| s.applied_500 += 1);
            return Ok(internal_error());
        }
        Ok(response)
    }

    /// Holds the transaction's items (or cancels it on a conflict), waits the hold, releases
    /// them and applies it.
    async fn transact(
        &self,
        inner: &SharedHttpConnector,
        request: HttpRequest,
        keys: &[Option<String>],
    ) -> Result<Transacted, ConnectorError> {
        let hold = self.spec().hold;
        if hold == Duration::ZERO {
            let response = forward(inner, request).await?;
            self.mark_written(keys, &response);
            return Ok(Transacted::Done(response));
        }
        let me: Holder = next_holder();
        // Subscribed before the items are held: a release from then on is seen.
        let mut released = self.state.release.subscribe();
        {
            let mut held = self.state.held.lock().unwrap();
            let conflicts: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.as_ref().is_some_and(|k| held.contains_key(k)))
                .map(|(i, _)| i)
                .collect();
            if !conflicts.is_empty() {
                drop(held);
                self.stat(|s| {
                    s.tx_conflicts += 1;
                    for &i in &conflicts {
                        let kind = kind_of(keys[i].as_deref().unwrap_or_default());
                        *s.conflicts_by_kind.entry(kind).or_default() += 1;
                    }
                });
                return Ok(Transacted::Conflict(cancelled_for_conflict(
                    keys.len(),
                    &conflicts,
                )));
            }
            for key in keys.iter().flatten() {
                held.insert(key.clone(), me);
            }
        }
        // Released however this ends (a dropped future included): a leaked hold would
        // conflict every later write of the item.
        let release = Release {
            chaos: self,
            keys,
            me,
        };
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = released.changed() => {}
        }
        // The hold is the transaction's time in flight, exactly: dynoxide's own time to apply
        // it (slow under a loaded debug build) is not DynamoDB's and holds nothing.
        drop(release);
        let response = forward(inner, request).await?;
        self.mark_written(keys, &response);
        Ok(Transacted::Done(response))
    }

    fn mark_written(&self, keys: &[Option<String>], response: &HttpResponse) {
        if self.spec().gsi_lag == Duration::ZERO || response.status().as_u16() != 200 {
            return;
        }
        let now = Instant::now();
        let mut written = self.state.written.lock().unwrap();
        for key in keys.iter().flatten() {
            written.insert(key.clone(), now);
        }
    }

    /// Leaves out of an index query's answer the items written within the lag.
    async fn hide_recent(&self, response: HttpResponse) -> Result<HttpResponse, ConnectorError> {
        let (status, mut body) = read_json(response).await?;
        if status != 200 {
            return Ok(json_response(status, &body));
        }
        let lag = self.spec().gsi_lag;
        let now = Instant::now();
        let mut hidden = 0;
        if let Some(items) = body["Items"].as_array_mut() {
            let written = self.state.written.lock().unwrap();
            items.retain(|item| {
                let recent = item_key(item)
                    .and_then(|k| written.get(&k).copied())
                    .is_some_and(|at| now.duration_since(at) < lag);
                hidden += usize::from(recent);
                !recent
            });
            let count = items.len();
            body["Count"] = json!(count);
        }
        if hidden > 0 {
            self.stat(|s| s.gsi_hidden += hidden);
        }
        Ok(json_response(200, &body))
    }

    /// Reads some of the requested keys; the rest come back as `UnprocessedKeys`.
    async fn batch_get(
        &self,
        inner: &SharedHttpConnector,
        mut request: HttpRequest,
        mut body: Value,
        rng: &mut SplitMix64,
    ) -> Result<HttpResponse, ConnectorError> {
        let rate = self.spec().unprocessed_rate;
        let mut unprocessed = serde_json::Map::new();
        let mut kept_any = false;
        if let Some(tables) = body["RequestItems"].as_object_mut() {
            for (table, request) in tables.iter_mut() {
                let Some(keys) = request["Keys"].as_array_mut() else {
                    continue;
                };
                let mut moved = Vec::new();
                let mut kept = Vec::new();
                for key in keys.drain(..) {
                    if rng.next_f64() < rate {
                        moved.push(key);
                    } else {
                        kept.push(key);
                    }
                }
                if kept.is_empty() && !kept_any && !moved.is_empty() {
                    kept.push(moved.remove(0));
                }
                kept_any |= !kept.is_empty();
                *keys = kept;
                if !moved.is_empty() {
                    let mut rest = request.clone();
                    rest["Keys"] = Value::Array(moved);
                    unprocessed.insert(table.clone(), rest);
                }
            }
            tables.retain(|_, r| r["Keys"].as_array().is_some_and(|k| !k.is_empty()));
        }
        let moved: usize = unprocessed
            .values()
            .map(|r| r["Keys"].as_array().map_or(0, Vec::len))
            .sum();
        if moved == 0 {
            return forward(inner, request).await;
        }
        // The body changed: the signature no longer matches it, which dynoxide does not check.
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let _ = request
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        let (status, mut answer) = read_json(forward(inner, request).await?).await?;
        if status != 200 {
            return Ok(json_response(status, &answer));
        }
        self.stat(|s| s.unprocessed_keys += moved);
        let merged = answer["UnprocessedKeys"]
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for (table, rest) in merged {
            unprocessed.entry(table).or_insert(rest);
        }
        answer["UnprocessedKeys"] = Value::Object(unprocessed);
        Ok(json_response(200, &answer))
    }
}

enum Transacted {
    Conflict(HttpResponse),
    Done(HttpResponse),
}

struct Release<'a> {
    chaos: &'a Chaos,
    keys: &'a [Option<String>],
    me: Holder,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let mut held = self.chaos.state.held.lock().unwrap();
        for key in self.keys.iter().flatten() {
            if held.get(key) == Some(&self.me) {
                held.remove(key);
            }
        }
    }
}

/// A process-wide unique holder id.
fn next_holder() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// The item's identity: `pk` and `sk` of a key (or a full item).
fn item_key(item: &Value) -> Option<String> {
    let pk = item["pk"]["S"].as_str()?;
    let sk = item["sk"]["S"].as_str().unwrap_or_default();
    Some(format!("{pk}\u{0}{sk}"))
}

/// The kind of item a key is: `pk` up to its first `#`.
fn kind_of(key: &str) -> String {
    let pk = key.split('\u{0}').next().unwrap_or_default();
    pk.split('#').next().unwrap_or_default().to_owned()
}

fn transaction_keys(body: &Value) -> Vec<Option<String>> {
    body["TransactItems"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    if !item["Put"].is_null() {
                        item_key(&item["Put"]["Item"])
                    } else {
                        ["Update", "Delete", "ConditionCheck"]
                            .iter()
                            .find(|op| !item[**op].is_null())
                            .and_then(|op| item_key(&item[*op]["Key"]))
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn batch_write_keys(body: &Value) -> Vec<Option<String>> {
    body["RequestItems"]
        .as_object()
        .into_iter()
        .flat_map(|tables| tables.values())
        .filter_map(Value::as_array)
        .flatten()
        .map(|r| {
            item_key(&r["PutRequest"]["Item"]).or_else(|| item_key(&r["DeleteRequest"]["Key"]))
        })
        .collect()
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let mut response = HttpResponse::new(
        status.try_into().expect("a valid status"),
        SdkBody::from(bytes.clone()),
    );
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.0");
    headers.insert("content-length", bytes.len().to_string());
    headers.insert("x-amzn-requestid", "chaos");
    response
}

/// An error as DynamoDB writes it: `__type` with the service's namespace, and `message`.
fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "__type": format!("{ERROR_PREFIX}{code}"), "message": message }),
    )
}

fn internal_error() -> HttpResponse {
    json_response(
        500,
        &json!({
            "__type": "com.amazon.coral.service#InternalServerError",
            "message": "Internal server error (chaos)",
        }),
    )
}

/// A transaction cancelled because items `conflicting` (by index) were held.
fn cancelled_for_conflict(len: usize, conflicting: &[usize]) -> HttpResponse {
    let reasons: Vec<Value> = (0..len)
        .map(|i| {
            if conflicting.contains(&i) {
                json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" })
            } else {
                json!({ "Code": "None" })
            }
        })
        .collect();
    let codes: Vec<&str> = (0..len)
        .map(|i| {
            if conflicting.contains(&i) {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect();
    json_response(
        400,
        &json!({
            "__type": format!("{ERROR_PREFIX}TransactionCanceledException"),
            "message": format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            ),
            "CancellationReasons": reasons,
        }),
    )
}

async fn forward(
    inner: &SharedHttpConnector,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    inner.call(request).await
}

async fn read_json(response: HttpResponse) -> Result<(u16, Value), ConnectorError> {
    let status = response.status().as_u16();
    let bytes = ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|e| ConnectorError::io(e.into()))?
        .into_bytes();
    let body = serde_json::from_slice(&bytes).map_err(|e| ConnectorError::other(e.into(), None))?;
    Ok((status, body))
}

/// SplitMix64: a small, well-mixed, seedable generator (no `rand` dependency).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The SDK client's HTTP client with [`Chaos`] in front of its connector.
#[derive(Debug)]
struct ChaosClient {
    inner: SharedHttpClient,
    chaos: Chaos,
}

impl HttpClient for ChaosClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ChaosConnector {
            inner: self.inner.http_connector(settings, components),
            chaos: self.chaos.clone(),
        })
    }
}

#[derive(Debug)]
struct ChaosConnector {
    inner: SharedHttpConnector,
    chaos: Chaos,
}

impl HttpConnector for ChaosConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let chaos = self.chaos.clone();
        HttpConnectorFuture::new(async move { chaos.handle(inner, request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible_and_roughly_uniform() {
        let draw = |seed| {
            let mut r = SplitMix64::new(seed);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut r = SplitMix64::new(1);
        let below: usize = (0..10_000).filter(|_| r.next_f64() < 0.02).count();
        assert!((100..300).contains(&below), "{below} of 10000 under 2%");
    }
}
