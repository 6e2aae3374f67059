use serde_json::json;
use trials_tests::{Call, TestApp};

#[tokio::test]
async fn start_returns_201_with_every_field() {
    let t = TestApp::new().await;
    let res = t.send(Call::start("growth", "k1")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    let id = body["id"].as_str().unwrap();
    assert!(trials::domain::TrialId::parse(id).is_some(), "{id}");
    assert_eq!(body["plan"], "growth");
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["started_at"], "2026-04-06T10:00:00Z");
    assert_eq!(body["expires_at"], "2026-04-13T10:00:00Z");
    assert_eq!(body["org_id"], "org_abc123");
    assert_eq!(body.as_object().unwrap().len(), 6, "{body}");
}

#[tokio::test]
async fn trial_length_comes_from_configuration() {
    let t = TestApp::with_config(|c| c.catalog.override_lengths(Some(90), None)).await;
    let body = t.send(Call::start("pro", "k1")).await.json();
    assert_eq!(body["expires_at"], "2026-04-06T10:01:30Z");
}

#[tokio::test]
async fn second_start_for_the_org_is_409_naming_the_trial() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "k1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.json();
    let second = t.send(Call::start("pro", "k2")).await;
    assert_eq!(second.status, 409);
    assert_eq!(second.error_code(), "trial_already_exists");
    let message = second.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(first["id"].as_str().unwrap()), "{message}");
}

#[tokio::test]
async fn other_orgs_start_their_own_trials() {
    let t = TestApp::new().await;
    assert_eq!(t.send(Call::start("growth", "k1")).await.status, 201);
    assert_eq!(
        t.send(Call::start("growth", "k1").org("org_other"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn invalid_plan_lists_the_plans() {
    let t = TestApp::new().await;
    for body in [
        json!({"plan": "enterprise"}),
        json!({"plan": 3}),
        json!({"plan": null}),
        json!({}),
    ] {
        let res = t
            .send(
                Call::post("/v1/trials/start")
                    .idempotency_key("k")
                    .json(&body),
            )
            .await;
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.error_code(), "invalid_plan");
        assert!(res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("starter, growth, pro"));
    }
}

#[tokio::test]
async fn malformed_or_missing_body_is_invalid_json() {
    let t = TestApp::new().await;
    for raw in [
        "",
        "{",
        "[1]",
        "\"growth\"",
        "plan=growth",
        "{\"plan\": \"growth\"} trailing",
    ] {
        let res = t
            .send(
                Call::post("/v1/trials/start")
                    .idempotency_key("k")
                    .raw_body(raw),
            )
            .await;
        assert_eq!(res.status, 400, "{raw:?}: {}", res.body);
        assert_eq!(res.error_code(), "invalid_json", "{raw:?}");
    }
}

#[tokio::test]
async fn missing_or_invalid_headers_have_their_own_codes() {
    let t = TestApp::new().await;
    let cases = [
        (
            Call::start("growth", "k").without("x-org-id"),
            "missing_org_id",
        ),
        (
            Call::start("growth", "k").without("x-project-id"),
            "missing_project_id",
        ),
        (Call::start("growth", "k").org("org#1"), "invalid_org_id"),
        (
            Call::start("growth", "k")
                .without("x-project-id")
                .header("x-project-id", ""),
            "invalid_project_id",
        ),
        (
            Call::post("/v1/trials/start").json(&json!({"plan": "growth"})),
            "missing_idempotency_key",
        ),
    ];
    for (call, code) in cases {
        let res = t.send(call).await;
        assert_eq!(res.status, 400, "{code}: {}", res.body);
        assert_eq!(res.error_code(), code);
    }
    // None of the refused requests started a trial.
    assert_eq!(t.send(Call::start("growth", "k")).await.status, 201);
}

#[tokio::test]
async fn fifty_concurrent_starts_for_one_org_make_exactly_one_trial() {
    let t = TestApp::new().await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move { t.send(Call::start("growth", &format!("key-{i}"))).await })
        })
        .collect();
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        let res = task.await.unwrap();
        match res.status {
            201 => created += 1,
            409 => {
                assert_eq!(res.error_code(), "trial_already_exists");
                conflicts += 1
            }
            other => panic!("unexpected {other}: {}", res.body),
        }
    }
    assert_eq!((created, conflicts), (1, 49));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let t = TestApp::new().await;
    let res = t.send(Call::get("/v1/nothing")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "route_not_found")
    );
    let res = t.send(Call::get("/v1/trials/start")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (405, "method_not_allowed")
    );
}
