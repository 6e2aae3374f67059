//! `GET /v1/access` and `GET /v1/access/{feature}`: what the calling org may use now, from its
//! trial, in one round trip once the function knows the org's trial, with an `ETag`.
use serde_json::json;
use trials::domain::catalog::Catalog;
use trials_tests::writes::{convert, stored};
use trials_tests::{Call, TestApp, DAY};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");
const ORG: &str = "org_abc123";

async fn enterprise_app() -> TestApp {
    TestApp::with_config(|c| {
        c.catalog = Catalog::from_json(ENTERPRISE).expect("the example catalog is valid")
    })
    .await
}

fn usage(id: &str, option: &str, quantity: i64, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&json!({ "option": option, "quantity": quantity }))
}

fn option<'a>(body: &'a serde_json::Value, feature: &str, value: i64) -> &'a serde_json::Value {
    body["options"]
        .as_array()
        .expect("options")
        .iter()
        .find(|o| o["feature"] == feature && o["value"] == value)
        .unwrap_or_else(|| panic!("no {feature} option of {value} in {body}"))
}

#[tokio::test]
async fn access_is_one_read_with_an_etag_and_follows_usage_and_conversion() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "enterprise").await;
    let res = t.send(usage(&id, "api_calls", 40, "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);

    // The first request of the org on this function reads the guard, then the trial.
    let first = t.send(Call::get("/v1/access?product=app")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let body = first.json();
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["source"], "trial");
    assert_eq!(
        body["until"],
        trials::domain::time::rfc3339(t.now() + 14 * DAY)
    );
    assert_eq!(
        option(&body, "api", 100),
        &json!({"feature": "api", "value": 100, "used": 40, "remaining": 60, "allowed": true})
    );
    assert_eq!(
        option(&body, "data", 50)["remaining"],
        serde_json::Value::Null
    );
    assert_eq!(first.header("cache-control"), Some("private, max-age=5"));
    let etag = first.header("etag").expect("an ETag").to_owned();

    // From then on, one consistent read of the trial.
    t.dynamo.reset();
    let again = t
        .send(Call::get("/v1/access?product=app").header("if-none-match", &etag))
        .await;
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.count("GetItem"), 1);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // A key with no cached verdict: the key record and the trial in one BatchGetItem.
    let key = t.create_key(ORG, &[]).await;
    t.dynamo.reset();
    let cold = t
        .send(Call::get("/v1/access/api").bearer(key.expose()))
        .await;
    assert_eq!(cold.status, 200, "{}", cold.body);
    assert_eq!(cold.json(), json!({"allowed": true, "remaining": 60}));
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    assert_eq!(t.dynamo.count("BatchGetItem"), 1);
    // A wrong key on a cold cache: the trial read with its record is shown to no one.
    let wrong = format!("trk_{}_{}", key.key_id(), "0".repeat(64));
    let refused = t.send(Call::get("/v1/access").bearer(&wrong)).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(!refused.body.contains("enterprise"), "{}", refused.body);

    // Usage changes the answer, and so its tag.
    t.send(usage(&id, "api_calls", 60, "u2")).await;
    let used_up = t
        .send(Call::get("/v1/access?product=app").header("if-none-match", &etag))
        .await;
    assert_eq!(used_up.status, 200);
    assert_ne!(used_up.header("etag"), Some(etag.as_str()));
    assert_eq!(option(&used_up.json(), "api", 100)["allowed"], false);
    let api = t.send(Call::get("/v1/access/api")).await;
    assert_eq!(api.json(), json!({"allowed": false, "remaining": 0}));
    let data = t.send(Call::get("/v1/access/data")).await;
    assert_eq!(data.json(), json!({"allowed": true, "remaining": 3}));

    // Converted: the plan as a subscription, no trial limit left to count.
    let trial = stored(&t, &id).await.unwrap();
    assert!(convert(&t, &trial, t.now()).await);
    t.dynamo.reset();
    let paid = t.send(Call::get("/v1/access?product=app")).await;
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    let body = paid.json();
    assert_eq!(body["source"], "subscription");
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["until"], serde_json::Value::Null);
    assert_eq!(
        option(&body, "api", 100),
        &json!({"feature": "api", "value": 100, "used": 100, "remaining": null, "allowed": true})
    );
    let api = t.send(Call::get("/v1/access/api")).await;
    assert_eq!(api.json(), json!({"allowed": true, "remaining": null}));
}

