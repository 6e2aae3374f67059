//! The local payment loop, in-process: `trials-local` as `service::start` wires it (embedded
//! store, Stripe stand-in, pages), driven over HTTP as a browser and an API client would.
mod common;

use std::time::Duration;

use common::{call, get, post_form, temp_dir};
use hyper::Method;
use trials::config::Secret;
use trials_local::dev_key::{DEV_KEY, DEV_ORG, DEV_PROJECT};
use trials_local::service::{self, Options, Running};
use trials_local::stripe_standin::{
    self, DeliveryState, PayMethod, PaymentStatus, Status, StripeStandIn, WebhookTarget,
};

const SECRET: &str = "whsec_checkout_test";

async fn start(name: &str) -> (Running, std::path::PathBuf) {
    let dir = temp_dir(name);
    let options = Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: dir.clone(),
        dynamodb_addr: "127.0.0.1:0".parse().unwrap(),
    };
    let running = service::start(&options, |k| match k {
        "STRIPE_WEBHOOK_SECRET" => Some(SECRET.into()),
        "STANDIN_ASYNC_PAYMENT_DELAY" => Some("1s".into()),
        // No job run during the test: they are not what is tested here.
        "JOBS_INTERVAL" => Some("1h".into()),
        _ => None,
    })
    .await
    .expect("trials-local starts");
    (running, dir)
}

