//! A local stand-in for the part of Stripe that Trials uses, behaving as Stripe documents it,
//! so that the whole payment flow runs offline and tests can see what we send.
//!
//! **API** (`base_url()`, on loopback): Bearer authentication with a test-mode key (401
//! otherwise), Stripe's error bodies, and
//! - `POST /v1/checkout/sessions`: `mode`, `success_url` and (subscriptions) a line item are
//!   required; `subscription_data[trial_end]` must be an integer at least 48 hours (and at most
//!   730 days) ahead; `expires_at` 30 minutes to 24 hours ahead (default 24 hours). The session
//!   keeps `metadata`, `client_reference_id`, `subscription_data[metadata]`, is `open` and
//!   `unpaid`, and its `url` is this stand-in's checkout page ([`page`]), never a Stripe host.
//! - `GET /v1/checkout/sessions/{id}`.
//! - `POST /v1/checkout/sessions/{id}/expire`: only an `open` session (else 400); answers the
//!   session, `expired`, and sends `checkout.session.expired`. Open sessions past `expires_at`
//!   expire the same way when next looked at, or by [`StripeStandIn::expire_due`].
//! - `Idempotency-Key` on every POST, as Stripe: the first answer of an endpoint that began
//!   executing is saved for 24 hours and replayed (`Idempotent-Replayed: true`) to the same
//!   endpoint with the same parameters; other parameters or another endpoint: 400
//!   `idempotency_error`. A request refused by validation saves nothing.
//!
//! **Checkout page** ([`page`]): pay, pay with a delayed method, or go back; paying sends the
//! webhook deliveries Stripe would send ([`webhooks`]) to the configured endpoint, signed with
//! its secret, then redirects to the session's `success_url`.
//!
//! **Subscriptions** ([`subscription`]): paying a subscription-mode session creates its
//! subscription, carrying `subscription_data[metadata]` (`trialing` until the session's trial
//! end, else `active`); [`StripeStandIn::subscription_event`] makes what Stripe sends later
//! (`customer.subscription.created` / `.updated` / `.deleted`, `invoice.paid`,
//! `invoice.payment_failed`), shaped as API 2025-03-31.basil renders them, and returns it.
//!
//! **State**: in memory, and in `Options::state_file` when set (rewritten whole after every
//! change: a few kB per session, fine for a developer's machine), so a restarted `trials-local`
//! still knows the sessions its trials point at. Tests make it fail ([`Fault`]), read what it
//! received ([`StripeStandIn::requests`]) and what it sent ([`StripeStandIn::deliveries`]).
pub mod page;
pub mod session;
pub mod subscription;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trials::crypto::random_hex;

pub use session::{Catalog, PaymentStatus, Price, Session, Status};
pub use subscription::{Subscription, SubscriptionChange};
pub use webhooks::{Delivery, DeliveryState, WebhookTarget};

/// The secret key the local run configures for the stand-in.
pub const LOCAL_SECRET_KEY: &str = "sk_test_local_standin";
/// How long Stripe keeps an idempotency key.
const IDEMPOTENCY_WINDOW_SECS: i64 = 86_400;
/// Stripe's bounds on `subscription_data[trial_end]`, from now.
const MIN_TRIAL_END_SECS: i64 = 48 * 3600;
const MAX_TRIAL_END_SECS: i64 = 730 * 86_400;
/// Stripe's bounds on `expires_at`, from creation; the default is the maximum.
const MIN_EXPIRES_SECS: i64 = 30 * 60;
const MAX_EXPIRES_SECS: i64 = 24 * 3600;

/// How the next API request goes wrong, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 with Stripe's `api_error` body, doing nothing and saving nothing (a failure
    /// before the endpoint began executing).
    ServerError,
}

