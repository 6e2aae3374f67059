//! Building API Gateway requests in-process and reading responses.
//!
//! Every request goes through real authentication: unless a call carries its own
//! `Authorization` or opts out (`Call::without_auth`), `TestApp::send` adds `Bearer <key>`
//! with the kit's key for the call's org, created the first time the org is seen.
use std::collections::HashMap;

use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;
use trials::domain::api_key::{ApiKey, Projects};
use trials::domain::{OrgId, ProjectId};
use trials::store::Store;
use trials::App;

use crate::TestApp;

pub const ORG: &str = "org_abc123";
pub const PROJECT: &str = "proj_def456";

/// A request under construction: defaults to a valid org and project.
pub struct Call {
    builder: lambda_http::http::request::Builder,
    body: Body,
    path_id: Option<String>,
    deadline_ms: Option<i64>,
    org: Option<String>,
    auto_auth: bool,
    admin: bool,
}

impl Call {
    pub fn new(method: &str, path: &str) -> Call {
        let builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{path}"))
            .header("x-org-id", ORG)
            .header("x-project-id", PROJECT);
        Call {
            builder,
            body: Body::Empty,
            path_id: None,
            deadline_ms: None,
            org: Some(ORG.into()),
            auto_auth: true,
            admin: false,
        }
    }

    pub fn post(path: &str) -> Call {
        Call::new("POST", path)
    }

    pub fn get(path: &str) -> Call {
        Call::new("GET", path)
    }

    pub fn start(plan: &str, key: &str) -> Call {
        Call::post("/v1/trials/start")
            .idempotency_key(key)
            .json(&serde_json::json!({ "plan": plan }))
    }

    pub fn status(id: &str) -> Call {
        Call::get(&format!("/v1/trials/{id}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        if name.eq_ignore_ascii_case("x-org-id") {
            self.org = Some(value.to_owned());
        }
        self.builder = self.builder.header(name, value);
        self
    }

    /// A header whose value is raw bytes (obs-text, which `header` cannot set).
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Call {
        let value = HeaderValue::from_bytes(value).expect("a header value http accepts");
        self.builder = self.builder.header(name, value);
        self
    }

    /// Drops a default header (missing-header tests).
    pub fn without(mut self, name: &str) -> Call {
        if let Some(headers) = self.builder.headers_mut() {
            headers.remove(name);
        }
        if name.eq_ignore_ascii_case("x-org-id") {
            self.org = None;
        }
        self
    }

    pub fn org(self, org: &str) -> Call {
        self.without("x-org-id").header("x-org-id", org)
    }

    pub fn idempotency_key(self, key: &str) -> Call {
        self.header("idempotency-key", key)
    }

    pub fn json(mut self, body: &Value) -> Call {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::Text(body.to_string());
        self
    }

    pub fn raw_body(mut self, body: &str) -> Call {
        self.body = Body::Text(body.to_owned());
        self
    }

    /// Sets the `{id}` path parameter as API Gateway would.
    pub fn path_id(mut self, id: &str) -> Call {
        self.path_id = Some(id.to_owned());
        self
    }

    /// The Lambda invocation deadline (epoch ms).
    pub fn deadline_ms(mut self, deadline: i64) -> Call {
        self.deadline_ms = Some(deadline);
        self
    }

    pub fn org_id(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// `Authorization: Bearer <key>` (the kit then adds nothing).
    pub fn bearer(self, key: &str) -> Call {
        self.without("authorization")
            .header("authorization", &format!("Bearer {key}"))
    }

    /// Sent with the kit's admin key for the call's org (`TestApp::admin_key`).
    pub fn admin(mut self) -> Call {
        self.admin = true;
        self
    }

    /// Sends no credentials unless the call sets `Authorization` itself.
    pub fn without_auth(mut self) -> Call {
        self.auto_auth = false;
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.builder
            .headers_ref()
            .is_some_and(|h| h.contains_key(name))
    }

    pub fn build(self) -> Request {
        let mut req: Request = self.builder.body(self.body).expect("request");
        if let Some(id) = self.path_id {
            req = req.with_path_parameters(HashMap::from([("id".to_string(), id)]));
        }
        if let Some(deadline) = self.deadline_ms {
            let mut ctx = lambda_http::Context::default();
            ctx.deadline = deadline as u64;
            req = req.with_lambda_context(ctx);
        }
        req
    }
}

#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.body))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }
}

impl TestApp {
    /// Sends `call` through the same entry point as the local server (routing by path).
    pub async fn send(&self, call: Call) -> TestResponse {
        let call = self.authorize(call).await;
        let response = trials::api::handle_any(&self.app, call.build()).await;
        read(response)
    }

    /// Sends `call` to one route's handler, as that route's Lambda function would get it.
    pub async fn send_to(&self, route: trials::api::Route, call: Call) -> TestResponse {
        let call = self.authorize(call).await;
        read(trials::api::handle(&self.app, route, call.build()).await)
    }

