//! Issue 15: who is trialling. Applicant fields on start, stored and returned, carried in
//! `trial.started`; the redirect; none of the personal data in any log line.

use serde_json::{json, Value};
use trials::domain::redirect::AllowedOrigins;
use trials::domain::signals::SignalSecret;
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::logs::capture;
use trials_tests::requests::ORG;
use trials_tests::{Call, TestApp};

const EMAIL: &str = "Ada.Lovelace+trial@analytical-engines.example";
const CLIENT_IP: &str = "203.0.113.77";
const DEVICE: &str = "device-fp-8c1e5a";

fn start_with(key: &str, body: Value) -> Call {
    Call::post("/v1/trials/start")
        .idempotency_key(key)
        .json(&body)
}

fn applicant_body() -> Value {
    json!({
        "plan": "growth",
        "email": EMAIL,
        "name": "Ada Lovelace",
        "organization_name": "Analytical Engines",
        "use_case": "anomaly detection",
        "user_has_ml_models_in_production": "no, but we will soon",
        "company_name": "Analytical Engines Ltd",
        "company_size": "11-50",
        "country": "United Kingdom",
        "state_or_province": "London",
        "metadata": { "campaign": "spring" },
        "client_ip": CLIENT_IP,
        "device_id": DEVICE,
    })
}

#[tokio::test]
async fn a_start_stores_the_applicant_returns_it_and_names_it_redacted_in_the_event() {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(|_| {}, |_| rec.publisher("bus")).await;
    let res = t.send(start_with("a-1", applicant_body())).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let started = res.json();
    let applicant = &started["applicant"];
    assert_eq!(applicant["email"], EMAIL);
    assert_eq!(applicant["company_size"], "11-50");
    assert_eq!(applicant["metadata"]["campaign"], "spring");
    // Never stored in clear: no IP or device id in the applicant.
    assert!(applicant.get("client_ip").is_none(), "{applicant}");
    assert!(applicant.get("device_id").is_none(), "{applicant}");
    assert!(started.get("redirect_url").is_none());

    let id = started["id"].as_str().unwrap();
    let read = t.send(Call::status(id)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(&read.json()["applicant"], applicant);

    t.publish_events().await;
    let events = rec.accepted();
    let started_event = events
        .iter()
        .find(|e| e.detail_type == "trial.started")
        .expect("trial.started");
    // The bus gets the applicant by name only: its fields are personal data, read
    // with the API key (`GET /v1/trials/{id}`), never broadcast.
    assert_eq!(started_event.detail["applicant"], "<redacted>");
    assert!(!started_event.detail.to_string().contains(EMAIL));
    assert_eq!(started_event.detail["trial_id"], id);

    // A start without applicant fields has no applicant at all.
    let plain = t.send(Call::start("pro", "b-1").org("org_plain")).await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert!(plain.json().get("applicant").is_none(), "{}", plain.body);
}

#[tokio::test]
async fn a_bad_field_is_invalid_field_naming_it_and_stores_nothing() {
    let t = TestApp::new().await;
    for (field, value) in [
        ("email", json!("not-an-email")),
        ("email", json!(42)),
        ("user_has_ml_models_in_production", json!("maybe")),
        ("company_size", json!("x".repeat(51))),
        ("client_ip", json!("300.1.1.1")),
        ("metadata", json!({ "k": "v".repeat(501) })),
    ] {
        let mut body = json!({ "plan": "growth" });
        body[field] = value;
        let res = t.send(start_with(&format!("bad-{field}"), body)).await;
        assert_eq!(res.status, 400, "{field}: {}", res.body);
        assert_eq!(res.error_code(), "invalid_field", "{field}");
        let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(field), "{field}: {message}");
        assert!(!message.contains("not-an-email"), "{message}");
    }
    // Nothing was stored: the org can still start.
    let res = t.send(Call::start("growth", "good")).await;
    assert_eq!(res.status, 201, "{}", res.body);
}

#[tokio::test]
async fn the_redirect_goes_only_to_an_allowed_origin() {
    let t = TestApp::with_config(|c| {
        c.applicant.redirect_origins = AllowedOrigins::parse("https://studio.example.com").unwrap();
    })
    .await;
    let mut body = json!({
        "plan": "growth",
        "redirect_url_origin": "https://Studio.Example.com",
        "redirect_url_query_params": "utm_source=google&utm_medium=cpc&next=a b",
    });
    let res = t.send(start_with("r-1", body.clone())).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let started = res.json();
    let id = started["id"].as_str().unwrap();
    assert_eq!(
        started["redirect_url"],
        format!("https://studio.example.com/trial/{id}?utm_source=google&utm_medium=cpc&next=a+b")
    );

    for (i, origin) in [
        "https://evil.example.com",
        "http://studio.example.com",
        "https://studio.example.com/path",
        "javascript:alert(1)",
    ]
    .into_iter()
    .enumerate()
    {
        body["redirect_url_origin"] = origin.into();
        let res = t
            .send(start_with(&format!("r-bad-{i}"), body.clone()).org(&format!("org_r{i}")))
            .await;
        assert_eq!(res.status, 400, "{origin}: {}", res.body);
        assert_eq!(res.error_code(), "invalid_redirect_origin", "{origin}");
    }
}

/// Email, client IP and device id never reach a log line at any level: not through the request
/// log, the store's or the embedded DynamoDB's debug lines, nor the log publisher's events.
// current_thread: the subscriber set as default for this thread sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn applicant_personal_data_never_reaches_the_logs() {
    let t = TestApp::with_config(|c| {
        c.applicant.signal_secret =
            Some(SignalSecret::new("log-test-signal-secret-0123456789").unwrap())
    })
    .await;
    t.api_key(ORG).await;
    t.api_key("org_second").await;
    let (logs, guard) = capture();

    let started = t.send(start_with("log-1", applicant_body())).await;
    let id = started.json()["id"].as_str().unwrap_or_default().to_owned();
    let read = t.send(Call::status(&id)).await;
    let current = t.send(Call::get("/v1/trials/current")).await;
    // Another org with the same applicant (refused: the email is reused), its eligibility, and
    // one with a bad email.
    let again = t
        .send(start_with("log-2", applicant_body()).org("org_second"))
        .await;
    let eligible = t
        .send(Call::get("/v1/trials/eligibility?plan=growth").org("org_second"))
        .await;
    let mut bad = applicant_body();
    bad["email"] = format!("{EMAIL} x").into();
    let refused = t.send(start_with("log-3", bad).org("org_third")).await;
    t.publish_events().await;
    drop(guard);

    assert_eq!(
        [
            started.status,
            read.status,
            current.status,
            again.status,
            eligible.status,
            refused.status
        ],
        [201, 200, 200, 403, 200, 400]
    );
    let text = logs.text();
    assert!(text.contains(r#""message":"request""#), "{text}");
    assert!(text.contains("domain event"), "{text}");
    for secret in [
        EMAIL,
        &EMAIL.to_lowercase(),
        "ada.lovelace",
        "analytical-engines.example",
        CLIENT_IP,
        "203.0.113",
        DEVICE,
        "Ada Lovelace",
    ] {
        assert!(
            !text.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} reached the logs"
        );
    }
}