#[tokio::test]
async fn no_trial_an_ended_one_or_another_products_gives_nothing() {
    let none = json!({"plan": null, "source": "none", "until": null, "options": []});
    let t = enterprise_app().await;
    let res = t.send(Call::get("/v1/access")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json(), none);
    let feature = t.send(Call::get("/v1/access/api")).await;
    assert_eq!(feature.json(), json!({"allowed": false, "remaining": null}));

    let id = t.start_trial(ORG, "enterprise").await;
    assert_eq!(
        t.send(Call::get("/v1/access")).await.json()["source"],
        "trial"
    );
    // The org's trial is remembered: a request of another org is not answered with it.
    let other = t.send(Call::get("/v1/access").org("org_other")).await;
    assert_eq!(other.json(), none);

    // Paused: nothing to use while the clock is stopped.
    let paused = t
        .send(Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p"))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(t.send(Call::get("/v1/access")).await.json(), none);
    let resumed = t
        .send(Call::post(&format!("/v1/trials/{id}/resume")).idempotency_key("r"))
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);

    // Past its end, before the expire job: nothing.
    t.clock.set(t.now() + 15 * DAY);
    assert_eq!(t.send(Call::get("/v1/access")).await.json(), none);
    // Purged: nothing (the remembered trial is simply gone).
    t.app
        .store
        .client()
        .delete_item()
        .table_name(t.app.store.table_name())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TRIAL#{id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TRIAL".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(stored(&t, &id).await.is_none());
    assert_eq!(t.send(Call::get("/v1/access")).await.json(), none);
}

#[tokio::test]
async fn a_trial_of_another_product_or_project_gives_nothing() {
    let mut catalog: serde_json::Value = serde_json::from_str(ENTERPRISE).unwrap();
    catalog["plans"][0]["product"]["id"] = "other".into();
    let t = TestApp::with_config(|c| c.catalog = Catalog::from_json(&catalog.to_string()).unwrap())
        .await;
    t.start_trial(ORG, "enterprise").await;
    let res = t.send(Call::get("/v1/access?product=other")).await;
    assert_eq!(res.json()["source"], "none");
    assert_eq!(
        t.send(Call::get("/v1/access?product=app")).await.json()["source"],
        "trial"
    );
    // A key limited to another project does not see the trial.
    let key = t.create_key(ORG, &["proj_elsewhere"]).await;
    let limited = t
        .send(
            Call::get("/v1/access?product=app")
                .bearer(key.expose())
                .without("x-project-id")
                .header("x-project-id", "proj_elsewhere"),
        )
        .await;
    assert_eq!(limited.status, 200, "{}", limited.body);
    assert_eq!(limited.json()["source"], "none");
}

#[tokio::test]
async fn bad_queries_are_refused_by_name() {
    let t = enterprise_app().await;
    for (path, code) in [
        ("/v1/access?product=nope", "invalid_product"),
        ("/v1/access?plan=enterprise", "invalid_field"),
        ("/v1/access?product=app&product=app", "invalid_field"),
        ("/v1/access/api?product=app", "invalid_field"),
    ] {
        let res = t.send(Call::get(path)).await;
        assert_eq!(res.status, 400, "{path}: {}", res.body);
        assert_eq!(res.error_code(), code, "{path}");
    }
    let post = t.send(Call::post("/v1/access")).await;
    assert_eq!(post.status, 405);
}
