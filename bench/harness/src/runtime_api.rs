//! A tiny stand-in for the Lambda Runtime API: it hands out queued events on
//! `GET /runtime/invocation/next` and records when each poll and each response arrives, so the
//! harness can time a function from exec to its first poll (init) and to its first response.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    polls: Vec<Instant>,
    responses: Vec<(Instant, String)>,
    errors: Vec<String>,
    queue: VecDeque<String>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct RuntimeApi {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl RuntimeApi {
    pub async fn start() -> (RuntimeApi, String) {
        let api = RuntimeApi::default();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (api, addr.to_string())
    }

    pub fn reset(&self) {
        *self.inner.lock().unwrap() = Inner::default();
    }

    pub fn push(&self, event: String) {
        self.inner.lock().unwrap().queue.push_back(event);
        self.changed.notify_waiters();
    }

    pub fn first_poll(&self) -> Option<Instant> {
        self.inner.lock().unwrap().polls.first().copied()
    }

    pub fn responses(&self) -> Vec<(Instant, String)> {
        self.inner.lock().unwrap().responses.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().unwrap().errors.clone()
    }

    /// Waits until `done` holds, or `limit` passes.
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&RuntimeApi) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }
}

async fn next(State(api): State<RuntimeApi>) -> (StatusCode, HeaderMap, String) {
    api.inner.lock().unwrap().polls.push(Instant::now());
    api.changed.notify_waiters();
    loop {
        let notified = api.changed.notified();
        let event = {
            let mut inner = api.inner.lock().unwrap();
            inner.queue.pop_front().map(|e| {
                inner.next_id += 1;
                (inner.next_id, e)
            })
        };
        if let Some((id, event)) = event {
            let mut headers = HeaderMap::new();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 10_000;
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&format!("req-{id}")).unwrap(),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_str(&deadline.to_string()).unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:bench"),
            );
            // What Lambda adds with `Tracing: Active`: the runtime copies it into the context
            // and `_X_AMZN_TRACE_ID`; nothing in our binaries talks to X-Ray.
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static(
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                ),
            );
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            return (StatusCode::OK, headers, event);
        }
        notified.await;
    }
}

async fn response(
    State(api): State<RuntimeApi>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    api.inner
        .lock()
        .unwrap()
        .responses
        .push((Instant::now(), body));
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(State(api): State<RuntimeApi>, Path(_id): Path<String>, body: String) -> StatusCode {
    api.inner.lock().unwrap().errors.push(body);
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    api.inner
        .lock()
        .unwrap()
        .errors
        .push(format!("init: {body}"));
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}
