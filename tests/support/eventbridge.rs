//! A local EventBridge: an HTTP endpoint speaking the AWS JSON 1.1 protocol of
//! `AWSEvents.PutEvents`, for the real `aws-sdk-eventbridge` client. It records the entries it
//! accepts and can fail chosen entries (`FailedEntryCount` and a per-entry `ErrorCode`, as
//! EventBridge does) or every call (an outage: HTTP 500 `InternalException`).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use trials::publish::Publisher;

/// One entry EventBridge accepted.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub source: String,
    pub detail_type: String,
    pub bus: String,
    pub detail: Value,
}

impl Recorded {
    pub fn event_id(&self) -> &str {
        self.detail["event_id"].as_str().unwrap_or_default()
    }
}

type Matcher = Box<dyn Fn(&Recorded) -> bool + Send + Sync>;

/// Fail the next `remaining` entries that match.
struct FailRule {
    matches: Matcher,
    remaining: usize,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<Recorded>,
    /// Entries per call received, accepted or not.
    calls: Vec<usize>,
    failed_entries: usize,
    rules: Vec<FailRule>,
    outage: bool,
}

#[derive(Clone)]
pub struct EventBridgeRecorder {
    pub endpoint: String,
    state: Arc<Mutex<Inner>>,
}

impl EventBridgeRecorder {
    pub async fn start() -> EventBridgeRecorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recorder");
        let addr = listener.local_addr().expect("recorder address");
        let state = Arc::new(Mutex::new(Inner::default()));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        EventBridgeRecorder {
            endpoint: format!("http://{addr}"),
            state,
        }
    }

    /// The real SDK client pointed here. Its retry backoff is shortened (the SDK's policy is
    /// kept: 3 attempts on 5xx and throttling) so outage tests stay quick.
    pub fn client(&self) -> aws_sdk_eventbridge::Client {
        let base = trials::aws::local_eventbridge(&self.endpoint);
        let config = base
            .config()
            .to_builder()
            .retry_config(
                aws_sdk_eventbridge::config::retry::RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(5)),
            )
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    pub fn publisher(&self, bus: &str) -> Publisher {
        Publisher::EventBridge {
            client: self.client(),
            bus: bus.to_owned(),
        }
    }

    /// Fails the next `times` entries for which `matches` holds (per entry, `ErrorCode`
    /// `InternalFailure`); the rest of their call succeeds.
    pub fn fail_entries(
        &self,
        times: usize,
        matches: impl Fn(&Recorded) -> bool + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().rules.push(FailRule {
            matches: Box::new(matches),
            remaining: times,
        });
    }

    /// While set, every call fails with HTTP 500 `InternalException`.
    pub fn set_outage(&self, outage: bool) {
        self.state.lock().unwrap().outage = outage;
    }

    /// Accepted entries, in order.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// The `event_id` of every accepted entry, in order.
    pub fn event_ids(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|r| r.event_id().to_owned())
            .collect()
    }

    /// How many times `event_id` was accepted.
    pub fn count(&self, event_id: &str) -> usize {
        self.accepted()
            .iter()
            .filter(|r| r.event_id() == event_id)
            .count()
    }

    /// Entries per `PutEvents` call received, including refused calls.
    pub fn calls(&self) -> Vec<usize> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Entries answered with an `ErrorCode`.
    pub fn failed_entries(&self) -> usize {
        self.state.lock().unwrap().failed_entries
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    reply(status, json!({ "__type": kind, "message": message }))
}

async fn handle(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("unsupported target {target:?}"),
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            )
        }
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let mut state = state.lock().unwrap();
    state.calls.push(entries.len());
    if state.outage {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalException",
            "injected outage",
        );
    }
    if entries.is_empty() || entries.len() > 10 {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10",
        );
    }
    let mut results = Vec::with_capacity(entries.len());
    let mut failed = 0;
    for (i, entry) in entries.iter().enumerate() {
        let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
        let recorded = Recorded {
            source: text("Source"),
            detail_type: text("DetailType"),
            bus: text("EventBusName"),
            detail: serde_json::from_str(entry["Detail"].as_str().unwrap_or("null"))
                .unwrap_or(Value::Null),
        };
        let fail = state
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && (r.matches)(&recorded))
            .map(|r| r.remaining -= 1)
            .is_some();
        if fail {
            failed += 1;
            results.push(json!({
                "ErrorCode": "InternalFailure",
                "ErrorMessage": "injected entry failure",
            }));
        } else {
            results.push(json!({ "EventId": format!("rec-{}-{i}", state.calls.len()) }));
            state.accepted.push(recorded);
        }
    }
    state.failed_entries += failed;
    reply(
        StatusCode::OK,
        json!({ "FailedEntryCount": failed, "Entries": results }),
    )
}
