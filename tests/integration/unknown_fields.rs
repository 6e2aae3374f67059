//! Issue 26 item 9b: nothing silent. A JSON body field that no route knows answers `400
//! invalid_field` naming it, on every route, before anything is written; a camelCase name (the
//! seed's, Edge Impulse's) gets a hint to use the snake_case one.
use serde_json::{json, Value};
use trials_tests::stripe::with_stripe;
use trials_tests::{Call, TestApp, DAY, T0};

/// Asserts `res` is 400 `invalid_field` whose message names `field` and, for a camelCase name,
/// the snake_case `hint`.
fn refused(res: &trials_tests::TestResponse, field: &str, hint: Option<&str>) {
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        res.body
    );
    let message = res.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!("`{field}`")) || message.starts_with(field),
        "{message}"
    );
    match hint {
        Some(snake) => assert!(
            message.contains(&format!("snake_case: use `{snake}`")),
            "{message}"
        ),
        None => assert!(!message.contains("snake_case"), "{message}"),
    }
}

fn start(key: &str, body: Value) -> Call {
    Call::post("/v1/trials/start")
        .idempotency_key(key)
        .json(&body)
}

#[tokio::test]
async fn start_refuses_an_unknown_or_camel_case_field_by_name_and_writes_nothing() {
    let t = TestApp::new().await;
    let edge_impulse = json!({
        "plan": "growth",
        "email": "ada@analytical.example",
        "organizationName": "Analytical Engines",
    });
    let res = t.send(start("camel", edge_impulse)).await;
    refused(&res, "organizationName", Some("organization_name"));
    for (field, hint) in [
        ("redirectUrl", Some("redirect_url")),
        ("firstName", Some("first_name")),
        ("favourite_colour", None),
    ] {
        let res = t
            .send(start(field, json!({ "plan": "growth", field: "x" })))
            .await;
        refused(&res, field, hint);
    }
    // Nothing was written: the org still has its trial to start, and a standard key's
    // admin-only fields are known (and ignored), not refused.
    let res = t
        .send(start(
            "ok",
            json!({ "plan": "growth", "organization_name": "Analytical Engines", "notes": "x" }),
        ))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(
        res.json()["applicant"]["organization_name"],
        "Analytical Engines"
    );
}

#[tokio::test]
async fn every_route_with_a_body_refuses_unknown_and_camel_case_fields() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial("org_fields", "growth").await;
    let on = |suffix: &str, key: &str| {
        Call::post(&format!("/v1/trials/{id}{suffix}"))
            .path_id(&id)
            .org("org_fields")
            .idempotency_key(key)
    };
    let cases = [
        (
            on("/convert", "cv").json(&json!({ "billingStarts": "now" })),
            "billingStarts",
            Some("billing_starts"),
        ),
        (
            on("/usage", "us").json(&json!({ "option": "seats", "qty": 1 })),
            "qty",
            None,
        ),
        (
            on("/extend", "ex")
                .admin()
                .json(&json!({ "days": 3, "extensionReason": "deal" })),
            "extensionReason",
            Some("extension_reason"),
        ),
        (
            on("/pause", "pa").json(&json!({ "reason": "holiday" })),
            "reason",
            None,
        ),
        (
            on("/resume", "re").json(&json!({ "resumeAt": "now" })),
            "resumeAt",
            Some("resume_at"),
        ),
        (
            on("/cancel", "ca").json(&json!({ "cancelReason": "too dear" })),
            "cancelReason",
            Some("cancel_reason"),
        ),
        (
            Call::new("PATCH", &format!("/v1/trials/{id}"))
                .path_id(&id)
                .org("org_fields")
                .idempotency_key("pt")
                .admin()
                .json(&json!({ "expirationDate": "2026-05-01T00:00:00Z" })),
            "expirationDate",
            Some("expires_at"),
        ),
        (
            Call::post("/v1/trials/skip")
                .org("org_skip_fields")
                .idempotency_key("sk")
                .json(&json!({ "plan": "growth", "redirectUrl": "https://a.example" })),
            "redirectUrl",
            Some("redirect_url"),
        ),
    ];
    for (call, field, hint) in cases {
        let res = t.send(call).await;
        refused(&res, field, hint);
    }
    // Nothing happened: the trial is as it started, no session was opened, and the skipping
    // org still has its trial.
    assert!(stripe.requests().is_empty());
    let read = t.send(Call::status(&id).org("org_fields")).await.json();
    assert_eq!(read["status"], "ACTIVE");
    assert_eq!(
        read["expires_at"],
        trials::domain::time::rfc3339(T0 + 7 * DAY)
    );
    let res = t
        .send(start("after-skip", json!({ "plan": "growth" })).org("org_skip_fields"))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);

    // A route that takes no body still takes none, and `{}`.
    let res = t.send(on("/pause", "pa-2").json(&json!({}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
}
