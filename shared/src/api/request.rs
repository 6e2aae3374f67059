//! Reading what a request carries: the trial id in the path, the JSON body, the invocation's
//! deadline. Works for API Gateway HTTP API (2.0) and REST API (1.0) events and for the local
//! server alike. Headers: [`crate::headers`].
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::applicant::{snake_case_hint, unknown_field_message};
use crate::domain::{ErrorCode, TrialId};

/// The `{id}` of `/v1/trials/{id}[/...]`: the event's path parameter, else the raw path. An id
/// we could not have issued names no trial: 404.
pub fn trial_id(req: &Request) -> Result<TrialId, ApiError> {
    let from_params = req
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .map(str::to_owned);
    let raw = from_params.or_else(|| {
        let path = req.raw_http_path();
        let path = if path.is_empty() {
            req.uri().path().to_owned()
        } else {
            path.to_owned()
        };
        id_from_path(&path).map(str::to_owned)
    });
    raw.as_deref()
        .and_then(TrialId::parse)
        .ok_or_else(ApiError::trial_not_found)
}

/// The query parameter `name`: from the event's parameters (API Gateway), else from the URI
/// (the local server and tests).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    if let Some(value) = req
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        return Some(value.to_owned());
    }
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// [`trial_id`], recorded in the request's log line.
pub fn logged_trial_id(req: &Request, log: &mut super::LogFields) -> Result<TrialId, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    Ok(id)
}

fn id_from_path(path: &str) -> Option<&str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.by_ref().find(|s| *s == "trials")?;
    segments.next()
}

/// The body as a JSON object; anything else is `invalid_json`.
pub fn json_object(req: &Request) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_json("the body is empty"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json("expected an object")),
        Err(e) => Err(ApiError::invalid_json(e)),
    }
}

/// The body as `T`, a struct with `#[serde(deny_unknown_fields)]`, parsed once at the edge:
/// not a JSON object is `invalid_json`; a field `T` does not have is 400 `invalid_field`
/// naming it; a field of the wrong type is `wrong_type(field)`, the route's own answer for it.
pub fn typed_body<T: DeserializeOwned>(
    req: &Request,
    wrong_type: impl Fn(&str) -> ApiError,
) -> Result<T, ApiError> {
    typed(json_object(req)?, wrong_type)
}

/// [`typed_body`] for a body already read as an object.
pub fn typed<T: DeserializeOwned>(
    body: Map<String, Value>,
    wrong_type: impl Fn(&str) -> ApiError,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner().to_string();
        if inner.starts_with("unknown field") {
            // serde's message names the field (the body's own key) and the ones expected; a
            // camelCase name also gets the snake_case one to use.
            let mut shown: String = inner.chars().take(200).collect();
            if let Some(name) = inner.split('`').nth(1) {
                shown.push_str(&snake_case_hint(name));
            }
            ApiError::new(ErrorCode::InvalidField, shown)
        } else {
            wrong_type(&field)
        }
    })
}

/// Refuses a body field `known` does not accept: 400 `invalid_field` naming it (with the
/// snake_case hint for a camelCase name), for bodies read as maps rather than as [`typed`].
pub fn known_fields(
    body: &Map<String, Value>,
    known: impl Fn(&str) -> bool,
) -> Result<(), ApiError> {
    match body.keys().find(|name| !known(name)) {
        Some(name) => Err(unknown_field(name)),
        None => Ok(()),
    }
}

/// 400 `invalid_field` for a body field no route knows (see [`unknown_field_message`]).
pub fn unknown_field(name: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, unknown_field_message(name))
}

/// For a route that takes no body (cancel, pause, resume): a JSON object with any field is 400
/// `invalid_field` naming it, rather than ignored. An empty body, `{}` or a body that is not a
/// JSON object is let through as before (the fingerprint still covers it).
pub fn no_fields(req: &Request) -> Result<(), ApiError> {
    match serde_json::from_slice::<Value>(req.body().as_ref()) {
        Ok(Value::Object(body)) => known_fields(&body, |_| false),
        _ => Ok(()),
    }
}

/// Milliseconds since the epoch at which the Lambda invocation is cut off, if we run in one and
/// the value is a plausible epoch time (see [`crate::clock::plausible_deadline`]).
pub fn deadline_ms(req: &Request, now_ms: i64) -> Option<i64> {
    req.lambda_context_ref()
        .and_then(|ctx| crate::clock::plausible_deadline(ctx.deadline as i64, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_id_after_trials_even_behind_a_stage() {
        assert_eq!(id_from_path("/v1/trials/trial_x"), Some("trial_x"));
        assert_eq!(
            id_from_path("/prod/v1/trials/trial_x/convert"),
            Some("trial_x")
        );
        assert_eq!(id_from_path("/v1/trials"), None);
        assert_eq!(id_from_path("/v1/other/x"), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        n: Option<i64>,
    }

    fn parse(body: Value) -> Result<Body, ApiError> {
        let Value::Object(map) = body else {
            unreachable!()
        };
        typed(map, |field| {
            ApiError::new(ErrorCode::InvalidQuantity, field)
        })
    }

    #[test]
    fn an_unknown_field_is_invalid_field_by_name_and_a_mistyped_one_the_routes_answer() {
        assert!(parse(serde_json::json!({ "n": 3 })).is_ok());
        assert!(parse(serde_json::json!({})).is_ok());
        let err = parse(serde_json::json!({ "n": 1, "nope": true })).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidField);
        assert!(err.message.contains("`nope`"), "{}", err.message);
        let err = parse(serde_json::json!({ "nCount": 1 })).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidField);
        assert!(err.message.contains("use `n_count`"), "{}", err.message);
        let err = parse(serde_json::json!({ "n": "three" })).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::InvalidQuantity, "n")
        );
    }
}