/// A request whose answer the stand-in holds back (see [`StripeStandIn::hold_next`]): a stall
/// or an interleaving decided by the test, not by how fast the machine is.
///
/// Dropping it lets the answer go, so a test that fails while holding one leaves nothing hung.
pub struct Held {
    handled: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
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
    handled: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// One API request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// `/v1/checkout/sessions`, `/v1/checkout/sessions/cs_.../expire`...
    pub path: String,
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

/// How the stand-in is wired. `Default`: its own address for the page, no webhook endpoint,
/// the default catalog, a 3 s delayed payment, nothing on disk, no expiry sweep.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base (`http://host:port`) of the checkout page URLs; the stand-in's own address when
    /// `None`. trials-local serves the page on its own address ([`StripeStandIn::checkout_router`]).
    pub checkout_base: Option<String>,
    /// Where events are delivered; `None`: they are recorded, not sent.
    pub webhook: Option<WebhookTarget>,
    pub catalog: Catalog,
    /// Between `completed` (unpaid) and `async_payment_succeeded` / `_failed`.
    pub async_payment_delay: Duration,
    /// Sessions and idempotency keys persist here.
    pub state_file: Option<PathBuf>,
    /// Expire open sessions past `expires_at` this often (with their webhook), as Stripe does.
    pub sweep_every: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            checkout_base: None,
            webhook: None,
            catalog: Catalog::trials_defaults(),
            async_payment_delay: Duration::from_secs(3),
            state_file: None,
            sweep_every: None,
        }
    }
}

type ClockFn = Arc<dyn Fn() -> i64 + Send + Sync>;
type RequestHook = Arc<dyn Fn(&Recorded) + Send + Sync>;

/// What survives a restart (with `Options::state_file`).
#[derive(Default, Serialize, Deserialize)]
struct Durable {
    sessions: BTreeMap<String, Session>,
    /// The subscriptions paid sessions created, by id (absent from older state files).
    #[serde(default)]
    subscriptions: BTreeMap<String, Subscription>,
    /// Idempotency key → the first request's endpoint, parameters and answer.
    idempotency: HashMap<String, Saved>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Saved {
    path: String,
    form: Vec<(String, String)>,
    status: u16,
    body: Value,
    at: i64,
}

#[derive(Default)]
struct State {
    durable: Durable,
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    holds: VecDeque<Hold>,
    created: usize,
    clock: Option<ClockFn>,
    /// Runs as each API request arrives (tests: time passing during a call).
    on_request: Option<RequestHook>,
    deliveries: Vec<Delivery>,
    /// Sessions whose delayed payment has not been settled yet.
    settling: Vec<String>,
}

impl State {
    fn now(&self) -> i64 {
        self.clock.as_ref().map(|c| c()).unwrap_or_else(unix_now)
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    options: Options,
    base_url: String,
    checkout_base: String,
    sender: webhooks::Sender,
}

#[derive(Clone)]
pub struct StripeStandIn {
    shared: Arc<Shared>,
}

impl StripeStandIn {
    /// Serves on `127.0.0.1:0` with [`Options::default`].
    pub async fn start() -> Result<StripeStandIn, String> {
        StripeStandIn::start_with(Options::default()).await
    }

