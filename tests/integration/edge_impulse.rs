//! Issue 27.3: Edge Impulse's `POST /api/user/trial` as its clients send it (the seed
//! `enterprise-trial-openapi.txt`): `x-api-key`, no tenant headers, the camelCase body, the
//! answer `{success, id, userId, redirectUrl}` checked field by field, errors `{success: false,
//! error}`.
use serde_json::{json, Value};
use trials::config::{Config, Secret};
use trials::domain::catalog::Catalog;
use trials::domain::redirect::AllowedOrigins;
use trials::domain::signals::SignalAction;
use trials::domain::TrialId;
use trials::jwt::VerifyKey;
use trials_tests::requests::ORG;
use trials_tests::{Call, TestApp, TestResponse, DAY, T0};

use crate::jwt;

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// The example catalog and Edge Impulse's redirect origin, then `tweak`.
async fn app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let catalog = Catalog::from_json(ENTERPRISE).expect("catalog");
    TestApp::with_config(|c| {
        c.catalog = catalog;
        c.applicant.redirect_origins =
            AllowedOrigins::parse("https://studio.edgeimpulse.com").unwrap();
        tweak(c);
    })
    .await
}

/// The seed's example body, every field as the seed gives it.
fn seed_body() -> Value {
    json!({
        "email": "fred@flintstones.org",
        "name": "Fred Flintstone",
        "organizationName": "My Company",
        "expirationDate": "2020-01-01T00:00:00Z",
        "notes": "This is a trial for the company's new project.",
        "useCase": "Industrial",
        "userHasMLModelsInProduction": "no",
        "companyName": "ACME Inc.",
        "companySize": "1-10",
        "country": "United States",
        "stateOrProvince": "California",
        "redirectUrlOrigin": "https://studio.edgeimpulse.com",
        "redirectUrlQueryParams": "utm_source=google&utm_medium=cpc&utm_campaign=trial",
    })
}

/// `POST /api/user/trial` without tenant headers nor the kit's credentials.
fn call() -> Call {
    Call::post("/api/user/trial")
        .without("x-org-id")
        .without("x-project-id")
        .without_auth()
}

/// The seed's request: `x-api-key` only, no tenant headers.
async fn post(t: &TestApp, key: &str, body: &Value) -> TestResponse {
    t.send(call().header("x-api-key", key).json(body)).await
}

async fn key(t: &TestApp) -> String {
    t.api_key(ORG).await.expose().to_owned()
}

