//! Issue 15: abuse signals at start, eligibility, the operator's allowance.
use serde_json::{json, Value};
use trials::domain::signals::SignalSecret;
use trials::domain::OrgId;
use trials_tests::eventbridge::EventBridgeRecorder;
use trials_tests::{builtin_catalog_with, Call, TestApp, DAY};

const SECRET: &str = "test-signal-secret-0123456789abcdef";

async fn app() -> (TestApp, EventBridgeRecorder) {
    let rec = EventBridgeRecorder::start().await;
    let t = TestApp::with(
        |c| c.applicant.signal_secret = Some(SignalSecret::new(SECRET).unwrap()),
        |_| rec.publisher("bus"),
    )
    .await;
    (t, rec)
}

async fn start(t: &TestApp, org: &str, key: &str, applicant: Value) -> trials_tests::TestResponse {
    let mut body = json!({ "plan": "growth" });
    for (k, v) in applicant.as_object().unwrap() {
        body[k] = v.clone();
    }
    t.send(
        Call::post("/v1/trials/start")
            .idempotency_key(key)
            .org(org)
            .json(&body),
    )
    .await
}

async fn eligibility(t: &TestApp, org: &str) -> Value {
    let res = t
        .send(Call::get("/v1/trials/eligibility?plan=growth").org(org))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

#[tokio::test]
async fn a_reused_email_blocks_another_org_and_says_why() {
    let (t, rec) = app().await;
    t.api_key("org_a").await;
    // The guard read and one transaction when nothing is reused.
    t.dynamo.reset();
    let first = start(
        &t,
        "org_a",
        "k",
        json!({ "email": "Fred.Flint+trial@gmail.com" }),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());

    // The same mailbox, spelled differently, from another org.
    let second = start(
        &t,
        "org_b",
        "k",
        json!({ "email": "fredflint@googlemail.com" }),
    )
    .await;
    assert_eq!(second.status, 403, "{}", second.body);
    assert_eq!(second.error_code(), "trial_not_eligible");
    assert_eq!(second.json()["error"]["reason"], "signal_reused");
    // Stored for the key: the retry gets the same answer.
    let again = start(
        &t,
        "org_b",
        "k",
        json!({ "email": "fredflint@googlemail.com" }),
    )
    .await;
    assert_eq!(again.status, 403);
    assert!(again.replayed());

    t.publish_events().await;
    let blocked: Vec<_> = rec
        .accepted()
        .into_iter()
        .filter(|e| e.detail_type == "trial.blocked")
        .collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].detail["org_id"], "org_b");
    assert_eq!(blocked[0].detail["signal_kind"], "email");
    assert_eq!(blocked[0].detail["matched_org_id"], "org_a");

    assert_eq!(
        eligibility(&t, "org_a").await,
        json!({ "eligible": false, "reason": "trial_already_used", "trial_days": 7 })
    );
    assert_eq!(
        eligibility(&t, "org_b").await,
        json!({ "eligible": false, "reason": "signal_reused", "trial_days": 7 })
    );
    assert_eq!(
        eligibility(&t, "org_c").await,
        json!({ "eligible": true, "reason": null, "trial_days": 7 })
    );
    let bad = t
        .send(Call::get("/v1/trials/eligibility?plan=platinum").org("org_c"))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "invalid_plan");

    // The operator lets org_b through once: consumed by its next start.
    let org_b = OrgId::parse("org_b").unwrap();
    t.app.store.put_allowance(&org_b, t.now()).await.unwrap();
    assert_eq!(eligibility(&t, "org_b").await["eligible"], true);
    let allowed = start(
        &t,
        "org_b",
        "k2",
        json!({ "email": "fredflint@googlemail.com" }),
    )
    .await;
    assert_eq!(allowed.status, 201, "{}", allowed.body);
    assert!(!t.app.store.has_allowance(&org_b).await.unwrap());
    // Used up: the next org with that email is blocked again.
    let third = start(&t, "org_c", "k", json!({ "email": "fred.flint@gmail.com" })).await;
    assert_eq!(third.status, 403, "{}", third.body);

    t.publish_events().await;
    let started_b = rec
        .accepted()
        .into_iter()
        .find(|e| e.detail_type == "trial.started" && e.detail["org_id"] == "org_b")
        .expect("org_b started");
    assert_eq!(started_b.detail["allowed_by_operator"], true);
    assert_eq!(started_b.detail["matched_signals"], json!(["email"]));
}

/// An org that already used its trial is answered that, whatever signal its new start reuses:
/// the guard answers before the signals (which only matter for an org that could otherwise
/// start), so no `trial.blocked` is recorded for it. (Here the guard's read answers; the same
/// order in the transaction's refusal matters only when two starts of the org race, MUTANTS.md.)
#[tokio::test]
async fn the_org_guard_answers_before_a_reused_signal() {
    let (t, rec) = app().await;
    let first = start(&t, "org_a", "k", json!({ "email": "wilma@example.com" })).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let own = start(&t, "org_b", "k", json!({ "email": "betty@example.com" })).await;
    assert_eq!(own.status, 201, "{}", own.body);
    // org_b again, with org_a's email: its transaction fails on the guard and on the signal.
    let again = start(&t, "org_b", "k2", json!({ "email": "wilma@example.com" })).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "trial_already_exists"),
        "{}",
        again.body
    );
    t.publish_events().await;
    assert!(!rec
        .accepted()
        .iter()
        .any(|e| e.detail_type == "trial.blocked"));
}