    /// Serves the API (and the checkout page) on `127.0.0.1:0`.
    pub async fn start_with(options: Options) -> Result<StripeStandIn, String> {
        let durable = match &options.state_file {
            Some(path) => load(path)?,
            None => Durable::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the Stripe stand-in: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");
        let checkout_base = options
            .checkout_base
            .clone()
            .unwrap_or_else(|| base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        let sweep_every = options.sweep_every;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                durable,
                ..State::default()
            }),
            options,
            base_url,
            checkout_base,
            sender: webhooks::Sender::default(),
        });
        let standin = StripeStandIn { shared };
        let app: Router = standin
            .checkout_router()
            .fallback(api)
            .layer(axum::Extension(standin.shared.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        if let Some(every) = sweep_every {
            let sweeper = standin.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    sweeper.expire_due().await;
                }
            });
        }
        Ok(standin)
    }

    /// The API's base URL (`STRIPE_API_BASE`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The checkout page's routes (`/checkout/pay/...`), for a server that serves them on its
    /// own address (`Options::checkout_base`).
    pub fn checkout_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        page::router(self.shared.clone())
    }

    /// Sessions expire 24 h after this clock's "now" (epoch seconds), events and signatures
    /// carry its time; the system clock by default.
    pub fn set_clock(&self, now: impl Fn() -> i64 + Send + Sync + 'static) {
        self.shared.state.lock().unwrap().clock = Some(Arc::new(now));
    }

    /// Runs `hook` as each API request arrives, before it is handled: for tests, e.g. a test
    /// clock that moves while Stripe is being called.
    pub fn on_request(&self, hook: impl Fn(&Recorded) + Send + Sync + 'static) {
        self.shared.state.lock().unwrap().on_request = Some(Arc::new(hook));
    }

    pub fn fail_next(&self, fault: Fault) {
        self.shared.state.lock().unwrap().faults.push_back(fault);
    }

    /// Holds back the answer to the next API request (whatever it is) until the returned
    /// [`Held`] is released or dropped. The request is handled as usual first: a session it
    /// creates exists while its answer waits (a Stripe that acted but has not answered yet).
    pub fn hold_next(&self) -> Held {
        let (handled_tx, handled_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        self.shared.state.lock().unwrap().holds.push_back(Hold {
            handled: handled_tx,
            release: release_rx,
        });
        Held {
            handled: Some(handled_rx),
            release: Some(release_tx),
        }
    }

    /// Every API request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Sessions actually created (replays excluded).
    pub fn sessions_created(&self) -> usize {
        self.shared.state.lock().unwrap().created
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        self.shared.session(id)
    }

    /// Every event created, with how its delivery went, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.state.lock().unwrap().deliveries.clone()
    }

    /// Whether something about `session_id` is still on its way: a delayed payment not yet
    /// settled, or a delivery with attempts left. The success page refreshes while it is.
    pub fn in_flight(&self, session_id: &str) -> bool {
        let state = self.shared.state.lock().unwrap();
        state.settling.iter().any(|s| s == session_id)
            || state
                .deliveries
                .iter()
                .any(|d| d.session_id == session_id && d.state == DeliveryState::Pending)
    }

    /// Expires every open session past its `expires_at`, sending `checkout.session.expired`
    /// for each, as Stripe does when a session runs out. Returns how many.
    pub async fn expire_due(&self) -> usize {
        let events = self.shared.expire_overdue(None);
        let n = events.len();
        for event in events {
            self.shared.send(event).await;
        }
        n
    }

    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        let state = self.shared.state.lock().unwrap();
        state.durable.subscriptions.get(id).cloned()
    }

    /// Makes `change` happen to subscription `id` now and sends the event Stripe sends for it
    /// (recorded in [`StripeStandIn::deliveries`]); returns the event, for a test to deliver
    /// again or in another order. `Err`: no such subscription.
    pub async fn subscription_event(
        &self,
        id: &str,
        change: SubscriptionChange,
    ) -> Result<Value, String> {
        let event = {
            let mut state = self.shared.state.lock().unwrap();
            let now = state.now();
            let sub = state
                .durable
                .subscriptions
                .get_mut(id)
                .ok_or_else(|| format!("no such subscription: {id}"))?;
            let object = sub.apply(&change, now);
            let event = webhooks::object_event(change.event_type(), object, now, None);
            self.shared.persist(&state);
            event
        };
        self.shared.send(event.clone()).await;
        Ok(event)
    }

    /// Marks `id` paid as the page's Pay button does, and sends what Stripe sends; for tests
    /// that need a paid session without a browser. `Err`: the session is not open.
    pub async fn pay(&self, id: &str, method: PayMethod) -> Result<Session, String> {
        page::pay(&self.shared, id, method)
            .await
            .map_err(|e| e.to_string())
    }
}

/// How the customer pays on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayMethod {
    /// Settled at once: `completed` with `paid` (`no_payment_required` under a trial).
    Card,
    /// A bank debit: `completed` with `unpaid`, then after `Options::async_payment_delay`
    /// `async_payment_succeeded` (`succeeds`) or `async_payment_failed`.
    Delayed { succeeds: bool },
}

impl Shared {
    /// Session `id` as kept now.
    fn session(&self, id: &str) -> Option<Session> {
        let state = self.state.lock().unwrap();
        state.durable.sessions.get(id).cloned()
    }

    /// Writes the durable state if a file is configured. Called with the state locked, so
    /// writes land in the order of the changes.
    fn persist(&self, state: &State) {
        let Some(path) = &self.options.state_file else {
            return;
        };
        if let Err(e) = save(path, &state.durable) {
            tracing::warn!(file = %path.display(), error = %e, "Stripe stand-in: cannot save its sessions");
        }
    }

    /// Open sessions past `expires_at` (only `only`, if given) become `expired`; their
    /// `checkout.session.expired` events, to send.
    fn expire_overdue(&self, only: Option<&str>) -> Vec<Value> {
        let mut state = self.state.lock().unwrap();
        let now = state.now();
        let mut events = Vec::new();
        for session in state.durable.sessions.values_mut() {
            if only.is_some_and(|id| id != session.id) {
                continue;
            }
            if session.status == Status::Open && session.expires_at <= now {
                session.status = Status::Expired;
                events.push(webhooks::event(
                    "checkout.session.expired",
                    session,
                    now,
                    None,
                ));
            }
        }
        if !events.is_empty() {
            self.persist(&state);
        }
        events
    }

