//! Webhook deliveries as Stripe makes them: an `event` object wrapping the session, POSTed as
//! JSON with `Stripe-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of `"{t}.{body}"`
//! keyed with the whole endpoint secret (`whsec_...`), each attempt signed afresh.
//!
//! Stripe retries a failed delivery (no answer, or not 2xx) for days with a growing back-off;
//! the stand-in tries [`BACKOFF_SECS`]`.len() + 1` times over a few seconds, which covers a
//! webhook handler that answered 503 for a moment, and records every attempt for the pages and
//! the tests. The secret never leaves this module except as the MAC.
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::{json, Value};
use trials::config::Secret;
use trials::crypto::{hex, hmac_sha256, random_hex};

use super::session::Session;

/// The API version the events say they were rendered with.
pub const API_VERSION: &str = "2025-03-31.basil";
/// Waits before the second, third... attempt of a failed delivery.
pub const BACKOFF_SECS: [u64; 3] = [1, 2, 4];
/// How long one attempt may take (Stripe gives an endpoint a few seconds too).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Enough of the endpoint's answer to show its outcome.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where deliveries go: the endpoint URL and its signing secret.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &self.secret)
            .finish()
    }
}

/// One event and how its delivery went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub session_id: String,
    /// The event as sent (the body of every attempt).
    pub payload: String,
    pub attempts: u32,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// `outcome` of the endpoint's JSON answer (trials' webhook says what it did).
    pub outcome: Option<String>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    pub state: DeliveryState,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// No endpoint is configured: the event was created and not sent (as in a Stripe account
    /// without a webhook endpoint).
    NotSent,
    /// Attempts remain.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// An event of `kind` about `session`, as Stripe renders it. `request`: the API request that
/// caused it (`id`, `Idempotency-Key`), `None` when the customer did (paying on the page).
pub fn event(
    kind: &str,
    session: &Session,
    created: i64,
    request: Option<(&str, Option<&str>)>,
) -> Value {
    object_event(kind, session.to_stripe(), created, request)
}

/// An event of `kind` about `object` (a session, a subscription, an invoice), as Stripe renders
/// it.
pub fn object_event(
    kind: &str,
    object: Value,
    created: i64,
    request: Option<(&str, Option<&str>)>,
) -> Value {
    let (request_id, idempotency_key) = match request {
        Some((id, key)) => (Some(id), key),
        None => (None, None),
    };
    json!({
        "id": format!("evt_{}", random_hex(12)),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": request_id, "idempotency_key": idempotency_key },
        "type": kind,
    })
}

/// The `Stripe-Signature` header for `payload` signed at `t`.
pub fn signature(payload: &str, secret: &Secret, t: i64) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload.as_bytes());
    format!(
        "t={t},v1={}",
        hex(&hmac_sha256(secret.expose().as_bytes(), &signed))
    )
}

/// What one attempt got back.
pub struct Answer {
    pub status: u16,
    pub outcome: Option<String>,
}

/// Plain HTTP to loopback: the endpoint is trials-local's own route.
#[derive(Clone)]
pub struct Sender {
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Sender {
    fn default() -> Sender {
        Sender {
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Sender {
    /// One attempt: POST `payload` to `target`, signed at `t`.
    pub async fn attempt(
        &self,
        target: &WebhookTarget,
        payload: &str,
        t: i64,
    ) -> Result<Answer, String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(&target.url)
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .header("stripe-signature", signature(payload, &target.secret, t))
            .body(Full::new(Bytes::from(payload.to_owned())))
            .map_err(|e| format!("bad webhook URL {}: {e}", target.url))?;
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| format!("no answer from {}: {e}", target.url))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let outcome = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.get("outcome")
                    .or_else(|| v.pointer("/error/code"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            Ok(Answer { status, outcome })
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, call)
            .await
            .map_err(|_| format!("{} did not answer within {ATTEMPT_TIMEOUT:?}", target.url))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_the_webhook_handlers_check() {
        let secret = Secret::new("whsec_test");
        let payload = r#"{"id":"evt_1","type":"checkout.session.completed"}"#;
        let header = signature(payload, &secret, 1_775_469_600);
        assert!(header.starts_with("t=1775469600,v1="));
        assert_eq!(
            trials::stripe::signature::verify(
                Some(&header),
                payload.as_bytes(),
                &[secret],
                300,
                1_775_469_600
            ),
            Ok(())
        );
        assert!(trials::stripe::signature::verify(
            Some(&header),
            payload.as_bytes(),
            &[Secret::new("whsec_other")],
            300,
            1_775_469_600
        )
        .is_err());
        assert!(!format!(
            "{:?}",
            WebhookTarget {
                url: "u".into(),
                secret: Secret::new("whsec_test")
            }
        )
        .contains("whsec_test"));
    }
}
