//! The Stripe API client: the Checkout Session endpoints Trials uses (create, with an
//! `Idempotency-Key`; expire; retrieve), form-encoded, each call within a timeout, and Stripe's
//! error body parsed into [`StripeError`].
//!
//! It runs on the HTTP stack the AWS SDK already links (hyper 1, hyper-util's pooled client,
//! rustls on ring with the system's root certificates): no second TLS stack, no extra crate.
//! The TLS connector is built on first use, so functions that never call Stripe (start,
//! status, cancel...) pay nothing for it at init. `http://` base URLs are accepted for the local
//! stand-in.
//!
//! The secret key is sent as a Bearer token, marked sensitive on the request, and appears in no
//! error, `Debug` output or log line.
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use crate::config::{Secret, StripeConfig};

const CHECKOUT_SESSIONS: &str = "/v1/checkout/sessions";
/// A checkout session is a few kB; anything much larger is not Stripe talking.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Stripe's limit on `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Talks to Stripe's API. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct StripeClient {
    inner: Arc<Inner>,
}

struct Inner {
    api_base: String,
    secret_key: Option<Secret>,
    timeout: Duration,
    /// Built on first use; `Err` if the system has no usable root certificates.
    http: OnceLock<Result<HttpClient, String>>,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.inner.api_base)
            .field("secret_key", &self.inner.secret_key)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// The Checkout Session a convert asks for: a subscription to one price. The form it becomes is
/// a pure function of these fields, so a retry sends exactly the same parameters (Stripe
/// refuses a reused idempotency key with different parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckoutSession {
    pub price: String,
    pub quantity: u32,
    pub success_url: String,
    pub cancel_url: String,
    pub client_reference_id: String,
    /// On the session, and again in `subscription_data[metadata]` so the subscription carries it.
    pub metadata: Vec<(String, String)>,
    /// `subscription_data[trial_end]`: when the subscription's first charge happens (Stripe
    /// requires it at least 48 hours ahead). `None`: billing starts when the customer pays.
    pub trial_end: Option<i64>,
}

impl NewCheckoutSession {
    /// The form fields, in a fixed order.
    pub fn form_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            ("mode".to_owned(), "subscription".to_owned()),
            ("line_items[0][price]".to_owned(), self.price.clone()),
            (
                "line_items[0][quantity]".to_owned(),
                self.quantity.to_string(),
            ),
            ("success_url".to_owned(), self.success_url.clone()),
            ("cancel_url".to_owned(), self.cancel_url.clone()),
            (
                "client_reference_id".to_owned(),
                self.client_reference_id.clone(),
            ),
        ];
        for (k, v) in &self.metadata {
            fields.push((format!("metadata[{k}]"), v.clone()));
        }
        for (k, v) in &self.metadata {
            fields.push((format!("subscription_data[metadata][{k}]"), v.clone()));
        }
        if let Some(at) = self.trial_end {
            fields.push(("subscription_data[trial_end]".to_owned(), at.to_string()));
        }
        fields
    }

    /// `application/x-www-form-urlencoded`, as Stripe's API takes it.
    pub fn form_body(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.form_fields() {
            form.append_pair(&k, &v);
        }
        form.finish()
    }
}

/// What we keep of the Checkout Session Stripe created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
    /// Epoch seconds after which Stripe no longer accepts payment on it.
    pub expires_at: i64,
    /// Stripe answered from its idempotency store (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

/// What asking Stripe to expire a Checkout Session came to: in every case the session can no
/// longer be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionExpiry {
    /// Stripe expired it now.
    Expired,
    /// It was no longer `open` (its `status`: `expired`, or `complete` when it was paid).
    NotOpen(String),
    /// Stripe does not know the session (another account's, or test data that is gone).
    Missing,
}

/// Why a Stripe call failed. `Display` carries what an operator needs and never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeError {
    /// No `STRIPE_SECRET_KEY` configured.
    NotConfigured,
    /// `STRIPE_API_BASE` is not an http(s) URL, or the idempotency key is unusable.
    InvalidRequest(String),
    /// No answer: connection refused or reset, TLS failure, a body that broke off.
    Transport(String),
    /// No complete answer within the timeout; Stripe may or may not have acted on it.
    Timeout { after_ms: u64 },
    /// Stripe answered with an error body (`{"error": {...}}`).
    Api(Box<ApiErrorBody>),
    /// An answer that is not what Stripe documents (not JSON, a session without a URL...).
    UnexpectedResponse { status: u16, detail: String },
}

