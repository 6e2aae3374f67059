//! Issue 27 item 4: end users' JWTs on `/v1/me/...` (start, status, `/current`): verified by
//! `trials-local` itself (an HS256 secret, or a JWKS file), or taken from API Gateway's JWT
//! authorizer in the request context in Lambda; a standard key's rights on the org the token's
//! claim names, and nothing else.
use serde_json::{json, Value};
use trials::config::Secret;
use trials::jwt::{JwtConfig, VerifyKey};
use trials_tests::requests::read;
use trials_tests::{Call, TestApp};

pub(crate) const SECRET: &str = "a local HS256 secret, never a real one";
const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "trials-web";
pub(crate) const ORG: &str = "org_jwtuser1";

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token of `claims` signed with `secret`.
pub(crate) fn token(secret: &str, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let signature = trials::crypto::hmac_sha256(secret.as_bytes(), signed.as_bytes());
    format!("{signed}.{}", b64(&signature))
}

pub(crate) fn jwt_config(keys: Vec<VerifyKey>) -> JwtConfig {
    JwtConfig {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        org_claim: "org_id".into(),
        keys,
    }
}

async fn app() -> TestApp {
    let key = VerifyKey::Hs256 {
        kid: None,
        secret: Secret::new(SECRET),
    };
    TestApp::with_config(|c| c.jwt = jwt_config(vec![key])).await
}

/// A user's claims, valid for an hour from the app's now.
pub(crate) fn claims(t: &TestApp) -> Value {
    json!({
        "sub": "user_1", "iss": ISSUER, "aud": AUDIENCE, "org_id": ORG,
        "iat": t.now(), "exp": t.now() + 3600,
    })
}

/// `call` from the web app: the token, no API key, no tenant headers.
fn as_user(call: Call, jwt: &str) -> Call {
    call.without("x-org-id").without("x-project-id").bearer(jwt)
}

#[tokio::test]
async fn a_valid_token_starts_and_reads_the_trial_of_its_org() {
    let t = app().await;
    let jwt = token(SECRET, &claims(&t));
    let start = Call::post("/v1/me/trials/start")
        .idempotency_key("web-1")
        .json(&json!({ "plan": "growth" }));
    let started = t.send(as_user(start, &jwt)).await;
    assert_eq!(started.status, 201, "{}", started.body);
    assert_eq!(started.json()["org_id"], ORG);
    let id = started.json()["id"].as_str().unwrap().to_owned();

    let status = t
        .send(as_user(Call::get(&format!("/v1/me/trials/{id}")), &jwt))
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["id"], id.as_str());
    let current = t
        .send(as_user(Call::get("/v1/me/trials/current"), &jwt))
        .await;
    assert_eq!(current.status, 200, "{}", current.body);
    assert_eq!(current.json()["id"], id.as_str());
    // The org's API key sees the same trial: one org, two kinds of credentials.
    let keyed = t.send(Call::status(&id).org(ORG)).await;
    assert_eq!(keyed.status, 200, "{}", keyed.body);
    // Naming its own org in X-Org-Id is fine.
    let named = Call::get("/v1/me/trials/current").bearer(&jwt).org(ORG);
    assert_eq!(t.send(named).await.status, 200);
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_401_with_their_codes() {
    let t = app().await;
    let good = claims(&t);
    let with = |name: &str, value: Value| {
        let mut c = good.clone();
        c[name] = value;
        c
    };
    let mut no_org = good.clone();
    no_org.as_object_mut().unwrap().remove("org_id");
    for (jwt, code) in [
        (token("another secret", &good), "invalid_token"),
        ("not.a.token".to_owned(), "invalid_token"),
        (
            token(SECRET, &with("exp", json!(t.now() - 120))),
            "token_expired",
        ),
        (
            token(SECRET, &with("nbf", json!(t.now() + 600))),
            "token_expired",
        ),
        (
            token(SECRET, &with("aud", json!("another-app"))),
            "invalid_token_audience",
        ),
        (
            token(SECRET, &with("iss", json!("https://evil.example/"))),
            "invalid_token_issuer",
        ),
        (token(SECRET, &no_org), "token_missing_org"),
        (
            token(SECRET, &with("org_id", json!("not an org"))),
            "token_missing_org",
        ),
    ] {
        let res = t
            .send(as_user(Call::get("/v1/me/trials/current"), &jwt))
            .await;
        assert_eq!(
            (res.status, res.error_code()),
            (401, code.to_owned()),
            "{}",
            res.body
        );
    }
    // No token at all, or an API key where a JWT is expected.
    let res = t
        .send(Call::get("/v1/me/trials/current").without_auth())
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (401, "invalid_token".to_owned())
    );
    let key = t.api_key(ORG).await;
    let res = t
        .send(Call::get("/v1/me/trials/current").bearer(key.expose()))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (401, "invalid_token".to_owned())
    );
    // An audience among several is fine.
    let many = token(SECRET, &with("aud", json!(["other", AUDIENCE])));
    let res = t
        .send(as_user(Call::get("/v1/me/trials/current"), &many))
        .await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert_eq!(res.error_code(), "trial_not_found");
}