async fn api(running: &Running, method: Method, path: &str, key: &str) -> common::Answer {
    let url = format!("{}{path}", running.base_url());
    let headers = [
        ("authorization", &format!("Bearer {DEV_KEY}")[..]),
        ("x-org-id", DEV_ORG),
        ("x-project-id", DEV_PROJECT),
        ("idempotency-key", key),
        ("content-type", "application/json"),
    ];
    let body =
        (method == Method::POST && path.ends_with("/start")).then_some(r#"{"plan":"growth"}"#);
    call(method, &url, &headers, body).await
}

/// A started trial and its checkout URL.
async fn trial_with_checkout(running: &Running) -> (String, String) {
    let started = api(running, Method::POST, "/v1/trials/start", "start-1").await;
    assert_eq!(started.status, 201, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_owned();
    let converted = api(
        running,
        Method::POST,
        &format!("/v1/trials/{id}/convert"),
        "convert-1",
    )
    .await;
    assert_eq!(converted.status, 200, "{}", converted.body);
    let url = converted.json()["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, url)
}

async fn trial_status(running: &Running, id: &str) -> String {
    let res = api(running, Method::GET, &format!("/v1/trials/{id}"), "-").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["status"].as_str().unwrap().to_owned()
}

fn session_id(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn paying_on_the_checkout_page_converts_the_trial_through_the_signed_webhook() {
    let (running, dir) = start("pay").await;
    let base = running.base_url();
    let (id, url) = trial_with_checkout(&running).await;
    // On this server, on loopback: never a Stripe host.
    assert!(
        url.starts_with(&format!("{base}/checkout/pay/cs_test_")),
        "{url}"
    );

    let standin = running.standin.as_ref().unwrap();
    let session = standin.session(session_id(&url)).unwrap();
    assert_eq!(session.mode, "subscription");
    assert_eq!(session.client_reference_id.as_deref(), Some(id.as_str()));
    assert_eq!(session.metadata.get("trial_id"), Some(&id));
    assert_eq!(
        session.metadata.get("org_id").map(String::as_str),
        Some(DEV_ORG)
    );
    assert_eq!(
        session.metadata.get("plan").map(String::as_str),
        Some("growth")
    );
    assert_eq!(
        session.success_url,
        format!("{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}")
    );

    let page = get(&url).await;
    assert_eq!(page.status, 200);
    for shown in [
        "Growth",
        "$29.00 per month",
        r#"id="pay""#,
        "Pay with a delayed method",
        r#"id="cancel""#,
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }

    let paid = post_form(&format!("{url}/pay")).await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    let success = format!("{base}/checkout/success?session_id={}", session.id);
    assert_eq!(paid.header("location"), Some(success.as_str()));

    let deliveries = standin.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let d = &deliveries[0];
    assert_eq!(d.event_type, "checkout.session.completed");
    assert_eq!(
        (d.state, d.last_status, d.outcome.as_deref()),
        (DeliveryState::Delivered, Some(200), Some("converted"))
    );
    let event: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
    let object = &event["data"]["object"];
    assert_eq!(object["mode"], "subscription");
    assert_eq!(object["status"], "complete");
    assert_eq!(object["metadata"]["trial_id"], id.as_str());
    assert_eq!(object["client_reference_id"], id.as_str());
    assert!(object["customer"].as_str().unwrap().starts_with("cus_"));
    assert!(object["subscription"].as_str().unwrap().starts_with("sub_"));
    assert_eq!(object["currency"], "usd");
    // Paid now, or (a subscription that starts with the trial's remaining days) nothing due yet.
    match object["payment_status"].as_str() {
        Some("paid") => assert_eq!(object["amount_total"], 2_900),
        Some("no_payment_required") => assert_eq!(object["amount_total"], 0),
        other => panic!("{other:?}"),
    }

    assert_eq!(trial_status(&running, &id).await, "CONVERTED");
    let page = get(&success).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"id="trial-status">CONVERTED<"#),
        "{}",
        page.body
    );

    // A second click on Pay changes nothing and lands on the same page.
    let again = post_form(&format!("{url}/pay")).await;
    assert_eq!(again.header("location"), Some(success.as_str()));
    assert_eq!(standin.deliveries().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_success_page_cancels_the_subscription_in_stripe_and_the_conversion_lapses() {
    let (running, dir) = start("lapse").await;
    let base = running.base_url();
    let (id, url) = trial_with_checkout(&running).await;
    let paid = post_form(&format!("{url}/pay")).await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    let success = format!("{base}/checkout/success?session_id={}", session_id(&url));
    let page = get(&success).await;
    assert!(
        page.body
            .contains(r#"id="billing">awaiting_first_payment<"#),
        "{}",
        page.body
    );

    let canceled = post_form(&format!("{url}/subscription/cancel")).await;
    assert_eq!(canceled.status, 303, "{}", canceled.body);
    assert_eq!(canceled.header("location"), Some(success.as_str()));
    let standin = running.standin.as_ref().unwrap();
    let last = standin.deliveries().pop().unwrap();
    assert_eq!(last.event_type, "customer.subscription.deleted");
    assert_eq!(
        (last.state, last.outcome.as_deref()),
        (DeliveryState::Delivered, Some("subscription_lapsed"))
    );
    let res = api(&running, Method::GET, &format!("/v1/trials/{id}"), "-").await;
    assert_eq!(
        res.json()["subscription"]["billing"],
        "lapsed",
        "{}",
        res.body
    );
    let page = get(&success).await;
    assert!(
        page.body.contains(r#"id="billing">lapsed<"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("customer.subscription.deleted"),
        "{}",
        page.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_payment_completes_unpaid_then_succeeds() {
    let (running, dir) = start("delayed").await;
    let (id, url) = trial_with_checkout(&running).await;
    let standin = running.standin.as_ref().unwrap();

    let paid = post_form(&format!("{url}/pay-delayed")).await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    let first = standin.deliveries();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event_type, "checkout.session.completed");
    assert_eq!(first[0].state, DeliveryState::Delivered);
    let event: serde_json::Value = serde_json::from_str(&first[0].payload).unwrap();
    assert_eq!(event["data"]["object"]["payment_status"], "unpaid");
    assert_ne!(trial_status(&running, &id).await, "CONVERTED");
    assert!(standin.in_flight(session_id(&url)));

    // The bank answers a second later (STANDIN_ASYNC_PAYMENT_DELAY); bounded wait.
    let mut waited = 0;
    while standin.in_flight(session_id(&url)) {
        assert!(waited < 200, "the delayed payment never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let all = standin.deliveries();
    let kinds: Vec<_> = all.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded"
        ]
    );
    assert_eq!(all[1].state, DeliveryState::Delivered);
    assert_eq!(
        standin.session(session_id(&url)).unwrap().payment_status,
        PaymentStatus::Paid
    );
    assert_eq!(trial_status(&running, &id).await, "CONVERTED");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_goes_back_and_leaves_the_session_open() {
    let (running, dir) = start("cancel").await;
    let base = running.base_url();
    let (id, url) = trial_with_checkout(&running).await;
    let back = post_form(&format!("{url}/cancel")).await;
    assert_eq!(back.status, 303);
    let cancel_url = format!("{base}/checkout/cancel");
    assert_eq!(back.header("location"), Some(cancel_url.as_str()));
    let page = get(&cancel_url).await;
    assert!(page.body.contains("Checkout canceled"), "{}", page.body);
    let standin = running.standin.as_ref().unwrap();
    assert_eq!(
        standin.session(session_id(&url)).unwrap().status,
        Status::Open
    );
    assert!(standin.deliveries().is_empty());
    assert_eq!(trial_status(&running, &id).await, "ACTIVE");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_signed_with_another_secret_is_refused_and_retried() {
    let (running, dir) = start("wrong-secret").await;
    let (id, _) = trial_with_checkout(&running).await;
    // A second stand-in that signs for this server's webhook with a secret it does not know.
    let standin = StripeStandIn::start_with(stripe_standin::Options {
        webhook: Some(WebhookTarget {
            url: format!("{}/v1/webhooks/stripe", running.base_url()),
            secret: Secret::new("whsec_not_the_endpoints"),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let created = call(
        Method::POST,
        &format!("{}/v1/checkout/sessions", standin.base_url()),
        &[
            ("authorization", "Bearer sk_test_x"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(&format!(
            "mode=subscription&success_url=http%3A%2F%2F127.0.0.1%2Fok&line_items%5B0%5D%5Bprice%5D=price_growth\
             &client_reference_id={id}&metadata%5Btrial_id%5D={id}&metadata%5Borg_id%5D={DEV_ORG}&metadata%5Bplan%5D=growth"
        )),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let sid = created.json()["id"].as_str().unwrap().to_owned();
    standin.pay(&sid, PayMethod::Card).await.unwrap();
    let d = &standin.deliveries()[0];
    assert_eq!(
        (d.attempts, d.last_status, d.outcome.as_deref(), d.state),
        (
            1,
            Some(400),
            Some("invalid_signature"),
            DeliveryState::Pending
        )
    );
    assert!(standin.in_flight(&sid), "retries are on their way");
    assert_eq!(trial_status(&running, &id).await, "ACTIVE");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stand_ins_sessions_survive_a_restart() {
    let (running, dir) = start("restart").await;
    let (_, url) = trial_with_checkout(&running).await;
    let sid = session_id(&url).to_owned();
    running.server.abort();
    drop(running);
    let state = dir.join(service::STANDIN_STATE_FILE);
    let standin = StripeStandIn::start_with(stripe_standin::Options {
        state_file: Some(state),
        ..Default::default()
    })
    .await
    .unwrap();
    let session = standin.session(&sid).expect("the session is still known");
    assert_eq!(session.status, Status::Open);
    assert_eq!(session.url, url);
    let _ = std::fs::remove_dir_all(&dir);
}
