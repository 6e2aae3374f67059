//! The console's way into the API: a request built in-process and handed to
//! `trials::api::handle_any`, the local server's own entry, so an operator's action runs exactly
//! the route a client's would (its auth, its checks, its transaction, its event).
//!
//! The API scopes every key to one org, admin keys included, so the console holds one admin key
//! per org it acts on: drawn from the OS RNG on first use, registered in the table (admin, all
//! projects), kept in memory for the life of the process and never printed or logged. Cost: one
//! key item (and its listing entry) per org per `trials-local` run, shown by
//! `trialctl keys list --org ORG` as an admin key.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lambda_http::Body;
use serde_json::Value;
use trials::auth::issue::create_with_scope;
use trials::domain::api_key::{ApiKey, Projects};
use trials::domain::OrgId;
use trials::App;

/// The in-process API client.
#[derive(Clone)]
pub struct Api {
    app: App,
    keys: Arc<Mutex<HashMap<OrgId, ApiKey>>>,
}

/// One request: as a client sends it, minus the network.
pub struct Call<'a> {
    pub method: &'a str,
    /// Path and query, `/v1/...`.
    pub path: &'a str,
    pub org: &'a OrgId,
    pub project: &'a str,
    pub body: Option<Value>,
    pub idempotency_key: Option<&'a str>,
}

/// An answer: the status and the JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error as one line: `code: message`.
    pub fn error_line(&self) -> String {
        let code = self.body["code"].as_str().unwrap_or("error");
        let message = self.body["message"].as_str().unwrap_or("");
        format!("{} {code}: {message}", self.status)
    }
}

impl Api {
    pub fn new(app: App) -> Api {
        Api {
            app,
            keys: Arc::default(),
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The admin key the console uses for `org`, registered on first use.
    async fn key_for(&self, org: &OrgId) -> Result<ApiKey, String> {
        let known = self.keys.lock().expect("keys lock").get(org).cloned();
        if let Some(key) = known {
            return Ok(key);
        }
        let (key, _) = create_with_scope(
            &self.app.store,
            org.clone(),
            Projects::All,
            true,
            self.app.now(),
        )
        .await
        .map_err(|e| format!("cannot register the console's admin key: {e}"))?;
        // Two first uses at once each register a key; the first kept serves from then on.
        Ok(self
            .keys
            .lock()
            .expect("keys lock")
            .entry(org.clone())
            .or_insert(key)
            .clone())
    }

    /// Sends `call` through the API's one entry point.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, String> {
        let key = self.key_for(call.org).await?;
        let mut builder = lambda_http::http::Request::builder()
            .method(call.method)
            .uri(call.path)
            .header("authorization", format!("Bearer {}", key.expose()))
            .header("x-org-id", call.org.as_str())
            .header("x-project-id", call.project)
            .header("content-type", "application/json");
        if let Some(idem) = call.idempotency_key {
            builder = builder.header("idempotency-key", idem);
        }
        let body = match &call.body {
            Some(json) => Body::Text(json.to_string()),
            None => Body::Empty,
        };
        let req = builder.body(body).map_err(|e| e.to_string())?;
        let res = trials::api::handle_any(&self.app, req).await;
        let status = res.status().as_u16();
        let bytes: Vec<u8> = match res.into_body() {
            Body::Text(t) => t.into_bytes(),
            Body::Binary(b) => b,
            _ => Vec::new(),
        };
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}
