use trials::api::Route;
use trials_tests::{Call, TestApp, DAY, T0};

#[tokio::test]
async fn status_reports_the_trial_with_days_remaining() {
    let t = TestApp::new().await;
    let id = t.start_trial("org_abc123", "pro").await;
    let res = t.send(Call::status(&id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["plan"], "pro");
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["days_remaining"], 7);
    assert_eq!(body["started_at"], "2026-04-06T10:00:00Z");
    assert_eq!(body["expires_at"], "2026-04-13T10:00:00Z");
    assert_eq!(body["org_id"], "org_abc123");

    t.clock.advance(DAY + 1);
    assert_eq!(t.send(Call::status(&id)).await.json()["days_remaining"], 6);
}

#[tokio::test]
async fn an_active_trial_past_expires_at_reads_expired_before_any_job_runs() {
    let t = TestApp::new().await;
    let id = t.start_trial("org_abc123", "growth").await;
    t.clock.set(T0 + 7 * DAY - 1);
    let before = t.send(Call::status(&id)).await.json();
    assert_eq!(
        (before["status"].as_str(), before["days_remaining"].as_i64()),
        (Some("ACTIVE"), Some(1))
    );
    t.clock.set(T0 + 7 * DAY);
    let after = t.send(Call::status(&id)).await.json();
    assert_eq!(
        (after["status"].as_str(), after["days_remaining"].as_i64()),
        (Some("EXPIRED"), Some(0))
    );
}

#[tokio::test]
async fn unknown_malformed_and_other_orgs_trials_are_404() {
    let t = TestApp::new().await;
    let id = t.start_trial("org_abc123", "growth").await;
    for path_id in ["trial_0123456789abcdef01234567", "trial_nope", "x"] {
        let res = t.send(Call::status(path_id)).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (404, "trial_not_found"),
            "{path_id}"
        );
    }
    let other = t.send(Call::status(&id).org("org_other")).await;
    assert_eq!(other.status, 404);
    assert_eq!(other.error_code(), "trial_not_found");
    // Byte for byte the answer for a trial that does not exist: nothing reveals it.
    let missing = t
        .send(Call::status("trial_0123456789abcdef01234567").org("org_other"))
        .await;
    assert_eq!(other.body, missing.body);
}

#[tokio::test]
async fn the_id_comes_from_path_parameters_or_the_raw_path() {
    let t = TestApp::new().await;
    let id = t.start_trial("org_abc123", "growth").await;
    // API Gateway's path parameter wins over a path that does not carry the id.
    let res = t
        .send_to(Route::Status, Call::get("/prod/whatever").path_id(&id))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // REST API behind a stage: the raw path still names the trial.
    let res = t
        .send_to(Route::Status, Call::get(&format!("/prod/v1/trials/{id}")))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn api_gateway_http_and_rest_events_are_both_understood() {
    let t = TestApp::new().await;
    let id = t.start_trial("org_abc123", "growth").await;
    for event in [
        serde_json::json!({
            "version": "2.0", "routeKey": "GET /v1/trials/{id}", "rawPath": format!("/v1/trials/{id}"),
            "rawQueryString": "", "headers": {"x-org-id": "org_abc123", "x-project-id": "proj_def456"},
            "pathParameters": {"id": id},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "GET", "path": format!("/v1/trials/{id}"), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /v1/trials/{id}", "stage": "$default", "time": "06/Apr/2026:10:00:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false
        }),
        serde_json::json!({
            "resource": "/v1/trials/{id}", "path": format!("/v1/trials/{id}"), "httpMethod": "GET",
            "headers": {"X-Org-Id": "org_abc123", "X-Project-Id": "proj_def456"},
            "multiValueHeaders": {"X-Org-Id": ["org_abc123"], "X-Project-Id": ["proj_def456"]},
            "pathParameters": {"id": id}, "queryStringParameters": null, "body": null, "isBase64Encoded": false,
            "requestContext": {"accountId": "1", "resourceId": "r", "stage": "prod", "requestId": "q", "identity": {"sourceIp": "127.0.0.1"},
                "resourcePath": "/v1/trials/{id}", "httpMethod": "GET", "apiId": "a", "path": format!("/prod/v1/trials/{id}")}
        }),
    ] {
        let req = lambda_http::request::from_str(&event.to_string()).expect("event parses");
        let req = trials_tests::requests::with_auth(&t, req).await;
        let res =
            trials_tests::requests::read(trials::api::handle(&t.app, Route::Status, req).await);
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.json()["id"], id.as_str());
    }
}