async fn current(t: &TestApp) -> Value {
    let res = t.send(Call::get("/v1/trials/current")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

fn assert_failure(res: &TestResponse, status: u16, code: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    let body = res.json();
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test]
async fn the_seeds_body_through_x_api_key_answers_the_seeds_shape() {
    let t = app().await;
    let res = post(&t, &key(&t).await, &seed_body()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    let mut names: Vec<&String> = body.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["id", "redirectUrl", "success", "userId"]);
    assert_eq!(body["success"], true);
    assert!(body["id"].is_i64() && body["userId"].is_i64(), "{body}");
    let trial = current(&t).await;
    let id = TrialId::parse(trial["id"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], id.number());
    assert_eq!(
        body["redirectUrl"],
        format!(
            "https://studio.edgeimpulse.com/trial/{id}?utm_source=google&utm_medium=cpc&utm_campaign=trial"
        )
    );
    // Every camelCase field reached the trial; a standard key's admin fields are ignored, so
    // the trial has the plan's 14 days and no notes.
    let applicant = &trial["applicant"];
    assert_eq!(applicant["organization_name"], "My Company");
    assert_eq!(applicant["use_case"], "Industrial");
    assert_eq!(applicant["user_has_ml_models_in_production"], "no");
    assert_eq!(applicant["company_name"], "ACME Inc.");
    assert_eq!(applicant["company_size"], "1-10");
    assert_eq!(applicant["country"], "United States");
    assert_eq!(applicant["state_or_province"], "California");
    assert_eq!(trial["plan"], "edge-impulse-enterprise");
    assert_eq!(
        trial["expires_at"],
        trials::domain::time::rfc3339(T0 + 14 * DAY)
    );
    assert!(trial.get("notes").is_none(), "{trial}");

    // The same request again replays the answer; another body is the org's second trial.
    let again = post(&t, &key(&t).await, &seed_body()).await;
    assert_eq!(again.json(), body);
    let mut other = seed_body();
    other["useCase"] = "Retail".into();
    let refused = post(&t, &key(&t).await, &other).await;
    assert_failure(&refused, 409, "trial_already_exists");
}

#[tokio::test]
async fn user_id_is_stable_for_a_mailbox_and_organization_name_defaults_to_the_name() {
    // The email signal ignored, so the same mailbox may start under a second org.
    let t = app_with(|c| c.applicant.policy.email = SignalAction::Ignore).await;
    let body = json!({ "email": "Fred.Flintstone+trial@gmail.com", "name": "Fred Flintstone" });
    let first = post(&t, &key(&t).await, &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.json().get("redirectUrl").is_none(), "{}", first.body);
    assert_eq!(
        current(&t).await["applicant"]["organization_name"],
        "Fred Flintstone"
    );
    let other_org = t.api_key("org_other").await.expose().to_owned();
    let same_mailbox = json!({ "email": "fredflintstone@googlemail.com", "name": "F" });
    let second = post(&t, &other_org, &same_mailbox).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.json()["userId"], first.json()["userId"]);
    assert_ne!(second.json()["id"], first.json()["id"]);
}

/// Issue 27.3: one trial per user (email) even without `SIGNAL_SECRET`: the same normalised
/// mailbox under a second org's key is refused, in the seed's error shape.
#[tokio::test]
async fn one_trial_per_user_without_a_signal_secret() {
    let t = app().await;
    assert!(t.app.config.applicant.signal_secret.is_none());
    let first = json!({ "email": "fred@flintstones.org", "name": "Fred" });
    assert_eq!(post(&t, &key(&t).await, &first).await.status, 200);
    let other_org = t.api_key("org_other").await.expose().to_owned();
    let tagged = json!({ "email": "Fred+again@Flintstones.org", "name": "Fred" });
    let refused = post(&t, &other_org, &tagged).await;
    assert_failure(&refused, 403, "trial_not_eligible");
    // Another mailbox of the same domain is another user.
    let wilma = json!({ "email": "wilma@flintstones.org", "name": "Wilma" });
    assert_eq!(post(&t, &other_org, &wilma).await.status, 200);
}

#[tokio::test]
async fn an_admin_keys_expiration_date_and_notes_are_kept() {
    let t = app().await;
    let admin = t.admin_key(ORG).await.expose().to_owned();
    let mut body = seed_body();
    body["expirationDate"] = trials::domain::time::rfc3339(T0 + 30 * DAY).into();
    let res = post(&t, &admin, &body).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let trial = t.send(Call::get("/v1/trials/current").admin()).await.json();
    assert_eq!(
        trial["expires_at"],
        trials::domain::time::rfc3339(T0 + 30 * DAY)
    );
    assert_eq!(
        trial["notes"],
        "This is a trial for the company's new project."
    );
}

#[tokio::test]
async fn errors_are_the_seeds_shape_with_our_statuses() {
    let t = app().await;
    let key = key(&t).await;
    // Our own snake_case names are not the seed's.
    let snake = post(&t, &key, &json!({ "company_name": "ACME" })).await;
    assert_failure(&snake, 400, "invalid_field");
    assert!(snake.body.contains("company_name"), "{}", snake.body);
    let plan = post(&t, &key, &json!({ "plan": "pro" })).await;
    assert_failure(&plan, 400, "invalid_field");
    let bad = post(&t, &key, &json!({ "email": "not-an-email" })).await;
    assert_failure(&bad, 400, "invalid_field");
    let origin = post(
        &t,
        &key,
        &json!({ "redirectUrlOrigin": "https://evil.example" }),
    )
    .await;
    assert_failure(&origin, 400, "invalid_redirect_origin");
    let res = t.send(call().header("x-api-key", &key).raw_body("{")).await;
    assert_failure(&res, 400, "invalid_json");
    for credentials in ["", "trk_nope"] {
        let res = post(&t, credentials, &seed_body()).await;
        assert_failure(&res, 401, "unauthorized");
    }
    // Bearer works as `x-api-key` does.
    let bearer = t.send(call().bearer(&key).json(&seed_body())).await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
}

#[tokio::test]
async fn a_catalog_without_the_plan_is_invalid_plan() {
    let t = TestApp::new().await;
    let res = post(&t, &key(&t).await, &json!({ "name": "Fred" })).await;
    assert_failure(&res, 400, "invalid_plan");
}

/// The app with trials-local's JWT verifier (an HS256 secret), as `/v1/me/...` tests it.
async fn jwt_app() -> TestApp {
    let key = VerifyKey::Hs256 {
        kid: None,
        secret: Secret::new(jwt::SECRET),
    };
    app_with(|c| c.jwt = jwt::jwt_config(vec![key])).await
}

/// Issue 27.4: Edge Impulse's `x-jwt-token` header and `jwt` cookie start a trial for the
/// org the token's claim names, with a standard key's rights (the admin-only fields ignored).
#[tokio::test]
async fn x_jwt_token_and_the_jwt_cookie_start_a_trial_for_the_claims_org() {
    let t = jwt_app().await;
    let mut body = seed_body();
    body.as_object_mut().unwrap().remove("email");
    let header_token = jwt::token(jwt::SECRET, &jwt::claims(&t));
    let by_header = t
        .send(call().header("x-jwt-token", &header_token).json(&body))
        .await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    let mut claims = jwt::claims(&t);
    claims["org_id"] = "org_jwtuser2".into();
    let cookie = format!("theme=dark; jwt={}", jwt::token(jwt::SECRET, &claims));
    let by_cookie = t.send(call().header("cookie", &cookie).json(&body)).await;
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.body);
    for (org, res) in [(jwt::ORG, &by_header), ("org_jwtuser2", &by_cookie)] {
        let trial = t
            .send(Call::get("/v1/trials/current").org(org))
            .await
            .json();
        let id = TrialId::parse(trial["id"].as_str().unwrap()).unwrap();
        assert_eq!(res.json()["id"], id.number(), "{trial}");
        assert_eq!(trial["org_id"], org);
        // A standard key's rights: the seed body's expirationDate is ignored.
        assert_eq!(
            trial["expires_at"],
            trials::domain::time::rfc3339(T0 + 14 * DAY)
        );
    }
}

