//! Issue 27.1: trials per product. The built-in catalog with `pro` moved to a second product,
//! `cdn` (`app`, the first plan's product, stays the default): one trial per org and product,
//! eligibility and `/current` per product, signals per product, items stored before products
//! read as the default product's, and concurrent starts on two products under the chaos layer.
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use trials::domain::catalog::Catalog;
use trials::domain::signals::SignalSecret;
use trials::store::schema::{org_pk, trial_pk, GUARD_SK, TRIAL_SK};
use trials_tests::chaos::workload::{all_items, concurrently, items_by_kind, send_retrying};
use trials_tests::chaos::ChaosSpec;
use trials_tests::requests::ORG;
use trials_tests::{builtin_catalog_with, writes, Call, TestApp};

/// `pro` belongs to product `cdn`; `starter` and `growth` to `app`, the default.
fn two_products() -> Catalog {
    builtin_catalog_with(|v| {
        v["plans"][2]["product"] = json!({ "id": "cdn", "name": "CDN", "internal_name": "cdn" });
    })
}

async fn app() -> TestApp {
    TestApp::with_config(|c| c.catalog = two_products()).await
}

async fn get(t: &TestApp, path: &str) -> trials_tests::TestResponse {
    t.send(Call::get(path)).await
}

/// The stored `trial.started` details, read without the layer.
async fn started_events(t: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for item in all_items(t).await {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        if text("detail_type").as_deref() == Some("trial.started") {
            out.push(serde_json::from_str(&text("detail").unwrap()).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn an_org_starts_one_trial_per_product_and_a_second_on_the_same_product_is_409() {
    let t = app().await;
    let app_trial = t.send(Call::start("growth", "k1")).await;
    assert_eq!(app_trial.status, 201, "{}", app_trial.body);
    let cdn_trial = t.send(Call::start("pro", "k2")).await;
    assert_eq!(cdn_trial.status, 201, "{}", cdn_trial.body);
    let cdn_id = cdn_trial.json()["id"].as_str().unwrap().to_owned();

    let again_app = t.send(Call::start("starter", "k3")).await;
    assert_eq!(again_app.status, 409, "{}", again_app.body);
    assert_eq!(again_app.error_code(), "trial_already_exists");
    let again_cdn = t.send(Call::start("pro", "k4")).await;
    assert_eq!(again_cdn.status, 409, "{}", again_cdn.body);
    assert!(again_cdn.body.contains(&cdn_id), "{}", again_cdn.body);

    // Every event carries the product; the status says it too.
    let mut products: Vec<(String, String)> = started_events(&t)
        .await
        .iter()
        .map(|d| (d["plan"].to_string(), d["product"].to_string()))
        .collect();
    products.sort();
    assert_eq!(
        products,
        [
            ("\"growth\"".into(), "\"app\"".into()),
            ("\"pro\"".into(), "\"cdn\"".into())
        ]
    );
    let status = t.send(Call::status(&cdn_id)).await;
    assert_eq!(status.json()["product"], "cdn", "{}", status.body);
}

#[tokio::test]
async fn eligibility_and_current_answer_per_product() {
    let t = app().await;
    let cdn = t.send(Call::start("pro", "k1")).await;
    assert_eq!(cdn.status, 201, "{}", cdn.body);
    let cdn_id = cdn.json()["id"].as_str().unwrap().to_owned();

    let eligible = |plan: &str| format!("/v1/trials/eligibility?plan={plan}");
    let growth = get(&t, &eligible("growth")).await.json();
    assert_eq!(growth["eligible"], true, "{growth}");
    let pro = get(&t, &eligible("pro")).await.json();
    assert_eq!(pro["reason"], "trial_already_used", "{pro}");
    let scoped = get(&t, "/v1/trials/eligibility?plan=pro&product=cdn").await;
    assert_eq!(scoped.json()["reason"], "trial_already_used");
    let mismatch = get(&t, "/v1/trials/eligibility?plan=pro&product=app").await;
    assert_eq!(
        (mismatch.status, mismatch.error_code()),
        (400, "invalid_plan".into())
    );
    let unknown = get(&t, "/v1/trials/eligibility?plan=pro&product=nope").await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (400, "invalid_product".into())
    );
    assert!(unknown.body.contains("app, cdn"), "{}", unknown.body);

    // `/current` without a product is the default product's: none yet.
    assert_eq!(get(&t, "/v1/trials/current").await.status, 404);
    let current = get(&t, "/v1/trials/current?product=cdn").await;
    assert_eq!(current.status, 200, "{}", current.body);
    assert_eq!(current.json()["id"], cdn_id.as_str());
    assert_eq!(current.json()["product"], "cdn");
    let unknown = get(&t, "/v1/trials/current?product=nope").await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (400, "invalid_product".into())
    );
    let app_trial = t.send(Call::start("growth", "k2")).await.json();
    let current = get(&t, "/v1/trials/current?product=app").await.json();
    assert_eq!(current["id"], app_trial["id"]);
}

/// A guard and a trial as they were stored before products (no `product` on the guard, no
/// terms snapshot on the trial) are the default product's: its start is 409, its `/current`
/// and eligibility find them, another product starts freely.
#[tokio::test]
async fn a_guard_and_a_trial_stored_before_products_read_as_the_default_products() {
    let t = app().await;
    let old = writes::seed_trial(&t, ORG, t.now()).await;
    let client = trials::aws::local_dynamodb(&t.endpoint);
    for (pk, sk, attribute) in [
        (org_pk(&old.org_id), GUARD_SK, "product"),
        (trial_pk(&old.id), TRIAL_SK, "terms"),
    ] {
        client
            .update_item()
            .table_name(&t.app.config.table_name)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression(format!("REMOVE {attribute}"))
            .send()
            .await
            .expect("old format");
    }
    let current = get(&t, "/v1/trials/current").await;
    assert_eq!(current.status, 200, "{}", current.body);
    assert_eq!(current.json()["id"], old.id.as_str());
    assert_eq!(current.json()["product"], "app");
    let refused = t.send(Call::start("starter", "k1")).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains(old.id.as_str()), "{}", refused.body);
    let used = get(&t, "/v1/trials/eligibility?plan=growth").await.json();
    assert_eq!(used["reason"], "trial_already_used");
    assert_eq!(t.send(Call::start("pro", "k2")).await.status, 201);
}

/// One person, one trial per product: the same email blocks a second org on the same product,
/// not on another.
#[tokio::test]
async fn a_reused_email_blocks_the_same_product_only() {
    let t = TestApp::with_config(|c| {
        c.catalog = two_products();
        c.applicant.signal_secret =
            Some(SignalSecret::new("test-signal-secret-0123456789abcdef").unwrap());
    })
    .await;
    let start = |org: &str, plan: &str| {
        Call::post("/v1/trials/start")
            .idempotency_key(plan)
            .org(org)
            .json(&json!({ "plan": plan, "email": "ada@acme.example" }))
    };
    assert_eq!(t.send(start("org_a", "growth")).await.status, 201);
    let blocked = t.send(start("org_b", "starter")).await;
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    let eligible = t
        .send(Call::get("/v1/trials/eligibility?plan=growth").org("org_b"))
        .await
        .json();
    assert_eq!(eligible["reason"], "signal_reused", "{eligible}");
    let other = t
        .send(Call::get("/v1/trials/eligibility?plan=pro").org("org_b"))
        .await
        .json();
    assert_eq!(other["eligible"], true, "{other}");
    let cdn = t.send(start("org_b", "pro")).await;
    assert_eq!(cdn.status, 201, "{}", cdn.body);
}

/// Under the chaos layer, 10 concurrent starts for one org on each of two products (each
/// client retrying 5xx with its key): exactly one trial per product, every other start 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_for_one_org_on_two_products_each_land_exactly_once() {
    let t = TestApp::with_chaos_and(
        ChaosSpec::documented(27),
        |c| c.catalog = two_products(),
        |_| trials::publish::Publisher::Log,
    )
    .await;
    t.api_key(ORG).await;
    let sent = concurrently(20, 8, |i| {
        let t = t.clone();
        async move {
            let plan = if i % 2 == 0 { "growth" } else { "pro" };
            let key = format!("k{i}");
            send_retrying(&t, "start", move || Call::start(plan, &key)).await
        }
    })
    .await;
    let created: Vec<&str> = sent
        .iter()
        .filter(|s| s.last.status == 201)
        .map(|s| s.last.json()["plan"].as_str().unwrap().to_owned())
        .map(|plan| if plan == "pro" { "cdn" } else { "app" })
        .collect();
    let mut created = created;
    created.sort();
    assert_eq!(
        created,
        ["app", "cdn"],
        "{:?}",
        sent.iter().map(|s| s.last.status).collect::<Vec<_>>()
    );
    for s in sent.iter().filter(|s| s.last.status != 201) {
        assert_eq!(
            s.last.error_code(),
            "trial_already_exists",
            "{}",
            s.last.body
        );
    }
    let kinds = items_by_kind(&t).await;
    assert_eq!(kinds.get("TRIAL"), Some(&2), "{kinds:?}");
}

