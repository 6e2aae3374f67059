//! `GET /billing/org/v1/trials/start-trial-data?client_id=&product_id=`: Gcore's "start trial
//! data" as Gcore's clients send it (the seed `trial-data-reference.txt`), authorised by
//! `Authorization: apikey <key>` (or `Bearer`). A thin parse-and-render adapter: the trial is
//! `/v1/trials/current`'s ([`super::current::current_trial`]) and its data `/v1/trials/{id}/data`'s
//! ([`super::trial_data::data`]); only the names and types change here.
//!
//! - **`client_id`** names the org whose id is that integer written in decimal (org `"42"` is
//!   client 42; other orgs have no client id). The key must be that org's (403 `forbidden`);
//!   its projects still bound which trial it may read, as on every route.
//! - **`product_id`** is a catalog product's integer id ([`numeric_id`] of its slug).
//! - Both are required integers (`client_id` an `int32`, as the seed says): missing or not an
//!   integer is 400 `invalid_field`; a product the catalog does not have, 400 `invalid_product`.
//! - **Ids** are integers: the trial's [`TrialId::number`], the client's `client_id`, and the
//!   product's, plan's, units' and features' [`numeric_id`]. `is_trial_skipped` is the seed's
//!   string, `"true"` or `"false"`.
//! - **Errors** are Gcore's shape (its REST API's error handling page): `{exception_class,
//!   message, request_id}`, plus our stable `code`, with our statuses: a missing trial is 404
//!   `NotFoundError`.
//!
//! Cost: as `/v1/trials/current`: the key (unless cached), the guard and the trial.
use lambda_http::{Request, RequestExt};
use serde_json::{json, Value};

use super::current::current_trial;
use super::error::ApiError;
use super::reply::Reply;
use super::request::query_param;
use super::trial_data::data;
use super::LogFields;
use crate::auth::{bearer_key, tenant_for_org, AuthError};
use crate::domain::catalog::numeric_id;
use crate::domain::{ErrorCode, OrgId, TrialId};
use crate::App;

pub const PATH: &str = "/billing/org/v1/trials/start-trial-data";

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    Ok(match answer(app, req, log).await {
        Ok(body) => Reply::json(200, &body),
        Err(err) => gcore_error(&err, req),
    })
}

async fn answer(app: &App, req: &Request, log: &mut LogFields) -> Result<Value, ApiError> {
    let info = app.auth().require(bearer_key(req)).await?;
    log.key_id = Some(info.key_id.clone());
    let client_id = integer_param(req, "client_id", i32::MIN.into(), i32::MAX.into())?;
    let product_id = integer_param(req, "product_id", i64::MIN, i64::MAX)?;
    let org = OrgId::parse(&client_id.to_string()).ok_or(AuthError::Forbidden("organization"))?;
    let tenant = tenant_for_org(info, org)?;
    log.tenant(&tenant);
    let catalog = &app.config.catalog;
    let product = catalog
        .plans()
        .iter()
        .map(|plan| &plan.product)
        .find(|product| numeric_id(&product.id) == product_id)
        .ok_or_else(|| ApiError::invalid_product(catalog))?;
    let product = catalog.product_key(&product.id);
    let trial = current_trial(app, &tenant, &product, log).await?;
    let id = trial.id.clone();
    Ok(render(data(app, trial), &id, client_id))
}

/// The query parameter `name`, an integer from `min` to `max`; else 400 `invalid_field`.
fn integer_param(req: &Request, name: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    query_param(req, name)
        .and_then(|raw| raw.trim().parse::<i64>().ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("{name}: required, an integer from {min} to {max}"),
            )
        })
}

/// `/v1/trials/{id}/data`'s body with Gcore's types: integer ids, `is_trial_skipped` a string.
fn render(mut body: Value, id: &TrialId, client_id: i64) -> Value {
    body["id"] = id.number().into();
    body["client_id"] = client_id.into();
    body["client"]["id"] = client_id.into();
    to_integer(&mut body["product"]["id"]);
    to_integer(&mut body["plan"]["id"]);
    if let Some(options) = body["options"].as_array_mut() {
        for option in options {
            to_integer(&mut option["unit"]["id"]);
            to_integer(&mut option["feature"]["id"]);
        }
    }
    let skipped = body["is_trial_skipped"].as_bool().unwrap_or(false);
    body["is_trial_skipped"] = skipped.to_string().into();
    body
}

/// A catalog slug as its integer id ([`numeric_id`]).
fn to_integer(value: &mut Value) {
    if let Some(slug) = value.as_str() {
        *value = numeric_id(slug).into();
    }
}

/// `err` in Gcore's error shape, with its status, code and retryability.
fn gcore_error(err: &ApiError, req: &Request) -> Reply {
    let class = match err.code {
        ErrorCode::InvalidField | ErrorCode::InvalidProduct => "ValidationError",
        ErrorCode::Unauthorized => "AuthenticationError",
        ErrorCode::Forbidden => "PermissionDeniedError",
        ErrorCode::TrialNotFound | ErrorCode::TrialExpired => "NotFoundError",
        _ => "ServiceUnavailableError",
    };
    let request_id = req
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| crate::crypto::random_hex(16));
    let message = match err.code {
        ErrorCode::TrialNotFound => "Trial for this client and product could not be found",
        _ => err.message.as_str(),
    };
    let mut reply = Reply::error(err);
    let mut body = json!({
        "exception_class": class,
        "message": message,
        "request_id": request_id,
        "code": err.code.as_str(),
    });
    if err.retryable {
        body["retryable"] = true.into();
    }
    reply.body = body.to_string();
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_gives_gcores_types_and_leaves_the_rest() {
        let id = TrialId::parse("trial_00000000000ff0123456789a").unwrap();
        let ours = json!({
            "id": id.as_str(), "client_id": "42", "client": {"id": "42", "company_name": null},
            "product": {"id": "app", "name": "App"}, "plan": {"id": "pro", "name": "Pro"},
            "options": [{"unit": {"id": "calls"}, "feature": {"id": "api"}, "value": 3}],
            "is_trial_skipped": true, "days_limit": 7,
        });
        let body = render(ours, &id, 42);
        assert_eq!(body["id"], 0xff_i64);
        assert_eq!(body["client_id"], 42);
        assert_eq!(body["client"], json!({"id": 42, "company_name": null}));
        assert_eq!(
            body["product"],
            json!({"id": numeric_id("app"), "name": "App"})
        );
        assert_eq!(body["plan"]["id"], numeric_id("pro"));
        assert_eq!(body["options"][0]["unit"]["id"], numeric_id("calls"));
        assert_eq!(body["options"][0]["feature"]["id"], numeric_id("api"));
        assert_eq!(body["options"][0]["value"], 3);
        assert_eq!(body["is_trial_skipped"], "true");
        assert_eq!(body["days_limit"], 7);
    }
}