#[tokio::test]
async fn a_bad_jwt_is_the_seeds_error_shape_401() {
    let t = jwt_app().await;
    let forged = jwt::token("another secret", &jwt::claims(&t));
    let bad_header = t
        .send(call().header("x-jwt-token", "not.a.jwt").json(&seed_body()))
        .await;
    assert_failure(&bad_header, 401, "invalid_token");
    let bad_cookie = t
        .send(
            call()
                .header("cookie", &format!("jwt={forged}"))
                .json(&seed_body()),
        )
        .await;
    assert_failure(&bad_cookie, 401, "invalid_token");
    let mut expired = jwt::claims(&t);
    expired["exp"] = (t.now() - 3600).into();
    let late = jwt::token(jwt::SECRET, &expired);
    let res = t
        .send(call().header("x-jwt-token", &late).json(&seed_body()))
        .await;
    assert_failure(&res, 401, "token_expired");
}

/// Issue 27.3: the route's own plan in the example catalog, 14 days with 30 days of grace
/// (the `enterprise` plan keeps its 3 days).
#[tokio::test]
async fn the_routes_trial_lasts_14_days_with_30_days_of_grace() {
    let t = app().await;
    let res = post(&t, &key(&t).await, &seed_body()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    t.clock.set(T0 + 14 * DAY + 1);
    let trial = current(&t).await;
    assert_eq!(trial["plan"], "edge-impulse-enterprise");
    assert_eq!(trial["status"], "EXPIRED", "{trial}");
    let rfc = trials::domain::time::rfc3339;
    assert_eq!(trial["expires_at"], rfc(T0 + 14 * DAY));
    assert_eq!(trial["grace_period_ends_at"], rfc(T0 + 44 * DAY));
    let enterprise = Catalog::from_json(ENTERPRISE).unwrap();
    assert_eq!(enterprise.get("enterprise").unwrap().grace_secs, 3 * DAY);
}
