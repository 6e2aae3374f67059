//! Reverse trials (issue 28 item 1): a plan whose `end_behavior` is `downgrade` ends on its
//! free plan instead of expiring. The trial is DOWNGRADED to every caller from its end (before
//! the expire job writes it), keeps its use on the free plan's options, is never purged, stays
//! the org's one trial, converts later through the same checkout, and refuses every other move
//! with 409 `trial_downgraded`. The example catalog's `pro-reverse` (14 days, 1,000 API calls,
//! 10 exports that end the trial) downgrades to `free` (100 API calls, 2 exports).
use serde_json::{json, Value};
use trials::domain::catalog::Catalog;
use trials::domain::TrialStatus;
use trials::jobs::{self, Job};
use trials::store::stats::day_of;
use trials_local::stripe_standin::PayMethod;
use trials_tests::stripe::with_stripe;
use trials_tests::writes::{open_session, stored};
use trials_tests::{Call, TestApp, DAY, T0};

const ENTERPRISE: &str = include_str!("../../examples/plans-enterprise.json");
const ORG: &str = "org_abc123";

fn enterprise() -> Catalog {
    Catalog::from_json(ENTERPRISE).expect("the example catalog is valid")
}

async fn enterprise_app() -> TestApp {
    TestApp::with_config(|c| c.catalog = enterprise()).await
}

fn usage(id: &str, option: &str, quantity: i64, key: &str) -> Call {
    Call::post(&format!("/v1/trials/{id}/usage"))
        .idempotency_key(key)
        .json(&json!({ "option": option, "quantity": quantity }))
}