/// Tokens and their subjects stay out of the logs: the request line names the key as `jwt`.
#[tokio::test]
async fn tokens_never_reach_a_log_line() {
    use tracing_subscriber::layer::SubscriberExt;
    let t = app().await;
    let mut user = claims(&t);
    user["sub"] = json!("user_zanzibar_quokka");
    let jwt = token(SECRET, &user);
    let forged = token("another secret", &user);
    let logs = trials_tests::logs::Captured::default();
    let layer = trials::telemetry::layer(tracing::Level::TRACE, logs.clone());
    let subscriber = tracing_subscriber::registry().with(layer);
    // See auth.rs: a second dispatcher makes tracing-core ask every thread about call sites.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = tracing::subscriber::set_default(subscriber);
    for bearer in [&jwt, &forged] {
        t.send(as_user(Call::get("/v1/me/trials/current"), bearer))
            .await;
    }
    drop(guard);
    let text = logs.text();
    assert!(text.contains("\"key_id\":\"jwt\""), "{text}");
    for secret in [
        jwt.as_str(),
        forged.as_str(),
        "user_zanzibar_quokka",
        SECRET,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn a_token_acts_on_its_own_org_only() {
    let t = app().await;
    let jwt = token(SECRET, &claims(&t));
    let other = Call::get("/v1/me/trials/current")
        .bearer(&jwt)
        .org("org_someone");
    let res = t.send(other).await;
    assert_eq!(
        (res.status, res.error_code()),
        (403, "forbidden".to_owned())
    );
    // Another org's trial reads as none.
    let theirs = t.start_trial("org_someone", "growth").await;
    let res = t
        .send(as_user(Call::get(&format!("/v1/me/trials/{theirs}")), &jwt))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (404, "trial_not_found".to_owned())
    );
}

/// A Lambda request from an HTTP API route with the JWT authorizer: `event` with the claims
/// API Gateway verified (and no token: the function has no key to check one with).
fn lambda_event(route_key: &str, path: &str, claims: Option<Value>) -> lambda_http::Request {
    let mut event = json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
        "headers": {"authorization": "Bearer verified.by.apigateway"},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": route_key, "stage": "$default", "time": "06/Apr/2026:10:00:00 +0000", "timeEpoch": 0},
        "isBase64Encoded": false
    });
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] =
            json!({ "jwt": { "claims": claims, "scopes": null } });
    }
    lambda_http::request::from_str(&event.to_string()).expect("event parses")
}

#[tokio::test]
async fn in_lambda_the_claims_come_from_the_authorizer_in_the_request_context() {
    // No keys: as in AWS, where API Gateway's authorizer verifies the token.
    let t = TestApp::with_config(|c| c.jwt = jwt_config(Vec::new())).await;
    let id = t.start_trial(ORG, "growth").await;
    // API Gateway hands claims over as strings.
    let strings = |c: Value| -> Value {
        let map = c.as_object().unwrap().iter();
        Value::Object(
            map.map(|(k, v)| (k.clone(), json!(v.to_string().trim_matches('"'))))
                .collect(),
        )
    };
    let send = |claims: Option<Value>| {
        let req = lambda_event("GET /v1/me/trials/current", "/v1/me/trials/current", claims);
        trials::api::handle_among(&t.app, trials::api::routes::STATUS, req)
    };
    let res = read(send(Some(strings(claims(&t)))).await);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["id"], id.as_str());
    // Without the authorizer's claims there is nothing to trust: the token is not checked.
    let res = read(send(None).await);
    assert_eq!(
        (res.status, res.error_code()),
        (401, "invalid_token".to_owned())
    );
    // The org claim as configured, and the issuer and audience checked again.
    let mut wrong = claims(&t);
    wrong["aud"] = json!("[other another]");
    let res = read(send(Some(strings(wrong))).await);
    assert_eq!(res.error_code(), "invalid_token_audience");
    let mut listed = claims(&t);
    listed["aud"] = json!(format!("[other {AUDIENCE}]"));
    assert_eq!(read(send(Some(strings(listed))).await).status, 200);
}

