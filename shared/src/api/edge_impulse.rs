//! `POST /api/user/trial`: Edge Impulse's "start enterprise trial" as its clients send it (the
//! seed `enterprise-trial-openapi.txt`): the key in `x-api-key` (or `Authorization: Bearer`),
//! no tenant headers (the org, and the project, are the key's: its first project, or `all` for
//! a key for all projects), or an end user's JWT (the seed's `x-jwt-token` header or `jwt`
//! cookie, or a Bearer token that is not one of our keys: [`crate::auth::Authenticator::key_or_jwt`],
//! a standard key's rights on the claim's org), the seed's camelCase body, the seed's answers. A thin
//! parse-and-render adapter over `POST /v1/trials/start` ([`super::start::handle`]): the body is
//! renamed to ours and the start's answer rendered in the seed's shape; every rule (one trial
//! per org and product, the admin fields, the signals, the redirect, idempotency) is start's.
//!
//! - **The plan** is the catalog's `EDGE_IMPULSE_PLAN` (default `edge-impulse-enterprise`: 14
//!   days and 30 days of grace, as the seed says, in `examples/plans-enterprise.json`; a
//!   catalog without it answers 400 `invalid_plan`); a
//!   non-admin's `expirationDate` and `notes` are ignored, so its trial has the plan's length.
//! - **`organizationName`** defaults to `name`, as the seed says.
//! - **Fields** are exactly the seed's; any other (our snake_case names included) is 400
//!   `invalid_field` naming it.
//! - **Idempotency**: `Idempotency-Key` if the client sends one; else the key is the body's
//!   hash, so a retried request replays its answer and another body meets the org's guard.
//! - **The answer** is 200 `{success: true, id, userId, redirectUrl}`: `id` the trial's integer
//!   id ([`TrialId::number`]), `userId` a stable integer for the applicant (52 bits of SHA-256 of
//!   the normalised email, the same for the same mailbox; of the org id without an email),
//!   `redirectUrl` when the body asked for one. Errors are `{success: false, error}` (plus our
//!   `code`) with start's statuses.
use lambda_http::{Body, Request, RequestExt};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::reply::Reply;
use super::request::json_object;
use super::{start, LogFields};
use crate::auth::Tenant;
use crate::crypto::sha256_hex;
use crate::domain::applicant::Email;
use crate::domain::signals::normalize_email;
use crate::domain::{ErrorCode, OrgId, TrialId};
use crate::App;

pub const PATH: &str = "/api/user/trial";

/// The seed's body fields, each with our name for it.
const FIELDS: [(&str, &str); 13] = [
    ("email", "email"),
    ("name", "name"),
    ("organizationName", "organization_name"),
    ("expirationDate", "expires_at"),
    ("notes", "notes"),
    ("useCase", "use_case"),
    (
        "userHasMLModelsInProduction",
        "user_has_ml_models_in_production",
    ),
    ("companyName", "company_name"),
    ("companySize", "company_size"),
    ("country", "country"),
    ("stateOrProvince", "state_or_province"),
    ("redirectUrlOrigin", "redirect_url_origin"),
    ("redirectUrlQueryParams", "redirect_url_query_params"),
];

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    Ok(match answer(app, req, log).await {
        Ok(reply) => reply,
        Err(err) => failure(Reply::error(&err)),
    })
}

async fn answer(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let tenant = app.auth().key_or_jwt(&app.config.jwt, req).await?;
    log.tenant(&tenant);
    let body = ours(&json_object(req)?, &app.config.edge_impulse_plan)?;
    let user_id = user_id(&body, &tenant.org);
    let started = start::handle(app, &start_request(req, &tenant, &body)?, &tenant, log).await?;
    Ok(rendered(started, user_id))
}

/// The seed's body as start's: names renamed, `organization_name` defaulted to `name`, and
/// the plan this route starts.
fn ours(body: &Map<String, Value>, plan: &str) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (name, value) in body {
        let Some((_, ours)) = FIELDS.iter().find(|(seed, _)| seed == name) else {
            let shown: String = name.chars().take(40).collect();
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!(
                    "unknown field `{shown}`: this route takes Edge Impulse's camelCase fields"
                ),
            ));
        };
        out.insert((*ours).to_owned(), value.clone());
    }
    let blank = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
    };
    if blank(out.get("organization_name")) && !blank(out.get("name")) {
        let name = out["name"].clone();
        out.insert("organization_name".into(), name);
    }
    out.insert("plan".into(), plan.into());
    Ok(Value::Object(out))
}

/// The seed's `userId`: 52 bits of SHA-256 of the normalised email (the org id without one).
fn user_id(body: &Value, org: &OrgId) -> i64 {
    let subject = match body["email"].as_str().and_then(|e| Email::parse(e).ok()) {
        Some(email) => format!("email:{}", normalize_email(&email)),
        None => format!("org:{org}"),
    };
    i64::from_str_radix(&sha256_hex(subject.as_bytes())[..13], 16).unwrap_or(0)
}

/// Start's request for `body`, under the key's tenant.
fn start_request(req: &Request, tenant: &Tenant, body: &Value) -> Result<Request, ApiError> {
    let text = body.to_string();
    let key = match crate::headers::header(req, "idempotency-key") {
        Some(key) => key.to_owned(),
        None => format!("ei-{}", &sha256_hex(text.as_bytes())[..32]),
    };
    let inner = lambda_http::http::Request::builder()
        .method("POST")
        .uri(start::PATH)
        .header("x-org-id", tenant.org.as_str())
        .header("x-project-id", tenant.project.as_str())
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .map_err(|_| ApiError::new(ErrorCode::InvalidIdempotencyKey, "Invalid Idempotency-Key"))?;
    Ok(match req.lambda_context_ref() {
        Some(context) => inner.with_lambda_context(context.clone()),
        None => inner,
    })
}

/// Start's answer in the seed's shape: 200 `{success, id, userId, redirectUrl}`, or an error.
fn rendered(reply: Reply, user_id: i64) -> Reply {
    if reply.status >= 400 {
        return failure(reply);
    }
    let body: Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let number = body["id"]
        .as_str()
        .and_then(TrialId::parse)
        .map(|id| id.number());
    let mut out = json!({ "success": true, "id": number, "userId": user_id });
    if let Some(url) = body["redirect_url"].as_str() {
        out["redirectUrl"] = url.into();
    }
    Reply {
        status: 200,
        body: out.to_string(),
        ..reply
    }
}

/// An error answer as the seed's `{success: false, error}`, with our `code`, same status.
fn failure(reply: Reply) -> Reply {
    let body: Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let error = &body["error"];
    let mut out = json!({
        "success": false,
        "error": error["message"],
        "code": error["code"],
    });
    if reply.retryable {
        out["retryable"] = true.into();
    }
    Reply {
        body: out.to_string(),
        ..reply
    }
}