async fn access(t: &TestApp) -> Value {
    let res = t.send(Call::get("/v1/access?product=app")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn status(t: &TestApp, id: &str) -> Value {
    let res = t.send(Call::status(id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

fn option<'a>(body: &'a Value, feature: &str) -> &'a Value {
    body["options"]
        .as_array()
        .expect("options")
        .iter()
        .find(|o| o["feature"] == feature)
        .unwrap_or_else(|| panic!("no {feature} option in {body}"))
}

async fn run(t: &TestApp, job: Job) -> jobs::RunReport {
    jobs::run(&t.app, job, None).await
}

/// A `pro-reverse` trial that used 150 API calls, with the clock a second past its end.
async fn ended_reverse_trial(t: &TestApp) -> String {
    let id = t.start_trial(ORG, "pro-reverse").await;
    let res = t.send(usage(&id, "api_calls", 150, "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    t.clock.set(T0 + 14 * DAY + 1);
    id
}

#[tokio::test]
async fn a_reverse_trial_downgrades_at_its_end_and_access_then_shows_the_free_plan_with_the_used_values(
) {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "pro-reverse").await;
    let res = t.send(usage(&id, "api_calls", 150, "u1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let during = access(&t).await;
    assert_eq!(
        (&during["plan"], &during["source"]),
        (&json!("pro-reverse"), &json!("trial"))
    );
    assert_eq!(option(&during, "api")["value"], 1000);

    // From its end on, DOWNGRADED to every caller, before the expire job has written it.
    t.clock.set(T0 + 14 * DAY);
    let reported = status(&t, &id).await;
    assert_eq!(reported["status"], "DOWNGRADED");
    assert_eq!(reported["downgraded_from"], "pro-reverse");
    let stored_before = stored(&t, &id).await.expect("trial");
    assert_eq!(stored_before.status, TrialStatus::Active, "not written yet");
    let free = access(&t).await;
    assert_eq!(
        free,
        json!({
            "plan": "free",
            "source": "free",
            "until": null,
            "options": [
                {"feature": "api", "value": 100, "used": 150, "remaining": 0, "allowed": false},
                {"feature": "data", "value": 2, "used": 0, "remaining": 2, "allowed": true},
            ],
        })
    );

    // The expire job writes it: the free plan, the use kept, the trialled plan kept.
    assert_eq!(run(&t, Job::Expire).await.processed, 1);
    let trial = stored(&t, &id).await.expect("trial");
    assert_eq!(trial.status, TrialStatus::Downgraded);
    assert_eq!(trial.plan.as_str(), "free");
    assert_eq!(
        trial.downgraded_from.as_ref().map(|p| p.as_str()),
        Some("pro-reverse")
    );
    assert_eq!(trial.downgraded_at, Some(T0 + 14 * DAY));
    assert_eq!(trial.used.get("api_calls"), Some(&150));
    assert_eq!(trial.terms.option("api_calls").map(|o| o.value), Some(100));
    assert!(trial.terms.downgrade_to.is_none());
    assert_eq!(access(&t).await, free, "the same answer once written");
    let events = t.events_of("trial.downgraded").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["plan"], "pro-reverse");
    assert_eq!(events[0]["downgrade_to"], "free");
    assert!(t.events_of("trial.expired").await.is_empty());
    let timeline = t
        .send(Call::get(&format!("/v1/trials/{id}/timeline")))
        .await;
    assert_eq!(timeline.status, 200, "{}", timeline.body);
    assert!(
        timeline.body.contains("trial.downgraded"),
        "{}",
        timeline.body
    );

    // Never expired again, never purged, however late the jobs run.
    t.clock.set(T0 + 400 * DAY);
    let expire = run(&t, Job::Expire).await;
    let purge = run(&t, Job::Purge).await;
    assert_eq!((expire.processed, purge.processed), (0, 0));
    assert_eq!(
        stored(&t, &id).await.map(|t| t.status),
        Some(TrialStatus::Downgraded)
    );
    assert_eq!(status(&t, &id).await["status"], "DOWNGRADED");

    // Still the org's one trial of the product.
    let again = t
        .send(Call::start("enterprise", "start-again").org(ORG))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.error_code(), "trial_already_exists");
}

#[tokio::test]
async fn a_downgraded_trial_records_usage_on_the_free_plan_and_refuses_every_other_move() {
    let t = enterprise_app().await;
    let id = ended_reverse_trial(&t).await;

    // Usage after the end, before the job: the downgrade is written first, and the use counts
    // against the free plan (2 exports).
    let res = t.send(usage(&id, "exports", 2, "e1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.json()["value"].clone(), res.json()["status"].clone()),
        (json!(2), json!("DOWNGRADED"))
    );
    let trial = stored(&t, &id).await.expect("trial");
    assert_eq!(
        (trial.status, trial.plan.as_str()),
        (TrialStatus::Downgraded, "free")
    );
    assert_eq!(t.events_of("trial.downgraded").await.len(), 1);
    assert_eq!(
        run(&t, Job::Expire).await.processed,
        0,
        "nothing left to write"
    );

    // The free plan's limits refuse (429) and end nothing.
    for (option, key) in [("exports", "e2"), ("api_calls", "a1")] {
        let res = t.send(usage(&id, option, 1, key)).await;
        assert_eq!(res.status, 429, "{}", res.body);
        assert_eq!(res.error_code(), "trial_limit_exceeded");
    }
    assert_eq!(
        stored(&t, &id).await.map(|t| t.status),
        Some(TrialStatus::Downgraded)
    );

    let moves = [
        Call::post(&format!("/v1/trials/{id}/pause")).idempotency_key("p"),
        Call::post(&format!("/v1/trials/{id}/resume")).idempotency_key("r"),
        Call::post(&format!("/v1/trials/{id}/cancel")).idempotency_key("c"),
        Call::post(&format!("/v1/trials/{id}/extend"))
            .admin()
            .idempotency_key("x")
            .json(&json!({ "days": 3 })),
        Call::post(&format!("/v1/trials/{id}/change-plan"))
            .idempotency_key("cp")
            .json(&json!({ "plan": "enterprise" })),
        Call::new("PATCH", &format!("/v1/trials/{id}"))
            .admin()
            .idempotency_key("n")
            .json(&json!({ "notes": "moved" })),
    ];
    for call in moves {
        let res = t.send(call).await;
        assert_eq!(
            (res.status, res.error_code()),
            (409, "trial_downgraded".to_owned()),
            "{}",
            res.body
        );
    }
    assert_eq!(
        stored(&t, &id).await.map(|t| t.status),
        Some(TrialStatus::Downgraded)
    );
}

#[tokio::test]
async fn a_limit_that_ends_a_reverse_trial_downgrades_it() {
    let t = enterprise_app().await;
    let id = t.start_trial(ORG, "pro-reverse").await;
    let res = t.send(usage(&id, "exports", 10, "e1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "DOWNGRADED");
    assert_eq!(status(&t, &id).await["status"], "DOWNGRADED");
    assert_eq!(access(&t).await["source"], "free");
    // Due at once: the job writes the downgrade, not an expiry.
    assert_eq!(run(&t, Job::Expire).await.processed, 1);
    let trial = stored(&t, &id).await.expect("trial");
    assert_eq!(trial.status, TrialStatus::Downgraded);
    assert_eq!(trial.downgraded_at, Some(T0));
    assert_eq!(trial.expiry_reason.as_deref(), Some("limit_reached"));
    assert!(t.events_of("trial.expired").await.is_empty());
    assert_eq!(t.events_of("trial.downgraded").await.len(), 1);
}

#[tokio::test]
async fn a_downgraded_trial_converts_later_through_the_same_checkout() {
    let (t, stripe) = with_stripe(|c| c.catalog = enterprise()).await;
    let id = ended_reverse_trial(&t).await;
    assert_eq!(run(&t, Job::Expire).await.processed, 1);

    let res = t.send(Call::convert(&id, "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json()["plan"],
        "pro-reverse",
        "it buys the trialled plan"
    );
    let session = open_session(&t, &id).await;
    stripe.pay(&session, PayMethod::Card).await.expect("paid");
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "converted"
    );
    let trial = stored(&t, &id).await.expect("trial");
    assert_eq!(
        (trial.status, trial.plan.as_str()),
        (TrialStatus::Converted, "pro-reverse")
    );
    let body = access(&t).await;
    assert_eq!(
        (&body["plan"], &body["source"]),
        (&json!("pro-reverse"), &json!("subscription"))
    );
    // Back on the trialled plan's terms: its options, no trial limit counted.
    assert_eq!(trial.terms.plan.as_str(), "pro-reverse");
    assert_eq!(
        option(&body, "api"),
        &json!({"feature": "api", "value": 1000, "used": 150, "remaining": null, "allowed": true})
    );
}

#[tokio::test]
async fn the_reminder_says_which_ending_is_coming_and_the_funnel_counts_downgrades() {
    let t = enterprise_app().await;
    let reverse = t.start_trial(ORG, "pro-reverse").await;
    let expiring = t.start_trial("org_other", "enterprise").await;
    // 72 hours before the end of both (14-day trials).
    t.clock.set(T0 + 11 * DAY);
    run(&t, Job::Expire).await;
    let soon = t.events_of("trial.ending_soon").await;
    let of = |id: &str| {
        soon.iter()
            .find(|e| e["trial_id"] == id)
            .unwrap_or_else(|| panic!("no reminder of {id} in {soon:?}"))
            .clone()
    };
    let reverse_reminder = of(&reverse);
    assert_eq!(reverse_reminder["ending"], "downgrade");
    assert_eq!(reverse_reminder["downgrade_to"], "free");
    assert_eq!(of(&expiring)["ending"], "expire");
    assert_eq!(of(&expiring).get("downgrade_to"), None);

    t.clock.set(T0 + 14 * DAY);
    assert_eq!(run(&t, Job::Expire).await.processed, 2);
    // No grace-ending reminder for the reverse trial: it is never purged.
    t.clock.set(T0 + 16 * DAY + 1);
    run(&t, Job::Expire).await;
    let grace = t.events_of("trial.grace_ending").await;
    assert!(
        grace.iter().all(|e| e["trial_id"] != reverse.as_str()),
        "{grace:?}"
    );

    t.publish_events().await;
    let query = format!("/v1/stats?from={}&to={}", day_of(T0), day_of(t.now()));
    let res = t.send(Call::get(&query).admin()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let funnel = res.json();
    assert_eq!(funnel["total"]["downgraded"], 1);
    assert_eq!(funnel["total"]["expired"], 1);
    assert_eq!(funnel["plan_totals"]["pro-reverse"]["downgraded"], 1);
    let day = day_of(T0 + 14 * DAY);
    let on_the_day = funnel["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == day.as_str())
        .expect("the day of the end");
    assert_eq!(on_the_day["downgraded"], 1);
}

#[tokio::test]
async fn the_plans_show_how_each_trial_ends() {
    let t = enterprise_app().await;
    let res = t.send(Call::get("/v1/plans")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let plans = res.json()["plans"].as_array().unwrap().clone();
    let plan = |id: &str| plans.iter().find(|p| p["id"] == id).cloned();
    let reverse = plan("pro-reverse").expect("trialable");
    assert_eq!(
        (&reverse["end_behavior"], &reverse["downgrade_to"]),
        (&json!("downgrade"), &json!("free"))
    );
    let enterprise = plan("enterprise").expect("trialable");
    assert_eq!(
        (&enterprise["end_behavior"], &enterprise["downgrade_to"]),
        (&json!("expire"), &Value::Null)
    );
    assert_eq!(plan("free"), None, "a free plan is not trialable");
}

/// The example catalog with `pro-reverse` edited by `edit`: the error, as `trialctl plans
/// check` and init print it, and its field.
fn refused(edit: impl FnOnce(&mut Value)) -> (String, String) {
    let mut json: Value = serde_json::from_str(ENTERPRISE).unwrap();
    let plans = json["plans"].as_array_mut().unwrap();
    let reverse = plans.iter_mut().find(|p| p["id"] == "pro-reverse").unwrap();
    edit(reverse);
    let err = Catalog::from_json(&json.to_string()).expect_err("refused");
    let field = err
        .plan_field()
        .map(|(_, f)| f.to_owned())
        .unwrap_or_default();
    (err.to_string(), field)
}

#[test]
fn a_catalog_whose_downgrade_is_not_to_a_free_plan_of_the_product_is_refused() {
    let (message, field) = refused(|p| p["downgrade_to"] = "nope".into());
    assert_eq!(field, "downgrade_to");
    assert!(
        message.contains("\"nope\" is not a plan of the catalog"),
        "{message}"
    );

    let (message, field) = refused(|p| p["downgrade_to"] = "enterprise".into());
    assert_eq!(field, "downgrade_to");
    assert!(message.contains("is trialable"), "{message}");

    let (message, field) =
        refused(|p| p["product"] = json!({ "id": "cdn", "name": "CDN", "internal_name": "cdn" }));
    assert_eq!(field, "downgrade_to");
    assert!(
        message.contains("of product \"app\", not \"cdn\""),
        "{message}"
    );

    let (message, field) = refused(|p| {
        p.as_object_mut().unwrap().remove("downgrade_to");
    });
    assert_eq!(field, "downgrade_to");
    assert!(message.contains("needs downgrade_to"), "{message}");

    let (message, field) = refused(|p| p["end_behavior"] = "pause".into());
    assert_eq!(field, "end_behavior");
    assert!(message.contains("\"expire\" or \"downgrade\""), "{message}");

    let (_, field) = refused(|p| p["end_behavior"] = "expire".into());
    assert_eq!(
        field, "downgrade_to",
        "a downgrade_to without the downgrade"
    );
}

#[tokio::test]
async fn a_plan_change_takes_the_new_plans_ending_with_it() {
    let t = enterprise_app().await;
    let change = |id: &str, plan: &str, key: &str| {
        Call::post(&format!("/v1/trials/{id}/change-plan"))
            .idempotency_key(key)
            .json(&json!({ "plan": plan }))
    };
    // Onto the reverse trial's plan: from then on it downgrades at its end.
    let onto = t.start_trial(ORG, "enterprise").await;
    let res = t.send(change(&onto, "pro-reverse", "c1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Off it: it expires at its end.
    let off = t.start_trial("org_other", "pro-reverse").await;
    let res = t
        .send(change(&off, "enterprise", "c2").org("org_other"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);

    t.clock.set(T0 + 14 * DAY);
    assert_eq!(run(&t, Job::Expire).await.processed, 2);
    let onto = stored(&t, &onto).await.expect("trial");
    let off = stored(&t, &off).await.expect("trial");
    assert_eq!(
        (onto.status, off.status),
        (TrialStatus::Downgraded, TrialStatus::Expired)
    );
}

/// A PENDING reverse trial (started on activation): unused, it lapses at its activation
/// deadline like any PENDING trial (EXPIRED, `activation_window`), never downgrades; activated
/// by a first usage that reaches an `ends_trial` limit, it downgrades (ACTIVE and ending in the
/// same write, then the expire job's downgrade).
#[tokio::test]
async fn a_pending_reverse_trial_lapses_unused_and_downgrades_once_used_up() {
    let t = enterprise_app().await;
    let start = |org: &str, key: &str| {
        Call::post("/v1/trials/start")
            .org(org)
            .idempotency_key(key)
            .json(&json!({ "plan": "pro-reverse", "starts": "on_activation" }))
    };
    let res = t.send(start(ORG, "p1")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.json()["status"], "PENDING");
    let unused = res.json()["id"].as_str().unwrap().to_owned();

    let res = t.send(start("org_other", "p2")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let used = res.json()["id"].as_str().unwrap().to_owned();
    let res = t
        .send(usage(&used, "exports", 10, "e1").org("org_other"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "DOWNGRADED");

    // Past the default 30-day activation window.
    t.clock.set(T0 + 30 * DAY);
    assert_eq!(status(&t, &unused).await["status"], "EXPIRED");
    assert_eq!(run(&t, Job::Expire).await.processed, 2);
    let lapsed = stored(&t, &unused).await.expect("trial");
    assert_eq!(lapsed.status, TrialStatus::Expired);
    assert_eq!(lapsed.expiry_reason.as_deref(), Some("activation_window"));
    let downgraded = stored(&t, &used).await.expect("trial");
    assert_eq!(downgraded.status, TrialStatus::Downgraded);
    assert_eq!(downgraded.plan.as_str(), "free");
    let events = |kind: &'static str| t.events_of(kind);
    assert_eq!(events("trial.activated").await.len(), 1);
    assert_eq!(events("trial.downgraded").await.len(), 1);
    assert_eq!(events("trial.expired").await.len(), 1);

    // Unused, it is purged like any lapsed trial: its grace-ending reminder goes out first (a
    // day before the end of its 3-day grace); the downgraded one, never purged, gets none.
    t.clock.set(T0 + 32 * DAY + 1);
    run(&t, Job::Expire).await;
    let grace = events("trial.grace_ending").await;
    assert_eq!(grace.len(), 1, "{grace:?}");
    assert_eq!(grace[0]["trial_id"], unused.as_str());
}

/// The end of a reverse trial under the DynamoDB layer (conflicts, throttles, lost responses,
/// clients retrying with their key): usage calls that find the end come race the expire job.
/// The trial downgrades once (one `trial.downgraded`), and the free plan's limit of 2 exports
/// holds exactly: 2 calls counted, the others refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_reverse_trial_under_the_layer_downgrades_once() {
    use trials_tests::chaos::workload::{final_statuses, send_retrying, usage_on_one_trial};
    let t = TestApp::with_chaos_and(
        trials_tests::ChaosSpec::documented(29),
        |c| c.catalog = enterprise(),
        |_| trials::publish::Publisher::Log,
    )
    .await;
    let started = send_retrying(&t, "start", || Call::start("pro-reverse", "s")).await;
    assert_eq!(started.last.status, 201, "{}", started.last.body);
    let id = started.last.json()["id"].as_str().unwrap().to_owned();
    t.clock.set(T0 + 14 * DAY + 1);

    let (sent, _) = tokio::join!(usage_on_one_trial(&t, &id, "exports", 12, 6), async {
        for _ in 0..3 {
            run(&t, Job::Expire).await;
        }
    });
    let statuses = final_statuses(&sent);
    assert_eq!(
        (statuses.get(&200), statuses.get(&429)),
        (Some(&2), Some(&10)),
        "{statuses:?}"
    );
    let trial = stored(&t, &id).await.expect("trial");
    assert_eq!(trial.status, TrialStatus::Downgraded);
    assert_eq!(trial.plan.as_str(), "free");
    assert_eq!(trial.used["exports"], 2);
    assert_eq!(t.events_of("trial.downgraded").await.len(), 1);
    assert!(t.events_of("trial.expired").await.is_empty());
}

/// A DOWNGRADED trial's checkout bills the trialled plan at once, and Stripe does not order its
/// events: the first `invoice.paid` may come before `checkout.session.completed`, while the
/// trial is still on its free plan. It is the trial's money (bound to the trialled plan), kept
/// and counted once the trial converts, never an unmatched payment.
#[tokio::test]
async fn a_downgraded_trials_first_invoice_before_its_checkout_completes_is_its_own() {
    use trials_local::stripe_standin::SubscriptionChange;
    let (t, stripe) = with_stripe(|c| c.catalog = enterprise()).await;
    let id = ended_reverse_trial(&t).await;
    assert_eq!(run(&t, Job::Expire).await.processed, 1);
    let res = t.send(Call::convert(&id, "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let session = open_session(&t, &id).await;
    let paid = stripe.pay(&session, PayMethod::Card).await.expect("paid");
    let sub = paid.subscription.expect("a subscription");

    t.clock.advance(60);
    let invoice = stripe
        .subscription_event(&sub, SubscriptionChange::InvoicePaid)
        .await
        .expect("the subscription exists");
    let outcome = t.deliver_event(&invoice).await;
    assert_eq!(outcome, "first_payment", "the trial's own first payment");
    assert!(t.events_of("trial.payment_unmatched").await.is_empty());
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "converted"
    );
    let view = status(&t, &id).await;
    assert_eq!(view["plan"], "pro-reverse");
    assert!(
        view["subscription"]["first_paid_at"].is_string(),
        "{}",
        view["subscription"]
    );
}

/// Skip on a reverse plan buys at once: no free days, so no free plan after them. An abandoned
/// checkout leaves it EXPIRED at once and purged after its grace, never DOWNGRADED.
#[tokio::test]
async fn a_skipped_reverse_plan_never_downgrades() {
    let (t, _stripe) = with_stripe(|c| c.catalog = enterprise()).await;
    let res = t
        .send(
            Call::post("/v1/trials/skip")
                .idempotency_key("skip-1")
                .json(&json!({ "plan": "pro-reverse" })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let id = res.json()["trial_id"].as_str().unwrap().to_owned();
    assert_eq!(status(&t, &id).await["status"], "EXPIRED");
    assert_eq!(run(&t, Job::Expire).await.processed, 1);
    assert_eq!(
        stored(&t, &id).await.expect("trial").status,
        TrialStatus::Expired
    );
    assert!(t.events_of("trial.downgraded").await.is_empty());
}
