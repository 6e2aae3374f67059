//! A local stand-in for Stripe's `POST /v1/checkout/sessions`, behaving as Stripe documents it:
//! Bearer authentication, required parameters, idempotency (same key and parameters: the same
//! session, replayed; same key, other parameters: 400 `idempotency_error`) and Stripe's error
//! bodies. `make run` uses it when no `STRIPE_SECRET_KEY` is configured, so the whole flow works
//! offline; tests use it to see what we send, to make Stripe fail, and to hold an answer back
//! until the test lets it go ([`StripeStandIn::hold_next`]): a stall or an interleaving decided
//! by the test, not by how fast the machine is.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

/// The secret key the local run configures for the stand-in.
pub const LOCAL_SECRET_KEY: &str = "sk_test_local_standin";

/// How the next request goes wrong, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 with Stripe's `api_error` body, creating nothing.
    ServerError,
}

/// A request whose answer the stand-in holds back (see [`StripeStandIn::hold_next`]).
///
/// Dropping it lets the answer go, so a test that fails while holding one leaves nothing hung.
pub struct Held {
    handled: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl Held {
    /// Waits until the held request has been handled (its session created, or its error
    /// decided) and its answer is waiting. Cancel-safe: may be raced in `select!` and awaited
    /// again.
    pub async fn handled(&mut self) {
        if let Some(rx) = self.handled.as_mut() {
            // An error means the stand-in is gone: nothing is held any more either.
            let _ = rx.await;
            self.handled = None;
        }
    }

    /// Sends the answer.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

/// The stand-in's side of a [`Held`]: tell the test, then wait for it.
struct Hold {
    handled: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    holds: VecDeque<Hold>,
    /// Idempotency key → (the parameters it was first used with, the session returned).
    by_key: HashMap<String, (Vec<(String, String)>, Value)>,
    created: usize,
    clock: Option<Arc<dyn Fn() -> i64 + Send + Sync>>,
}

#[derive(Clone)]
pub struct StripeStandIn {
    inner: Arc<Mutex<Inner>>,
    base_url: String,
}

impl StripeStandIn {
    /// Serves on `127.0.0.1:0`.
    pub async fn start() -> Result<StripeStandIn, String> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the Stripe stand-in: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(StripeStandIn {
            inner,
            base_url: format!("http://{addr}"),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sessions expire 24 h after this clock's "now" (epoch seconds); the system clock by default.
    pub fn set_clock(&self, now: impl Fn() -> i64 + Send + Sync + 'static) {
        self.inner.lock().unwrap().clock = Some(Arc::new(now));
    }

    pub fn fail_next(&self, fault: Fault) {
        self.inner.lock().unwrap().faults.push_back(fault);
    }

    /// Holds back the answer to the next request (whatever it is) until the returned [`Held`]
    /// is released or dropped. The request is handled as usual first: a session it creates
    /// exists while its answer waits (a Stripe that acted but has not answered yet).
    pub fn hold_next(&self) -> Held {
        let (handled_tx, handled_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.inner.lock().unwrap().holds.push_back(Hold {
            handled: handled_tx,
            release: release_rx,
        });
        Held {
            handled: Some(handled_rx),
            release: Some(release_tx),
        }
    }

    /// Every request received (replays and refusals included), in order: how many times we
    /// called Stripe.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Sessions actually created (replays excluded).
    pub fn sessions_created(&self) -> usize {
        self.inner.lock().unwrap().created
    }
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = code.into();
    }
    if let Some(param) = param {
        error["param"] = param.into();
    }
    (
        status,
        [("request-id", "req_standin")],
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

fn missing(param: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_missing"),
        Some(param),
        &format!("Missing required param: {param}."),
    )
}

async fn create_session(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let hold = inner.lock().unwrap().holds.pop_front();
    let response = handle(&inner, &headers, &body);
    if let Some(hold) = hold {
        let _ = hold.handled.send(());
        // Released or dropped, the answer goes.
        let _ = hold.release.await;
    }
    response
}

fn handle(inner: &Mutex<Inner>, headers: &HeaderMap, body: &str) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let idempotency_key = header("idempotency-key");
    let authorization = header("authorization");
    let fault = {
        let mut state = inner.lock().unwrap();
        state.requests.push(Recorded {
            idempotency_key: idempotency_key.clone(),
            authorization: authorization.clone(),
            form: form.clone(),
        });
        state.faults.pop_front()
    };

    // Test-mode secret (or restricted) keys only: the stand-in is never live.
    let key = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let authenticated = key.is_some_and(|k| {
        ["sk_test_", "rk_test_"]
            .iter()
            .any(|p| k.len() > p.len() && k.starts_with(p))
    });
    if !authenticated {
        let message = match key {
            None => "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".to_owned(),
            Some(key) => format!("Invalid API Key provided: {}", redact(key)),
        };
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            None,
            &message,
        );
    }
    if fault == Some(Fault::ServerError) {
        return stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            None,
            "An unknown error occurred",
        );
    }

    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(mode) = param("mode") else {
        return missing("mode");
    };
    if !matches!(mode.as_str(), "payment" | "subscription" | "setup") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid_string"),
            Some("mode"),
            &format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})"),
        );
    }
    if param("success_url").is_none() {
        return missing("success_url");
    }
    if mode == "subscription" && param("line_items[0][price]").is_none() {
        return missing("line_items");
    }

    let (session, replayed) = {
        let mut state = inner.lock().unwrap();
        match idempotency_key.as_ref().and_then(|k| state.by_key.get(k)) {
            Some((first_form, _)) if *first_form != form => {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    None,
                    None,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used in the original request.",
                );
            }
            Some((_, session)) => (session.clone(), true),
            None => {
                let now = state.clock.as_ref().map(|c| c()).unwrap_or_else(unix_now);
                let session = new_session(&form, &mode, now);
                state.created += 1;
                if let Some(key) = &idempotency_key {
                    state
                        .by_key
                        .insert(key.clone(), (form.clone(), session.clone()));
                }
                (session, false)
            }
        }
    };
    let mut response = (
        StatusCode::OK,
        [("request-id", "req_standin")],
        axum::Json(session),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("header value"));
    }
    response
}