    /// Records `event` and delivers it: the first attempt is awaited, retries (if it failed)
    /// go on in the background.
    async fn send(self: &Arc<Shared>, event: Value) {
        let payload = event.to_string();
        let delivery = Delivery {
            event_id: event["id"].as_str().unwrap_or_default().to_owned(),
            event_type: event["type"].as_str().unwrap_or_default().to_owned(),
            // The object's id; an invoice's subscription (what a page can look it up by).
            session_id: event
                .pointer("/data/object/parent/subscription_details/subscription")
                .or_else(|| event.pointer("/data/object/id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            payload,
            attempts: 0,
            last_status: None,
            outcome: None,
            last_error: None,
            state: if self.options.webhook.is_some() {
                DeliveryState::Pending
            } else {
                DeliveryState::NotSent
            },
        };
        let index = {
            let mut state = self.state.lock().unwrap();
            state.deliveries.push(delivery);
            state.deliveries.len() - 1
        };
        if self.options.webhook.is_none() {
            return;
        }
        if self.attempt(index, false).await {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            for (i, wait) in webhooks::BACKOFF_SECS.iter().enumerate() {
                tokio::time::sleep(Duration::from_secs(*wait)).await;
                let last = i + 1 == webhooks::BACKOFF_SECS.len();
                if shared.attempt(index, last).await {
                    return;
                }
            }
        });
    }

    /// One attempt of delivery `index`; true when it is settled (delivered, or `last`).
    async fn attempt(&self, index: usize, last: bool) -> bool {
        let Some(target) = &self.options.webhook else {
            return true;
        };
        let (payload, t) = {
            let state = self.state.lock().unwrap();
            (state.deliveries[index].payload.clone(), state.now())
        };
        let result = self.sender.attempt(target, &payload, t).await;
        let mut state = self.state.lock().unwrap();
        let d = &mut state.deliveries[index];
        d.attempts += 1;
        let delivered = match result {
            Ok(answer) => {
                d.last_status = Some(answer.status);
                d.outcome = answer.outcome;
                d.last_error = None;
                (200..300).contains(&answer.status)
            }
            Err(e) => {
                d.last_status = None;
                d.last_error = Some(e);
                false
            }
        };
        d.state = match (delivered, last) {
            (true, _) => DeliveryState::Delivered,
            (false, true) => DeliveryState::Failed,
            (false, false) => DeliveryState::Pending,
        };
        if !delivered {
            tracing::warn!(
                event_id = %d.event_id,
                event_type = %d.event_type,
                attempt = d.attempts,
                status = ?d.last_status,
                error = ?d.last_error,
                "Stripe stand-in: webhook delivery failed"
            );
        }
        delivered || last
    }
}

/// An API answer in Stripe's shape, with a request id.
fn answer(status: StatusCode, body: Value, replayed: bool) -> Response {
    let mut response = (
        status,
        [("request-id", format!("req_{}", random_hex(7)))],
        axum::Json(body),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("header value"));
    }
    response
}

/// Stripe's error object.
fn error_body(kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> Value {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = code.into();
    }
    if let Some(param) = param {
        error["param"] = param.into();
    }
    json!({ "error": error })
}

/// What an endpoint answers, and whether Stripe would save it for the idempotency key (only
/// once the endpoint began executing: validation errors are not saved).
struct Outcome {
    status: StatusCode,
    body: Value,
    save: bool,
    /// Events the call caused, sent once it has answered.
    events: Vec<Value>,
}

impl Outcome {
    fn invalid(code: Option<&str>, param: Option<&str>, message: &str) -> Outcome {
        Outcome {
            status: StatusCode::BAD_REQUEST,
            body: error_body("invalid_request_error", code, param, message),
            save: false,
            events: Vec::new(),
        }
    }

    fn missing(param: &str) -> Outcome {
        Outcome::invalid(
            Some("parameter_missing"),
            Some(param),
            &format!("Missing required param: {param}."),
        )
    }
}