#[tokio::test]
async fn a_jwks_file_gives_the_keys() {
    let dir = std::env::temp_dir().join(format!("trials-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    let jwks = json!({ "keys": [{ "kty": "oct", "kid": "k1", "k": b64(SECRET.as_bytes()) }] });
    std::fs::write(&path, jwks.to_string()).unwrap();
    let lookup = |name: &str| match name {
        "JWT_JWKS_FILE" => Some(path.display().to_string()),
        "JWT_ORG_CLAIM" => Some("https://example.com/org".to_owned()),
        _ => None,
    };
    let config = JwtConfig::from_lookup(&lookup).expect("a readable JWKS");
    assert_eq!(config.keys.len(), 1);
    let t = TestApp::with_config(|c| c.jwt = config).await;
    let mut c = claims(&t);
    c["https://example.com/org"] = json!(ORG);
    c.as_object_mut().unwrap().remove("org_id");
    let res = t
        .send(as_user(
            Call::get("/v1/me/trials/current"),
            &token(SECRET, &c),
        ))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (404, "trial_not_found".to_owned())
    );
    let missing =
        |name: &str| (name == "JWT_JWKS_FILE").then(|| "/nonexistent/jwks.json".to_owned());
    assert!(JwtConfig::from_lookup(&missing)
        .unwrap_err()
        .contains("JWT_JWKS_FILE"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A 2048-bit RSA key made for this test alone (`openssl genpkey`, PKCS#8 DER, base64): it
/// signs the RS256 tokens a JWKS file's public half verifies.
const TEST_RSA_PKCS8: &str = concat!(
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCuiful7wZkOsvSj825yqoAK7eIes5yTKI8tHy9",
    "Rrnr2MVV3Sq1iQU5uhppWkbjpSImxy21pK/Q5p2boH42MMY1MIoFcIJiKq8S2KfXmWGgJ9mh3VNOmB4k5gR+k18X",
    "VuXzIgwuDeVpV7QuMfto2maOoXEFTz2Iy1HvS2iHU1J+pMpf3QpSlQKxzHDZf/rrb/PMMhq8/LDgiV3bc3wWWq1W",
    "rZONLECNoxf9fOm/NwWxYYB92iJMGLb/LYcR+Llisb68mQcf3dmGwUFyCGMKG22pmoiM+TyqYQ8R4an/lZYsY+Lc",
    "GjKXR3ZNRREqVYH4Q4dWuJFpawfXuS6pQ7x2rxUDAgMBAAECggEADcUoG/LMM8spun6K8g4JtIK+c5+QuxbNs/Ff",
    "aAV09KUBCKGu1Wyug1vp6obrUdl85MdRFWQdVONk6trSKk9Vy+t88Cnst3b7ogaC03Ev8RVDx8/w2yIIOswE7cGN",
    "vocmFDUK9fU1tMZtGjnqRl74uWcGRi92wNydpb3yzL5no0MWs4SdXrZKkABhzrzU4SLFx+bVqiKU0mke0RU3tqZV",
    "2k9LlE2wStt61iJk3U9Ltci3XkOIjCbG/8zFQYmZmEYJlO+kLoGdq9HAHjVQL3geo5N//w1fXK865jRvJV6sQLm4",
    "02+8GdErwYoP0tO2Yekx5M4tx/3lzkug8/mrFEvnQQKBgQDUsFuiQvDq8neSiwy4wq0lDXC+VGBsji5cvJrxxs9o",
    "4bP6mP5gl0L3Tz3sWbiSovsQgyMM8hdZkW9jnnO5bn+QvVPfx+U27L2J+kV8A3cDCUvbza4MatxGHMK+4muGiQZX",
    "Q60efukZB3b2/6KmNyDSVSed9aJmpM5gAa7uIUr6QwKBgQDSFNcXifnusA9Wtn34zy/WHR5qMvokonfbwP6soPz+",
    "3HJvp/4EYD4g2SlHblk9jhHQgNjcFQtVhxql8t7htWJJk5I8zLR5POMRHFdq/DrNhBqCu+idcXis3OSgNmZC3OyI",
    "S4gPfPAl1X82UdX5//yeFQui9m+ke1sjCsWY1oSuQQKBgCHAWspFFTYzhAYdSseHHTLkDyAlA6g2Z+UPiQcVJZTf",
    "PFBoNvXdCyNzz7/R/RhIBM95//Xt9QahrauBWZvzjQrLAKRidF1i9DERJjWn1xsEPqWC3jvaOVpm9gCUrbuLwxXW",
    "B4LvYM44AQjxSD5YQT0fhknq0Pq47IcPvVLMtblBAoGAEx4qZM39nKcQ/kclN5tDMyz7M5boBKV0Wt85TeRooZjW",
    "ISschrFrdfnNM97q6Bshq+PN2Flh6qqc1jU/6zJie2eei0HlupK75za5DddeUo2PDA6loI5O+QwxEhNhQvxv2gdl",
    "nmM0R30iUoMoAdQ13Pz1TiM3DbTcGlhEmyAKewECgYBDutkufBblS/ijFoiV7gNYn7kCySbPoamSddo60Ofg0QBv",
    "/tTyNrOZQNVKoPdDYZ9YCkVgNzRxlgUuf8RGXITmnRml3QbkxfCfAsjew/QnfVYu0e9gQaC0gblDghNnSV8luCpS",
    "L2keMA0g6SnVUyZkEU0fkoEXcnYOFj62qClfgg==",
);

fn std_b64(text: &str) -> Vec<u8> {
    let url: String = text
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    trials::jwt::b64url(&url).expect("base64")
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_rsa_keys_of_a_jwks_file() {
    use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};
    let pair = RsaKeyPair::from_pkcs8(&std_b64(TEST_RSA_PKCS8)).expect("the test key");
    let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwks = json!({ "keys": [{
        "kty": "RSA", "kid": "rsa-1", "alg": "RS256",
        "n": b64(&public.n),
        "e": b64(&public.e),
    }]});
    let keys = trials::jwt::jwks_keys(&jwks.to_string()).expect("the JWKS");
    let t = TestApp::with_config(|c| c.jwt = jwt_config(keys)).await;
    let sign = |kid: &str, claims: &Value| {
        let head = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
        let signed = format!(
            "{}.{}",
            b64(head.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        pair.sign(&RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut signature)
            .expect("sign");
        format!("{signed}.{}", b64(&signature))
    };
    let good = sign("rsa-1", &claims(&t));
    let res = t
        .send(as_user(Call::get("/v1/me/trials/current"), &good))
        .await;
    assert_eq!(
        (res.status, res.error_code()),
        (404, "trial_not_found".to_owned()),
        "{}",
        res.body
    );
    // Another kid, or the signature of another body: not this key's.
    let unknown = sign("rsa-2", &claims(&t));
    let res = t
        .send(as_user(Call::get("/v1/me/trials/current"), &unknown))
        .await;
    assert_eq!(res.error_code(), "invalid_token");
    let mut parts: Vec<&str> = good.split('.').collect();
    let other_body = b64(json!({ "org_id": "org_someone", "exp": t.now() + 60 })
        .to_string()
        .as_bytes());
    parts[1] = &other_body;
    let res = t
        .send(as_user(
            Call::get("/v1/me/trials/current"),
            &parts.join("."),
        ))
        .await;
    assert_eq!(res.error_code(), "invalid_token");
    // An HS256 token made with the public modulus as its secret (algorithm confusion): refused.
    let head = b64(br#"{"alg":"HS256","kid":"rsa-1"}"#);
    let body = b64(claims(&t).to_string().as_bytes());
    let mac = trials::crypto::hmac_sha256(&public.n, format!("{head}.{body}").as_bytes());
    let confused = format!("{head}.{body}.{}", b64(&mac));
    let res = t
        .send(as_user(Call::get("/v1/me/trials/current"), &confused))
        .await;
    assert_eq!(res.error_code(), "invalid_token");
}

/// Edge Impulse's `x-jwt-token` header and `jwt` cookie are that route's only: `/v1/me/...`
/// takes `Authorization: Bearer` alone (a cookie would let cross-site requests ride on it).
#[tokio::test]
async fn the_me_routes_take_no_x_jwt_token_and_no_cookie() {
    let t = app().await;
    let jwt = token(SECRET, &claims(&t));
    let cookie = format!("jwt={jwt}");
    for (name, value) in [("x-jwt-token", jwt.as_str()), ("cookie", cookie.as_str())] {
        let call = Call::get("/v1/me/trials/current")
            .without("x-org-id")
            .without("x-project-id")
            .without_auth()
            .header(name, value);
        let res = t.send(call).await;
        assert_eq!(res.status, 401, "{name}: {}", res.body);
        assert_eq!(res.json()["error"]["code"], "invalid_token");
    }
}