/// Stripe's error object, with the HTTP status and the request id support asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiErrorBody {
    pub status: u16,
    /// `api_error`, `card_error`, `idempotency_error`, `invalid_request_error`...
    pub error_type: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
    pub request_id: Option<String>,
}

impl StripeError {
    /// Whether the same request may succeed later without anything changing on our side.
    pub fn is_transient(&self) -> bool {
        match self {
            StripeError::Transport(_) | StripeError::Timeout { .. } => true,
            StripeError::Api(e) => e.status == 429 || e.status >= 500 || e.status == 409,
            StripeError::UnexpectedResponse { status, .. } => *status >= 500,
            StripeError::NotConfigured | StripeError::InvalidRequest(_) => false,
        }
    }

    /// HTTP status Stripe answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            StripeError::Api(e) => Some(e.status),
            StripeError::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for StripeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StripeError::NotConfigured => {
                f.write_str("Stripe is not configured (STRIPE_SECRET_KEY)")
            }
            StripeError::InvalidRequest(what) => write!(f, "invalid Stripe request: {what}"),
            StripeError::Transport(what) => write!(f, "Stripe unreachable: {what}"),
            StripeError::Timeout { after_ms } => {
                write!(f, "Stripe did not answer within {after_ms} ms")
            }
            StripeError::Api(e) => {
                write!(f, "Stripe answered {} {}", e.status, e.error_type)?;
                if let Some(code) = &e.code {
                    write!(f, " ({code})")?;
                }
                if let Some(param) = &e.param {
                    write!(f, " param {param}")?;
                }
                if let Some(message) = &e.message {
                    write!(f, ": {message}")?;
                }
                if let Some(id) = &e.request_id {
                    write!(f, " [request {id}]")?;
                }
                Ok(())
            }
            StripeError::UnexpectedResponse { status, detail } => {
                write!(f, "unexpected Stripe response {status}: {detail}")
            }
        }
    }
}

impl std::error::Error for StripeError {}