/// A refused key as Stripe shows it: its prefix and last four characters (`sk_live_****1234`).
fn redact(key: &str) -> String {
    let prefix = key
        .match_indices('_')
        .nth(1)
        .map_or(0, |(i, _)| i + 1)
        .min(key.len());
    let rest = &key[prefix..];
    let tail = if rest.len() > 4 && rest.is_char_boundary(rest.len() - 4) {
        &rest[rest.len() - 4..]
    } else {
        ""
    };
    format!("{}****{tail}", &key[..prefix])
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `metadata[k]=v` fields as Stripe's object shows them.
fn metadata(form: &[(String, String)], prefix: &str) -> Value {
    let map: Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_suffix(']')?;
            Some((key.to_owned(), Value::String(v.clone())))
        })
        .collect();
    Value::Object(map)
}

fn new_session(form: &[(String, String)], mode: &str, now: i64) -> Value {
    let id = format!("cs_test_{}", trials::crypto::random_hex(16));
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    json!({
        "id": id,
        "object": "checkout.session",
        "mode": mode,
        "status": "open",
        "payment_status": "unpaid",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        "created": now,
        "expires_at": now + 86_400,
        "client_reference_id": param("client_reference_id"),
        "success_url": param("success_url"),
        "cancel_url": param("cancel_url"),
        "metadata": metadata(form, "metadata["),
        "livemode": false,
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn refused_keys_are_shown_as_stripe_shows_them() {
        assert_eq!(redact("sk_live_abcdefgh1234"), "sk_live_****1234");
        assert_eq!(redact("sk_live_12"), "sk_live_****");
        assert_eq!(redact("rk_wrong_kind_of_key"), "rk_wrong_****_key");
        assert_eq!(redact("whatever"), "****ever");
        assert_eq!(redact("ab"), "****");
    }
}