/// The purge marks the guard of the trial's own product (a wrong key would leave the real
/// guard unmarked and mark the default product's), and the purged trial of a second product
/// reads 410 by id (every product's guard is asked) and by `/current?product=`; the other
/// product's guard and trial are untouched.
#[tokio::test]
async fn a_purged_trial_of_a_second_product_is_410_and_its_own_guard_is_marked() {
    use trials::domain::catalog::ProductKey;
    use trials::domain::OrgId;
    use trials::jobs::{self, Job};
    let t = app().await;
    let app_trial = t.send(Call::start("growth", "k1")).await.json();
    let cdn = t.send(Call::start("pro", "k2")).await.json();
    let cdn_id = cdn["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.send(Call::post(&format!("/v1/trials/{cdn_id}/cancel")).idempotency_key("c1"))
            .await
            .status,
        200
    );
    t.clock.set(t.now() + 30 * trials_tests::DAY);
    jobs::run(&t.app, Job::Purge, None).await;
    assert!(writes::stored(&t, &cdn_id).await.is_none(), "purged");

    let org = OrgId::parse(ORG).unwrap();
    let store = &t.app.store;
    let cdn_guard = store
        .get_product_guard(&org, &ProductKey::Other("cdn".into()))
        .await
        .unwrap()
        .expect("the cdn guard survives");
    assert!(cdn_guard.purged);
    let app_guard = store.get_guard(&org).await.unwrap().expect("the app guard");
    assert!(!app_guard.purged);
    assert_eq!(
        app_guard.trial_id.as_ref().map(|id| id.as_str()),
        app_trial["id"].as_str()
    );

    let by_id = t.send(Call::status(&cdn_id)).await;
    assert_eq!(
        (by_id.status, by_id.error_code()),
        (410, "trial_expired".into())
    );
    let current = get(&t, "/v1/trials/current?product=cdn").await;
    assert_eq!(current.status, 410, "{}", current.body);
    assert_eq!(get(&t, "/v1/trials/current").await.status, 200);
    // Still one trial per org and product: the purge gives none back.
    assert_eq!(t.send(Call::start("pro", "k3")).await.status, 409);
}