impl StripeClient {
    pub fn new(config: &StripeConfig) -> StripeClient {
        StripeClient {
            inner: Arc::new(Inner {
                api_base: config.api_base.trim_end_matches('/').to_owned(),
                secret_key: config.secret_key.clone(),
                timeout: Duration::from_millis(config.timeout_ms.max(1)),
                http: OnceLock::new(),
            }),
        }
    }

    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    /// The configured timeout for one call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// `POST /v1/checkout/sessions` with `Idempotency-Key: idempotency_key`, within `timeout`
    /// (the configured one if `None`). One connection-level failure (a pooled connection the
    /// far end had closed, typical after a Lambda thaw) is retried at once with the same key,
    /// which Stripe's idempotency makes safe.
    pub async fn create_checkout_session(
        &self,
        session: &NewCheckoutSession,
        idempotency_key: &str,
        timeout: Option<Duration>,
    ) -> Result<CreatedSession, StripeError> {
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(StripeError::InvalidRequest(format!(
                "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
            )));
        }
        let body = session.form_body();
        let call = self.exchange(Method::POST, CHECKOUT_SESSIONS, body, Some(idempotency_key));
        let answer = self.within(timeout, call).await?;
        if !answer.status.is_success() {
            return Err(parse_error(
                answer.status.as_u16(),
                answer.request_id,
                &answer.bytes,
            ));
        }
        parse_session(answer.status.as_u16(), &answer.bytes, answer.replayed)
    }

    /// Makes sure Checkout Session `id` can no longer be paid, within `timeout` (the
    /// configured one if `None`): `POST /v1/checkout/sessions/{id}/expire`. Stripe refuses to
    /// expire a session that is not `open` with a 400 that names no code, so on a 400 the
    /// session is retrieved (`GET`, same timeout) and a status other than `open` is an answer,
    /// not a failure. Expiring is idempotent by nature, so no `Idempotency-Key` is sent: a
    /// retry asks again rather than replaying a saved 500.
    pub async fn expire_checkout_session(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<SessionExpiry, StripeError> {
        let path = session_path(id)?;
        let call = async {
            let expire = format!("{path}/expire");
            let answer = self
                .exchange(Method::POST, &expire, String::new(), None)
                .await?;
            if answer.status.is_success() {
                return Ok(SessionExpiry::Expired);
            }
            let refused = parse_error(answer.status.as_u16(), answer.request_id, &answer.bytes);
            match &refused {
                StripeError::Api(e) if e.status == 404 => Ok(SessionExpiry::Missing),
                StripeError::Api(e)
                    if e.status == 400 && e.error_type == "invalid_request_error" =>
                {
                    let current = self
                        .exchange(Method::GET, &path, String::new(), None)
                        .await?;
                    match session_status(&current) {
                        Some(status) if status != "open" => Ok(SessionExpiry::NotOpen(status)),
                        _ => Err(refused),
                    }
                }
                _ => Err(refused),
            }
        };
        self.within(timeout, call).await
    }

    /// Runs `call` within `timeout` (the configured one if `None`).
    async fn within<T>(
        &self,
        timeout: Option<Duration>,
        call: impl std::future::Future<Output = Result<T, StripeError>>,
    ) -> Result<T, StripeError> {
        let timeout = timeout.unwrap_or(self.inner.timeout);
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| StripeError::Timeout {
                after_ms: timeout.as_millis() as u64,
            })?
    }

    /// One request to `path` (below the API base) and its whole answer, whatever the status.
    /// A connection-level failure is retried once at once (see `create_checkout_session`).
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        form: String,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, StripeError> {
        let key = self
            .inner
            .secret_key
            .as_ref()
            .ok_or(StripeError::NotConfigured)?;
        let url = format!("{}{path}", self.inner.api_base);
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(StripeError::InvalidRequest(format!(
                "STRIPE_API_BASE must be an http(s) URL, got {:?}",
                self.inner.api_base
            )));
        }
        let http = self.http()?;
        let body = Bytes::from(form);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = build_request(&method, &url, key, idempotency_key, body.clone())?;
            match send(http, request).await {
                Err(StripeError::Transport(e)) if attempt == 1 => {
                    tracing::debug!(error = %e, "Stripe connection failed; retrying once");
                }
                other => return other,
            }
        }
    }

    fn http(&self) -> Result<&HttpClient, StripeError> {
        self.inner
            .http
            .get_or_init(build_http_client)
            .as_ref()
            .map_err(|e| StripeError::Transport(e.clone()))
    }
}

fn build_http_client() -> Result<HttpClient, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no usable root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        // Below Stripe's own keep-alive, so we drop an idle connection before it does.
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(4)
        .build(https))
}

/// `/v1/checkout/sessions/{id}`, for an id that can only name a session (it goes into the URL).
fn session_path(id: &str) -> Result<String, StripeError> {
    let plausible = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plausible {
        return Err(StripeError::InvalidRequest(
            "not a Checkout Session id".into(),
        ));
    }
    Ok(format!("{CHECKOUT_SESSIONS}/{id}"))
}

/// The `status` of a session in a successful answer.
fn session_status(answer: &Answer) -> Option<String> {
    if !answer.status.is_success() {
        return None;
    }
    serde_json::from_slice::<Value>(&answer.bytes)
        .ok()?
        .get("status")?
        .as_str()
        .map(str::to_owned)
}

fn build_request(
    method: &Method,
    url: &str,
    key: &Secret,
    idempotency_key: Option<&str>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, StripeError> {
    let mut auth = HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
        StripeError::InvalidRequest("the secret key is not a valid header value".into())
    })?;
    auth.set_sensitive(true);
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(url)
        .header(AUTHORIZATION, auth)
        .header(USER_AGENT, concat!("trials/", env!("CARGO_PKG_VERSION")));
    if method == Method::POST {
        builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    if let Some(idempotency_key) = idempotency_key {
        let idem = HeaderValue::try_from(idempotency_key).map_err(|_| {
            StripeError::InvalidRequest("idempotency key is not a valid header value".into())
        })?;
        builder = builder.header("idempotency-key", idem);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| StripeError::InvalidRequest(format!("STRIPE_API_BASE: {e}")))
}

/// A whole answer: status, `Idempotent-Replayed`, `Request-Id` and the body.
struct Answer {
    status: StatusCode,
    replayed: bool,
    request_id: Option<String>,
    bytes: Bytes,
}

