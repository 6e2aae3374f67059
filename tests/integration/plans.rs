//! Plans as data: the catalog in force, the terms a trial keeps, `GET /v1/plans`, Gcore's trial
//! data and usage against limits.
use std::sync::Arc;

use trials::domain::catalog::Catalog;
use trials_tests::requests::read;
use trials_tests::{Call, TestApp, DAY};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");

fn enterprise_catalog() -> Catalog {
    Catalog::from_json(ENTERPRISE).expect("the example catalog is valid")
}

async fn enterprise_app() -> TestApp {
    TestApp::with_config(|c| c.catalog = enterprise_catalog()).await
}

#[tokio::test]
async fn a_running_trial_keeps_the_terms_it_started_with() {
    let t = enterprise_app().await;
    let id = t.start_trial("org_abc123", "enterprise").await;

    // The same table served by a process whose catalog says something else for the plan.
    let edited = ENTERPRISE
        .replace("\"trial_length\": \"14d\"", "\"trial_length\": \"30d\"")
        .replace("\"value\": 100,", "\"value\": 5,");
    assert_ne!(edited, ENTERPRISE);
    let mut config = (*t.app.config).clone();
    config.catalog = Catalog::from_json(&edited).expect("edited catalog");
    assert_eq!(
        config.catalog.get("enterprise").unwrap().trial_length_secs,
        30 * DAY
    );
    let other = trials::App::new(config, t.app.store.clone(), Arc::new(t.clock.clone()));

    let call = t.authorize(Call::status(&id)).await;
    let body = read(trials::api::handle_any(&other, call.build()).await).json();
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["days_limit"], 14);
    assert_eq!(body["expires_at"], "2026-04-20T10:00:00Z");
    let calls = body["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["internal_name"] == "api_calls")
        .cloned()
        .unwrap();
    assert_eq!(calls["value"], 100);
    assert_eq!(calls["remaining_value"], 100);

    // A trial started under the edited catalog gets the edited terms.
    let call = t
        .authorize(Call::start("enterprise", "k2").org("org_other"))
        .await;
    let started = read(trials::api::handle_any(&other, call.build()).await).json();
    assert_eq!(started["expires_at"], "2026-05-06T10:00:00Z");
}

#[tokio::test]
async fn invalid_plan_lists_the_catalogs_trialable_plans() {
    let t = enterprise_app().await;
    let res = t.send(Call::start("platinum", "k1")).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.error_code(), "invalid_plan");
    let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("enterprise"), "{message}");
    assert!(message.contains("starter"), "{message}");
}