enum Endpoint {
    Create,
    Retrieve(String),
    Expire(String),
}

fn route(method: &Method, path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v1/checkout/sessions")?;
    match (method, rest.trim_end_matches('/')) {
        (&Method::POST, "") => Some(Endpoint::Create),
        (m, id) if id.starts_with('/') => {
            let id = &id[1..];
            match (m, id.split_once('/')) {
                (&Method::GET, None) if !id.is_empty() => Some(Endpoint::Retrieve(id.to_owned())),
                (&Method::POST, Some((id, "expire"))) if !id.is_empty() => {
                    Some(Endpoint::Expire(id.to_owned()))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Every API request: record, authenticate, inject faults, idempotency, then the endpoint.
async fn api(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let raw_form = if method == Method::GET {
        uri.query().unwrap_or_default().to_owned()
    } else {
        body
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(raw_form.as_bytes())
        .into_owned()
        .collect();
    let path = uri.path().to_owned();
    let idempotency_key = header("idempotency-key").filter(|_| method == Method::POST);
    let authorization = header("authorization");
    let recorded = Recorded {
        method: method.to_string(),
        path: path.clone(),
        idempotency_key: idempotency_key.clone(),
        authorization: authorization.clone(),
        form: form.clone(),
    };
    let (fault, hold, hook) = {
        let mut state = shared.state.lock().unwrap();
        state.requests.push(recorded.clone());
        (
            state.faults.pop_front(),
            state.holds.pop_front(),
            state.on_request.clone(),
        )
    };
    if let Some(hook) = hook {
        hook(&recorded);
    }
    let response = handle_api(
        &shared,
        fault,
        &method,
        path,
        &authorization,
        idempotency_key,
        form,
    )
    .await;
    if let Some(hold) = hold {
        let _ = hold.handled.send(());
        // Released or dropped, the answer goes.
        let _ = hold.release.await;
    }
    response
}

/// The request after it was recorded: authenticate, inject faults, idempotency, the endpoint.
async fn handle_api(
    shared: &Arc<Shared>,
    fault: Option<Fault>,
    method: &Method,
    path: String,
    authorization: &Option<String>,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
) -> Response {
    let method = method.clone();
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
        return answer(
            StatusCode::UNAUTHORIZED,
            error_body("invalid_request_error", None, None, &message),
            false,
        );
    }
    if fault == Some(Fault::ServerError) {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body("api_error", None, None, "An unknown error occurred"),
            false,
        );
    }
    let Some(endpoint) = route(&method, &path) else {
        return answer(
            StatusCode::NOT_FOUND,
            error_body(
                "invalid_request_error",
                None,
                None,
                &format!("Unrecognized request URL ({method}: {path})."),
            ),
            false,
        );
    };

    let request_id = format!("req_{}", random_hex(7));
    let outcome = {
        let mut state = shared.state.lock().unwrap();
        let now = state.now();
        state
            .durable
            .idempotency
            .retain(|_, saved| now - saved.at < IDEMPOTENCY_WINDOW_SECS);
        if let Some(saved) = idempotency_key
            .as_ref()
            .and_then(|k| state.durable.idempotency.get(k))
        {
            if saved.path != path {
                return answer(
                    StatusCode::BAD_REQUEST,
                    error_body("idempotency_error", None, None, &format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{}' vs '{path}'). Try using a key other than the one used in the original request.",
                        saved.path
                    )),
                    false,
                );
            }
            if saved.form != form {
                return answer(
                    StatusCode::BAD_REQUEST,
                    error_body("idempotency_error", None, None, "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used in the original request."),
                    false,
                );
            }
            let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
            return answer(status, saved.body.clone(), true);
        }
        let outcome = match &endpoint {
            Endpoint::Create => create(shared, &mut state, &form, now),
            Endpoint::Retrieve(id) => retrieve(&mut state, id, now),
            Endpoint::Expire(id) => expire(
                &mut state,
                id,
                now,
                (&request_id, idempotency_key.as_deref()),
            ),
        };
        if let (true, Some(key)) = (outcome.save, &idempotency_key) {
            state.durable.idempotency.insert(
                key.clone(),
                Saved {
                    path: path.clone(),
                    form: form.clone(),
                    status: outcome.status.as_u16(),
                    body: outcome.body.clone(),
                    at: now,
                },
            );
        }
        if outcome.save || !outcome.events.is_empty() {
            shared.persist(&state);
        }
        outcome
    };
    if !outcome.events.is_empty() {
        // Stripe delivers after answering; so does the stand-in.
        let (shared, events) = (shared.clone(), outcome.events);
        tokio::spawn(async move {
            for event in events {
                shared.send(event).await;
            }
        });
    }
    let mut response = answer(outcome.status, outcome.body, false);
    response.headers_mut().insert(
        "request-id",
        request_id.parse().expect("a request id is a header value"),
    );
    response
}

fn create(shared: &Shared, state: &mut State, form: &[(String, String)], now: i64) -> Outcome {
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(mode) = param("mode") else {
        return Outcome::missing("mode");
    };
    if !matches!(mode.as_str(), "payment" | "subscription" | "setup") {
        return Outcome::invalid(
            Some("parameter_invalid_string"),
            Some("mode"),
            &format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})"),
        );
    }
    let Some(success_url) = param("success_url") else {
        return Outcome::missing("success_url");
    };
    let price = param("line_items[0][price]");
    if mode == "subscription" && price.is_none() {
        return Outcome::missing("line_items");
    }
    let quantity = match param("line_items[0][quantity]") {
        None => 1,
        Some(raw) => match raw.parse::<i64>() {
            Ok(q) if q >= 1 => q,
            _ => {
                return Outcome::invalid(
                    Some("parameter_invalid_integer"),
                    Some("line_items[0][quantity]"),
                    &format!("Invalid integer: {raw}"),
                )
            }
        },
    };
    let trial_end = match param("subscription_data[trial_end]") {
        None => None,
        Some(raw) => {
            let Ok(at) = raw.parse::<i64>() else {
                return Outcome::invalid(
                    Some("parameter_invalid_integer"),
                    Some("subscription_data[trial_end]"),
                    &format!("Invalid integer: {raw}"),
                );
            };
            if at < now + MIN_TRIAL_END_SECS {
                return Outcome::invalid(
                    None,
                    Some("subscription_data[trial_end]"),
                    "The `trial_end` date has to be at least 2 days in the future.",
                );
            }
            if at > now + MAX_TRIAL_END_SECS {
                return Outcome::invalid(
                    None,
                    Some("subscription_data[trial_end]"),
                    "The maximum number of trial period days is 730 (2 years).",
                );
            }
            Some(at)
        }
    };
    let expires_at = match param("expires_at") {
        None => now + MAX_EXPIRES_SECS,
        Some(raw) => match raw.parse::<i64>() {
            Ok(at) if (now + MIN_EXPIRES_SECS..=now + MAX_EXPIRES_SECS).contains(&at) => at,
            Ok(_) => {
                return Outcome::invalid(
                    None,
                    Some("expires_at"),
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                )
            }
            Err(_) => {
                return Outcome::invalid(
                    Some("parameter_invalid_integer"),
                    Some("expires_at"),
                    &format!("Invalid integer: {raw}"),
                )
            }
        },
    };

    let id = format!("cs_test_{}", random_hex(24));
    let session = Session {
        url: format!("{}/checkout/pay/{id}", shared.checkout_base),
        id: id.clone(),
        mode,
        status: Status::Open,
        payment_status: PaymentStatus::Unpaid,
        created: now,
        expires_at,
        client_reference_id: param("client_reference_id"),
        success_url,
        cancel_url: param("cancel_url"),
        metadata: bracketed(form, "metadata["),
        subscription_metadata: bracketed(form, "subscription_data[metadata]["),
        trial_end,
        line_item: price.map(|p| session::LineItem {
            price: shared.options.catalog.price(&p),
            quantity,
        }),
        customer: None,
        subscription: None,
    };
    let body = session.to_stripe();
    state.durable.sessions.insert(id, session);
    state.created += 1;
    Outcome {
        status: StatusCode::OK,
        body,
        save: true,
        events: Vec::new(),
    }
}

fn no_such_session(id: &str) -> Outcome {
    Outcome {
        status: StatusCode::NOT_FOUND,
        body: error_body(
            "invalid_request_error",
            Some("resource_missing"),
            Some("session"),
            &format!("No such checkout.session: '{id}'"),
        ),
        save: false,
        events: Vec::new(),
    }
}

/// A session past `expires_at` is expired as soon as anyone looks at it (the sweep may not
/// have run yet), with its event.
fn settle_expiry(session: &mut Session, now: i64) -> Option<Value> {
    (session.status == Status::Open && session.expires_at <= now).then(|| {
        session.status = Status::Expired;
        webhooks::event("checkout.session.expired", session, now, None)
    })
}

fn retrieve(state: &mut State, id: &str, now: i64) -> Outcome {
    let Some(session) = state.durable.sessions.get_mut(id) else {
        return no_such_session(id);
    };
    let events: Vec<Value> = settle_expiry(session, now).into_iter().collect();
    Outcome {
        status: StatusCode::OK,
        body: session.to_stripe(),
        save: false,
        events,
    }
}

fn expire(state: &mut State, id: &str, now: i64, request: (&str, Option<&str>)) -> Outcome {
    let Some(session) = state.durable.sessions.get_mut(id) else {
        return no_such_session(id);
    };
    if let Some(event) = settle_expiry(session, now) {
        // It ran out before this call: the call fails as for any expired session, and the
        // expiry's own event still goes out.
        let mut outcome = not_expirable(session);
        outcome.events.push(event);
        return outcome;
    }
    if session.status != Status::Open {
        return not_expirable(session);
    }
    session.status = Status::Expired;
    let event = webhooks::event("checkout.session.expired", session, now, Some(request));
    Outcome {
        status: StatusCode::OK,
        body: session.to_stripe(),
        save: true,
        events: vec![event],
    }
}

fn not_expirable(session: &Session) -> Outcome {
    Outcome {
        save: true,
        ..Outcome::invalid(
            None,
            None,
            &format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `{}`.",
                session.status.as_str()
            ),
        )
    }
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

/// `prefix` + `k]` = `v` fields (`metadata[k]=v`), as a map.
fn bracketed(form: &[(String, String)], prefix: &str) -> BTreeMap<String, String> {
    form.iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_suffix(']')?;
            (!key.contains('[')).then(|| (key.to_owned(), v.clone()))
        })
        .collect()
}

