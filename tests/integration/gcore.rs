//! Issue 27.2: Gcore's `start-trial-data` as Gcore's clients send it (the seed
//! `trial-data-reference.txt`): `Authorization: apikey <key>`, `client_id` and `product_id`,
//! the answer checked field by field against the seed's schema (names, JSON types,
//! nullability), and Gcore's error shape.
use serde_json::{json, Value};
use trials::domain::catalog::{numeric_id, Catalog};
use trials::domain::TrialId;
use trials_tests::chaos::workload::items_by_kind;
use trials_tests::{Call, TestApp, TestResponse};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");
const CLIENT: &str = "42";
const PATH: &str = "/billing/org/v1/trials/start-trial-data";

async fn app() -> TestApp {
    let catalog = Catalog::from_json(ENTERPRISE).expect("catalog");
    TestApp::with_config(|c| c.catalog = catalog).await
}

/// Org 42's enterprise trial, started with a company name; its id.
async fn started(t: &TestApp) -> String {
    let res = t
        .send(
            Call::post("/v1/trials/start")
                .org(CLIENT)
                .idempotency_key("k1")
                .json(&json!({ "plan": "enterprise", "company_name": "Analytical Engines Ltd" })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["id"].as_str().unwrap().to_owned()
}

/// The seed's request: only `Authorization` (no tenant headers), the query as given.
async fn gcore(t: &TestApp, query: &str, authorization: &str) -> TestResponse {
    let call = Call::get(&format!("{PATH}{query}"))
        .without("x-org-id")
        .without("x-project-id")
        .without_auth();
    let call = match authorization {
        "" => call,
        value => call.header("authorization", value),
    };
    t.send(call).await
}

async fn apikey(t: &TestApp, org: &str) -> String {
    format!("apikey {}", t.api_key(org).await.expose())
}

fn app_product() -> i64 {
    numeric_id("app")
}

/// The query for client 42 and `product`.
fn client_query(product: i64) -> String {
    format!("?client_id={CLIENT}&product_id={product}")
}

/// Asserts `value` has exactly the seed's fields, each of the seed's JSON type (`?` after a type:
/// nullable).
fn assert_shape(value: &Value, shape: &Value, at: &str) {
    match shape {
        Value::Object(fields) => {
            let object = value.as_object().unwrap_or_else(|| panic!("{at}: {value}"));
            let mut names: Vec<&String> = object.keys().collect();
            let mut seed: Vec<&String> = fields.keys().collect();
            names.sort();
            seed.sort();
            assert_eq!(names, seed, "{at}: the seed's field names");
            for (name, inner) in fields {
                assert_shape(&object[name], inner, &format!("{at}.{name}"));
            }
        }
        Value::Array(items) => {
            let array = value.as_array().unwrap_or_else(|| panic!("{at}: {value}"));
            assert!(!array.is_empty(), "{at}: an example item to check");
            for item in array {
                assert_shape(item, &items[0], &format!("{at}[]"));
            }
        }
        Value::String(kind) => {
            let (kind, nullable) = match kind.strip_suffix('?') {
                Some(kind) => (kind, true),
                None => (kind.as_str(), false),
            };
            let fits = match kind {
                "integer" => value.is_i64(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                _ => panic!("{kind}"),
            };
            assert!(
                fits || (nullable && value.is_null()),
                "{at}: {value} is not {kind}"
            );
        }
        _ => panic!("{shape}"),
    }
}

/// The seed's 200 schema: every field it marks required, with its type; `remaining_duration`
/// is the one the seed says may be null; `company_name` is a string the seed's client may lack.
fn seed_schema() -> Value {
    json!({
        "id": "integer",
        "client_id": "integer",
        "client": { "id": "integer", "company_name": "string?" },
        "product": { "id": "integer", "name": "string", "internal_name": "string" },
        "plan": { "id": "integer", "name": "string" },
        "days_limit": "integer",
        "active_ranges": [{ "start": "string", "end": "string" }],
        "created_at": "string",
        "options": [{
            "internal_name": "string",
            "name": "string",
            "description": "string",
            "unit": { "id": "integer", "name": "string", "internal_name": "string" },
            "value": "integer",
            "used_value": "integer",
            "remaining_value": "integer",
            "is_limit": "boolean",
            "feature": { "id": "integer", "name": "string" },
        }],
        "remaining_duration": "integer?",
        "is_trial_skipped": "string",
    })
}

#[tokio::test]
async fn the_seeds_request_answers_the_seeds_schema_field_by_field() {
    let t = app().await;
    let id = started(&t).await;
    let key = apikey(&t, CLIENT).await;
    let query = client_query(app_product());
    let res = gcore(&t, &query, &key).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_shape(&body, &seed_schema(), "body");
    assert_eq!(body["id"], TrialId::parse(&id).unwrap().number());
    assert_eq!(
        (body["client_id"].clone(), body["client"]["id"].clone()),
        (json!(42), json!(42))
    );
    assert_eq!(body["client"]["company_name"], "Analytical Engines Ltd");
    assert_eq!(body["product"]["id"], app_product());
    assert_eq!(body["plan"]["id"], numeric_id("enterprise"));
    assert_eq!(body["days_limit"], 14);
    assert_eq!(body["remaining_duration"], 14 * 86_400);
    assert_eq!(body["is_trial_skipped"], "false");
    assert_eq!(body["options"][0]["internal_name"], "api_calls");
    // The same data as `/v1/trials/{id}/data`, Bearer or apikey alike.
    let bearer = key.replace("apikey ", "Bearer ");
    assert_eq!(gcore(&t, &query, &bearer).await.json(), body);
    let ours = t
        .send(Call::get(&format!("/v1/trials/{id}/data")).org(CLIENT))
        .await
        .json();
    assert_eq!(ours["client"]["company_name"], "Analytical Engines Ltd");
    assert_eq!(ours["active_ranges"], body["active_ranges"]);
    // The number is reserved (one item per trial).
    assert_eq!(items_by_kind(&t).await.get("TRIALNUM"), Some(&1));

    // As API Gateway would deliver it without a route key: the path as written routes to
    // Gcore's handler, not to `GET /v1/trials/{id}`.
    let req = Call::get(&format!("{PATH}{query}"))
        .without("x-org-id")
        .without("x-project-id")
        .header("authorization", &key)
        .build();
    let res = trials::api::handle_among(&t.app, trials::api::routes::STATUS, req).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn days_limit_is_the_trials_current_length() {
    let t = app().await;
    let id = started(&t).await;
    let extend = Call::post(&format!("/v1/trials/{id}/extend"))
        .org(CLIENT)
        .admin()
        .idempotency_key("e1")
        .json(&json!({ "days": 3 }));
    let res = t.send(extend).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let key = apikey(&t, CLIENT).await;
    let query = client_query(app_product());
    let body = gcore(&t, &query, &key).await.json();
    assert_eq!(body["days_limit"], 17, "{body}");
}

/// Gcore's error shape: `exception_class`, `message`, `request_id`, and our `code`.
fn assert_gcore_error(res: &TestResponse, status: u16, class: &str, code: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    let body = res.json();
    assert_eq!(body["exception_class"], class, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn missing_or_invalid_parameters_are_400_validation_errors() {
    let t = app().await;
    started(&t).await;
    let key = apikey(&t, CLIENT).await;
    let product = app_product();
    // The seed's curl as written: no query at all.
    let verbatim = gcore(&t, "", &key).await;
    assert_gcore_error(&verbatim, 400, "ValidationError", "invalid_field");
    assert!(verbatim.body.contains("client_id"), "{}", verbatim.body);
    for query in [
        format!("?product_id={product}"),
        format!("?client_id=&product_id={product}"),
        format!("?client_id=abc&product_id={product}"),
        format!("?client_id=2147483648&product_id={product}"),
        format!("?client_id=4.2&product_id={product}"),
        "?client_id=42".to_owned(),
        "?client_id=42&product_id=app".to_owned(),
    ] {
        let res = gcore(&t, &query, &key).await;
        assert_gcore_error(&res, 400, "ValidationError", "invalid_field");
    }
    let unknown = gcore(&t, &client_query(product + 1), &key).await;
    assert_gcore_error(&unknown, 400, "ValidationError", "invalid_product");
}

#[tokio::test]
async fn another_orgs_client_id_or_no_key_is_refused() {
    let t = app().await;
    started(&t).await;
    let product = app_product();
    let other = apikey(&t, "43").await;
    let refused = gcore(&t, &client_query(product), &other).await;
    assert_gcore_error(&refused, 403, "PermissionDeniedError", "forbidden");
    // A non-numeric org has no client id: its key reaches no client's trial.
    let named = apikey(&t, "org_abc123").await;
    let refused = gcore(&t, &client_query(product), &named).await;
    assert_gcore_error(&refused, 403, "PermissionDeniedError", "forbidden");
    let query = client_query(product);
    for authorization in ["", "apikey nope", "Basic abc", "apikey"] {
        let res = gcore(&t, &query, authorization).await;
        assert_gcore_error(&res, 401, "AuthenticationError", "unauthorized");
    }
}

#[tokio::test]
async fn a_client_without_a_trial_of_the_product_gets_gcores_not_found() {
    let t = app().await;
    let key = apikey(&t, CLIENT).await;
    let res = gcore(&t, &client_query(app_product()), &key).await;
    assert_gcore_error(&res, 404, "NotFoundError", "trial_not_found");
}

/// `Authorization: apikey <key>` is accepted on every keyed route, as `Bearer` is.
#[tokio::test]
async fn the_apikey_scheme_authenticates_the_other_routes_too() {
    let t = app().await;
    let id = started(&t).await;
    let key = apikey(&t, CLIENT).await;
    let res = t
        .send(Call::status(&id).org(CLIENT).header("authorization", &key))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}