    /// Adds `Authorization: Bearer <key>` with the kit's key for the call's org (the default
    /// org when the call has none or a malformed one), unless the call has its own
    /// `Authorization` or opted out.
    pub async fn authorize(&self, call: Call) -> Call {
        if !call.auto_auth || call.has_header("authorization") {
            return call;
        }
        let org = call.org_id().unwrap_or(ORG);
        let key = if call.admin {
            self.admin_key(org).await
        } else {
            self.api_key(org).await
        };
        call.header("authorization", &format!("Bearer {}", key.expose()))
    }

    /// The kit's key for `org` (all projects), created the first time; also makes sure the
    /// app's key cache holds it, so `t.dynamo` counts what a warm function does per request.
    /// A malformed org gets the default org's key.
    pub async fn api_key(&self, org: &str) -> ApiKey {
        let org = OrgId::parse(org).unwrap_or_else(|| OrgId::parse(ORG).expect("default org"));
        let key = {
            let mut by_org = self.keys.by_org.lock().await;
            match by_org.get(org.as_str()) {
                Some(key) => key.clone(),
                None => {
                    let key = self.create_key(org.as_str(), &[]).await;
                    by_org.insert(org.as_str().to_owned(), key.clone());
                    key
                }
            }
        };
        let quiet = &self.keys.quiet;
        let record = quiet
            .store
            .get_api_key(key.key_id())
            .await
            .expect("warm the key cache");
        let live = quiet.auth().decide(&key, record);
        assert!(live.is_some(), "the kit's key for {org} was refused");
        key
    }

    /// The kit's admin key for `org` (all projects), created the first time, written behind the
    /// request counter's back (the first request with it reads it).
    pub async fn admin_key(&self, org: &str) -> ApiKey {
        let org = OrgId::parse(org).unwrap_or_else(|| OrgId::parse(ORG).expect("default org"));
        let mut by_org = self.keys.by_org.lock().await;
        let slot = format!("admin:{org}");
        if let Some(key) = by_org.get(&slot) {
            return key.clone();
        }
        let (key, info) = trials::auth::issue::create_with_scope(
            &self.keys.quiet.store,
            org,
            Projects::All,
            true,
            self.now(),
        )
        .await
        .expect("create an admin API key");
        assert!(info.admin);
        by_org.insert(slot, key.clone());
        key
    }

    /// A new key for `org` limited to `projects` (all when empty), written behind the request
    /// counter's back and not cached: the first request with it reads it.
    pub async fn create_key(&self, org: &str, projects: &[&str]) -> ApiKey {
        let org = OrgId::parse(org).expect("a valid org id");
        let projects = Projects::from_list(
            projects
                .iter()
                .map(|p| ProjectId::parse(p).expect("a valid project id"))
                .collect(),
        );
        let (key, _) =
            trials::auth::issue::create(&self.keys.quiet.store, org, projects, self.now())
                .await
                .expect("create an API key");
        key
    }

    /// Revokes `key` in the table (behind the request counter's back); a warm cache still
    /// trusts it until its entry expires.
    pub async fn revoke_key(&self, key: &ApiKey) {
        let revoked = self
            .keys
            .quiet
            .store
            .revoke_api_key(key.key_id(), self.now())
            .await
            .expect("revoke an API key");
        assert!(revoked.is_some(), "no such key to revoke");
    }

    /// Starts a trial for `org` and returns its id.
    pub async fn start_trial(&self, org: &str, plan: &str) -> String {
        let res = self
            .send(Call::start(plan, &format!("start-{org}")).org(org))
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        res.json()["id"].as_str().unwrap().to_owned()
    }
}

pub fn read(response: lambda_http::Response<Body>) -> TestResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Empty => String::new(),
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    TestResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Adds the credentials `TestApp::authorize` would add to a request built from a raw event.
pub async fn with_auth(t: &TestApp, mut req: Request) -> Request {
    if req.headers().contains_key("authorization") {
        return req;
    }
    let org = req
        .headers()
        .get("x-org-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(ORG)
        .to_owned();
    let key = t.api_key(&org).await;
    let value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).expect("header value");
    req.headers_mut().insert("authorization", value);
    req
}

/// The kit's API keys, one per org, and the app as seen through a DynamoDB client the request
/// counter does not see (same table, configuration, clock and key cache): making and warming
/// keys never shows in `t.dynamo`, nor fails while it injects an outage.
pub struct TestKeys {
    quiet: App,
    by_org: tokio::sync::Mutex<HashMap<String, ApiKey>>,
}

impl TestKeys {
    pub fn new(app: &App, endpoint: &str) -> TestKeys {
        let mut quiet = app.clone();
        quiet.store = Store::new(
            trials::aws::local_dynamodb(endpoint),
            app.store.table_name(),
            app.store.shards(),
        );
        TestKeys {
            quiet,
            by_org: tokio::sync::Mutex::default(),
        }
    }
}