fn load(path: &std::path::Path) -> Result<Durable, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not the Stripe stand-in's state ({e}); delete it to start afresh",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Durable::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whole-file replace (write a temporary file, rename it over): a crash leaves the old state
/// or the new one, never half of either.
fn save(path: &std::path::Path, durable: &Durable) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(durable)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_keys_are_shown_as_stripe_shows_them() {
        assert_eq!(redact("sk_live_abcdefgh1234"), "sk_live_****1234");
        assert_eq!(redact("sk_live_12"), "sk_live_****");
        assert_eq!(redact("rk_wrong_kind_of_key"), "rk_wrong_****_key");
        assert_eq!(redact("whatever"), "****ever");
        assert_eq!(redact("ab"), "****");
    }

    #[test]
    fn routes_are_stripes() {
        assert!(matches!(
            route(&Method::POST, "/v1/checkout/sessions"),
            Some(Endpoint::Create)
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/checkout/sessions/cs_1"),
            Some(Endpoint::Retrieve(id)) if id == "cs_1"
        ));
        assert!(matches!(
            route(&Method::POST, "/v1/checkout/sessions/cs_1/expire"),
            Some(Endpoint::Expire(id)) if id == "cs_1"
        ));
        for (m, p) in [
            (Method::GET, "/v1/checkout/sessions"),
            (Method::POST, "/v1/checkout/sessions/cs_1"),
            (Method::POST, "/v1/checkout/sessions//expire"),
            (Method::POST, "/v1/checkout/sessions/cs_1/refund"),
            (Method::POST, "/v1/customers"),
            (Method::GET, "/v1/checkout/sessionsx"),
        ] {
            assert!(route(&m, p).is_none(), "{m} {p}");
        }
    }

    #[test]
    fn metadata_is_read_as_sent() {
        let form: Vec<(String, String)> = [
            ("metadata[trial_id]", "trial_1"),
            ("metadata[org_id]", "org_a"),
            ("subscription_data[metadata][plan]", "growth"),
            ("subscription_data[trial_end]", "5"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let meta = bracketed(&form, "metadata[");
        assert_eq!(meta.len(), 2);
        assert_eq!(meta["org_id"], "org_a");
        let sub = bracketed(&form, "subscription_data[metadata][");
        assert_eq!(
            sub.into_iter().collect::<Vec<_>>(),
            [("plan".to_owned(), "growth".to_owned())]
        );
    }
}