async fn send(http: &HttpClient, request: Request<Full<Bytes>>) -> Result<Answer, StripeError> {
    let response = http
        .request(request)
        .await
        .map_err(|e| StripeError::Transport(error_chain(&e)))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let replayed = header("idempotent-replayed").as_deref() == Some("true");
    let request_id = header("request-id");
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| StripeError::Transport(format!("reading the response: {e}")))?
        .to_bytes();
    Ok(Answer {
        status,
        replayed,
        request_id,
        bytes,
    })
}

/// `e` and its sources, so "client error (Connect)" says what actually went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn parse_error(status: u16, request_id: Option<String>, bytes: &[u8]) -> StripeError {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(body) if body.get("error").is_some_and(Value::is_object) => {
            let e = &body["error"];
            StripeError::Api(Box::new(ApiErrorBody {
                status,
                error_type: text(e, "type").unwrap_or_else(|| "unknown".into()),
                code: text(e, "code"),
                message: text(e, "message"),
                param: text(e, "param"),
                request_id,
            }))
        }
        _ => StripeError::UnexpectedResponse {
            status,
            detail: format!("not a Stripe error body ({} bytes)", bytes.len()),
        },
    }
}

fn parse_session(status: u16, bytes: &[u8], replayed: bool) -> Result<CreatedSession, StripeError> {
    let unexpected = |detail: &str| StripeError::UnexpectedResponse {
        status,
        detail: detail.to_owned(),
    };
    let body: Value =
        serde_json::from_slice(bytes).map_err(|_| unexpected("the body is not JSON"))?;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let id = text("id").ok_or_else(|| unexpected("a session without an id"))?;
    let url = text("url").ok_or_else(|| unexpected("a session without a url"))?;
    let expires_at = body
        .get("expires_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| unexpected("a session without expires_at"))?;
    Ok(CreatedSession {
        id: id.to_owned(),
        url: url.to_owned(),
        expires_at,
        replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> NewCheckoutSession {
        NewCheckoutSession {
            price: "price_growth".into(),
            quantity: 1,
            success_url: "https://example.com/ok?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://example.com/back".into(),
            client_reference_id: "trial_0123456789abcdef01234567".into(),
            metadata: vec![
                ("trial_id".into(), "trial_0123456789abcdef01234567".into()),
                ("org_id".into(), "org_a".into()),
                ("plan".into(), "growth".into()),
            ],
            trial_end: None,
        }
    }

    #[test]
    fn the_form_is_stripes_encoding_in_a_fixed_order() {
        let body = session().form_body();
        let expected = concat!(
            "mode=subscription",
            "&line_items%5B0%5D%5Bprice%5D=price_growth",
            "&line_items%5B0%5D%5Bquantity%5D=1",
            "&success_url=https%3A%2F%2Fexample.com%2Fok%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D",
            "&cancel_url=https%3A%2F%2Fexample.com%2Fback",
            "&client_reference_id=trial_0123456789abcdef01234567",
            "&metadata%5Btrial_id%5D=trial_0123456789abcdef01234567",
            "&metadata%5Borg_id%5D=org_a",
            "&metadata%5Bplan%5D=growth",
            "&subscription_data%5Bmetadata%5D%5Btrial_id%5D=trial_0123456789abcdef01234567",
            "&subscription_data%5Bmetadata%5D%5Borg_id%5D=org_a",
            "&subscription_data%5Bmetadata%5D%5Bplan%5D=growth",
        );
        assert_eq!(body, expected);
        let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(decoded, session().form_fields());

        // Spaces, plus signs, ampersands and non-ASCII survive the trip.
        let odd = NewCheckoutSession {
            metadata: vec![("note".into(), "a b+c&d=é".into())],
            quantity: 3,
            ..session()
        };
        assert_eq!(
            odd.form_body(),
            concat!(
                "mode=subscription",
                "&line_items%5B0%5D%5Bprice%5D=price_growth",
                "&line_items%5B0%5D%5Bquantity%5D=3",
                "&success_url=https%3A%2F%2Fexample.com%2Fok%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D",
                "&cancel_url=https%3A%2F%2Fexample.com%2Fback",
                "&client_reference_id=trial_0123456789abcdef01234567",
                "&metadata%5Bnote%5D=a+b%2Bc%26d%3D%C3%A9",
                "&subscription_data%5Bmetadata%5D%5Bnote%5D=a+b%2Bc%26d%3D%C3%A9",
            )
        );
        assert!(!body.contains("trial_end"), "{body}");
        // The trial end, when there is one, comes last: the same fields always in one order.
        let with_trial = NewCheckoutSession {
            trial_end: Some(1_776_074_400),
            ..session()
        };
        assert_eq!(
            with_trial.form_fields().last(),
            Some(&(
                "subscription_data[trial_end]".to_owned(),
                "1776074400".to_owned()
            ))
        );
    }

    #[test]
    fn only_session_ids_go_into_a_path() {
        assert_eq!(
            session_path("cs_test_a1B2").unwrap(),
            "/v1/checkout/sessions/cs_test_a1B2"
        );
        for bad in [
            "",
            "cs/../../v1/customers",
            "cs_1?x=y",
            "cs 1",
            &"c".repeat(256),
        ] {
            assert!(session_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_bodies_are_parsed_and_odd_ones_reported() {
        let err = parse_error(
            400,
            Some("req_1".into()),
            br#"{"error":{"type":"invalid_request_error","code":"parameter_missing","message":"Missing required param: mode.","param":"mode"}}"#,
        );
        assert_eq!(
            err,
            StripeError::Api(Box::new(ApiErrorBody {
                status: 400,
                error_type: "invalid_request_error".into(),
                code: Some("parameter_missing".into()),
                message: Some("Missing required param: mode.".into()),
                param: Some("mode".into()),
                request_id: Some("req_1".into()),
            }))
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "Stripe answered 400 invalid_request_error (parameter_missing) param mode: Missing required param: mode. [request req_1]"
        );
        let odd = parse_error(502, None, b"<html>bad gateway</html>");
        assert!(matches!(
            odd,
            StripeError::UnexpectedResponse { status: 502, .. }
        ));
        assert!(odd.is_transient());
    }

    #[test]
    fn sessions_need_an_id_a_url_and_an_expiry() {
        let ok = parse_session(
            200,
            br#"{"id":"cs_test_1","object":"checkout.session","url":"https://checkout.stripe.com/c/pay/cs_test_1","expires_at":1775556000}"#,
            true,
        )
        .unwrap();
        assert_eq!(ok.id, "cs_test_1");
        assert_eq!(ok.expires_at, 1_775_556_000);
        assert!(ok.replayed);
        assert!(parse_session(
            200,
            br#"{"id":"cs_test_1","url":null,"expires_at":1}"#,
            false
        )
        .is_err());
        assert!(parse_session(200, b"nope", false).is_err());
    }

    #[test]
    fn the_key_never_shows() {
        let client = StripeClient::new(&StripeConfig {
            secret_key: Some(Secret::new("sk_test_supersecret")),
            api_base: "https://api.stripe.com/".into(),
            success_url: "s".into(),
            cancel_url: "c".into(),
            timeout_ms: 1000,
        });
        assert_eq!(client.api_base(), "https://api.stripe.com");
        assert!(!format!("{client:?}").contains("supersecret"));
    }

    #[tokio::test]
    async fn unconfigured_or_malformed_setups_fail_before_any_request() {
        let mut config = StripeConfig {
            secret_key: None,
            api_base: "https://api.stripe.com".into(),
            success_url: "s".into(),
            cancel_url: "c".into(),
            timeout_ms: 1000,
        };
        let err = StripeClient::new(&config)
            .create_checkout_session(&session(), "k", None)
            .await
            .unwrap_err();
        assert_eq!(err, StripeError::NotConfigured);
        config.secret_key = Some(Secret::new("sk_test_x"));
        config.api_base = "ftp://example.com".into();
        let err = StripeClient::new(&config)
            .create_checkout_session(&session(), "k", None)
            .await
            .unwrap_err();
        assert!(matches!(err, StripeError::InvalidRequest(_)), "{err}");
        config.api_base = "https://api.stripe.com".into();
        let err = StripeClient::new(&config)
            .create_checkout_session(&session(), &"k".repeat(256), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StripeError::InvalidRequest(_)), "{err}");
    }
}
