//! Building API Gateway requests in-process and reading responses.
use std::collections::HashMap;

use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;

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

    /// Adds credentials for the call's org (API keys arrive with issue 7).
    pub async fn authorize(&self, call: Call) -> Call {
        call
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
pub async fn with_auth(_t: &TestApp, req: Request) -> Request {
    req
}