#[tokio::test]
async fn a_reused_domain_ip_or_device_only_flags() {
    let (t, rec) = app().await;
    let first = start(
        &t,
        "org_a",
        "k",
        json!({ "email": "ada@acme.example", "client_ip": "198.51.100.7", "device_id": "dev-1" }),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = start(
        &t,
        "org_b",
        "k",
        json!({ "email": "bob@acme.example", "client_ip": "198.51.100.200", "device_id": "dev-1" }),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.body);
    // A public mail provider gives no domain signal; a fresh IP range and device, none either.
    let third = start(
        &t,
        "org_c",
        "k",
        json!({ "email": "carol@gmail.com", "client_ip": "192.0.2.1" }),
    )
    .await;
    assert_eq!(third.status, 201, "{}", third.body);

    t.publish_events().await;
    let started = |org: &str| {
        rec.accepted()
            .into_iter()
            .find(|e| e.detail_type == "trial.started" && e.detail["org_id"] == org)
            .expect("started")
            .detail
    };
    assert!(started("org_a").get("matched_signals").is_none());
    assert_eq!(
        started("org_b")["matched_signals"],
        json!(["domain", "ip_range", "device"])
    );
    assert_eq!(started("org_b")["flagged"], true);
    assert!(started("org_c").get("matched_signals").is_none());
}

#[tokio::test]
async fn reuse_counts_only_within_the_window() {
    let (t, _rec) = app().await;
    let first = start(&t, "org_a", "k", json!({ "email": "eve@example.org" })).await;
    assert_eq!(first.status, 201);
    t.clock.advance(364 * DAY);
    let within = start(&t, "org_b", "k", json!({ "email": "eve@example.org" })).await;
    assert_eq!(within.status, 403);
    t.clock.advance(2 * DAY);
    let after = start(&t, "org_b", "k2", json!({ "email": "eve@example.org" })).await;
    assert_eq!(after.status, 201, "{}", after.body);
}

/// Issue 27.3: without `SIGNAL_SECRET` the email signal still applies (under the deployment's
/// fallback key), so one person gets one trial; the other kinds stay off.
#[tokio::test]
async fn without_a_signal_secret_only_the_email_signal_applies() {
    let t = TestApp::new().await;
    let first = start(&t, "org_a", "k", json!({ "email": "same@example.org" })).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let tagged = json!({ "email": "Same+second@example.org" });
    let refused = start(&t, "org_b", "k", tagged).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "trial_not_eligible");
    // Same domain, IP range and device, another mailbox: nothing else is checked.
    let same_rest = json!({ "client_ip": "203.0.113.9", "device_id": "dev-1" });
    for (org, email) in [
        ("org_c", "other@example.org"),
        ("org_d", "third@example.org"),
    ] {
        let mut applicant = same_rest.clone();
        applicant["email"] = email.into();
        let res = start(&t, org, "k", applicant).await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
}

#[tokio::test]
async fn twenty_orgs_racing_with_one_email_get_exactly_one_trial() {
    let (t, _rec) = app().await;
    for i in 0..20 {
        t.api_key(&format!("org_race{i}")).await;
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let t = t.clone();
        set.spawn(async move {
            start(
                &t,
                &format!("org_race{i}"),
                "k",
                json!({ "email": "racer@example.org" }),
            )
            .await
            .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = set.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn eligibility_reads_the_plan_catalog() {
    let t = TestApp::with_config(|c| {
        c.catalog = builtin_catalog_with(|v| {
            v["plans"][0]["trialable"] = json!(false); // starter
            v["plans"][2]["trial_length"] = json!("14d"); // pro
        })
    })
    .await;
    let ask = |plan: &str| Call::get(&format!("/v1/trials/eligibility?plan={plan}"));
    t.api_key("org_abc123").await;

    // A plan the catalog has but does not offer for trial: answered without a read.
    t.dynamo.reset();
    let res = t.send(ask("starter")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({ "eligible": false, "reason": "plan_not_trialable", "trial_days": 0 })
    );
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());

    let res = t.send(ask("pro")).await;
    assert_eq!(
        res.json(),
        json!({ "eligible": true, "reason": null, "trial_days": 14 })
    );
    let res = t.send(ask("platinum")).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.error_code(), "invalid_plan");

    t.start_trial("org_abc123", "growth").await;
    let res = t.send(ask("pro")).await;
    assert_eq!(
        res.json(),
        json!({ "eligible": false, "reason": "trial_already_used", "trial_days": 14 })
    );
    let res = t.send(ask("starter")).await;
    assert_eq!(res.json()["reason"], "plan_not_trialable");
}
