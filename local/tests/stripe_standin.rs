//! The Stripe stand-in against Stripe's documented behaviour: `subscription_data[trial_end]`,
//! the expire endpoint and its `checkout.session.expired` delivery, idempotency across
//! endpoints, and sessions that run out.
mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use common::{call, get, temp_dir};
use hyper::Method;
use trials::config::Secret;
use trials_local::stripe_standin::{
    DeliveryState, Options, Status, StripeStandIn, WebhookTarget, LOCAL_SECRET_KEY,
};

const NOW: i64 = 1_775_469_600;
const SECRET: &str = "whsec_standin_test";
const FORM: &str = "mode=subscription&success_url=http%3A%2F%2F127.0.0.1%2Fok%3Fs%3D%7BCHECKOUT_SESSION_ID%7D\
    &line_items%5B0%5D%5Bprice%5D=price_growth&line_items%5B0%5D%5Bquantity%5D=1\
    &client_reference_id=trial_0123456789abcdef01234567\
    &metadata%5Btrial_id%5D=trial_0123456789abcdef01234567&metadata%5Borg_id%5D=org_a&metadata%5Bplan%5D=growth";

async fn post(
    standin: &StripeStandIn,
    path: &str,
    key: Option<&str>,
    form: &str,
) -> common::Answer {
    let mut headers = vec![
        ("authorization", format!("Bearer {LOCAL_SECRET_KEY}")),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    if let Some(key) = key {
        headers.push(("idempotency-key", key.to_owned()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    call(
        Method::POST,
        &format!("{}{path}", standin.base_url()),
        &headers,
        Some(form),
    )
    .await
}

/// A webhook endpoint that keeps what it receives.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                axum::Json(serde_json::json!({ "received": true, "outcome": "checkout_cleared" }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn standin_with_hook() -> (StripeStandIn, Received) {
    let (url, received) = receiver().await;
    let standin = StripeStandIn::start_with(Options {
        webhook: Some(WebhookTarget {
            url,
            secret: Secret::new(SECRET),
        }),
        ..Options::default()
    })
    .await
    .unwrap();
    standin.set_clock(|| NOW);
    (standin, received)
}

#[tokio::test]
async fn trial_end_must_be_an_integer_at_least_48_hours_ahead() {
    let standin = StripeStandIn::start().await.unwrap();
    standin.set_clock(|| NOW);
    for (trial_end, code) in [
        ((NOW + 48 * 3600 - 1).to_string(), None),
        (NOW.to_string(), None),
        ("soon".to_owned(), Some("parameter_invalid_integer")),
        ((NOW + 731 * 86_400).to_string(), None),
    ] {
        let res = post(
            &standin,
            "/v1/checkout/sessions",
            Some(&format!("k-{trial_end}")),
            &format!("{FORM}&subscription_data%5Btrial_end%5D={trial_end}"),
        )
        .await;
        let error = &res.json()["error"];
        assert_eq!(res.status, 400, "{trial_end}: {}", res.body);
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(
            error["param"], "subscription_data[trial_end]",
            "{trial_end}"
        );
        assert_eq!(error["code"].as_str(), code, "{trial_end}");
    }
    let too_soon = post(
        &standin,
        "/v1/checkout/sessions",
        None,
        &format!("{FORM}&subscription_data%5Btrial_end%5D={}", NOW + 3600),
    )
    .await;
    assert_eq!(
        too_soon.json()["error"]["message"],
        "The `trial_end` date has to be at least 2 days in the future."
    );
    assert_eq!(standin.sessions_created(), 0);

    // A refused request saved nothing: the same key works once the parameters are right.
    let trial_end = NOW + 48 * 3600;
    let ok = post(
        &standin,
        "/v1/checkout/sessions",
        Some(&format!("k-{}", NOW + 48 * 3600 - 1)),
        &format!("{FORM}&subscription_data%5Btrial_end%5D={trial_end}"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let body = ok.json();
    assert_eq!(
        (body["status"].as_str(), body["payment_status"].as_str()),
        (Some("open"), Some("unpaid"))
    );
    assert_eq!(body["mode"], "subscription");
    assert_eq!(body["metadata"]["org_id"], "org_a");
    assert_eq!(
        body["client_reference_id"],
        "trial_0123456789abcdef01234567"
    );
    assert_eq!(body["expires_at"], NOW + 86_400);
    // Nothing is charged before the trial ends.
    assert_eq!(body["amount_total"], 0);
    let session = standin.session(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(session.trial_end, Some(trial_end));
    assert!(
        session.url.starts_with("http://127.0.0.1:"),
        "{}",
        session.url
    );
}

#[tokio::test]
async fn expire_closes_an_open_session_and_sends_its_event_signed() {
    let (standin, received) = standin_with_hook().await;
    let created = post(&standin, "/v1/checkout/sessions", None, FORM).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/checkout/sessions/{id}/expire");

    let expired = post(&standin, &path, Some("expire-1"), "").await;
    assert_eq!(expired.status, 200, "{}", expired.body);
    assert_eq!(expired.json()["status"], "expired");
    assert_eq!(expired.json()["url"], serde_json::Value::Null);
    assert_eq!(standin.session(&id).unwrap().status, Status::Expired);

    // Delivered after the answer: wait for it (bounded).
    let mut tries = 0;
    while received.lock().unwrap().is_empty() {
        assert!(tries < 100, "no delivery");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tries += 1;
    }
    let (headers, body) = received.lock().unwrap()[0].clone();
    let signature = headers.get("stripe-signature").unwrap().to_str().unwrap();
    assert!(
        signature.starts_with(&format!("t={NOW},v1=")),
        "{signature}"
    );
    assert_eq!(
        trials::stripe::signature::verify(
            Some(signature),
            body.as_bytes(),
            &[Secret::new(SECRET)],
            300,
            NOW
        ),
        Ok(())
    );
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "checkout.session.expired");
    assert_eq!(event["object"], "event");
    assert_eq!(event["data"]["object"]["id"], id.as_str());
    assert_eq!(event["data"]["object"]["metadata"]["plan"], "growth");
    assert_eq!(event["request"]["idempotency_key"], "expire-1");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    let parsed = trials::stripe::event::Event::parse(body.as_bytes()).unwrap();
    assert!(matches!(
        parsed.action,
        trials::stripe::event::Action::Closed(_)
    ));
    assert_eq!(standin.deliveries()[0].state, DeliveryState::Delivered);

    // The same key: the saved answer, replayed. Another key: only an open session expires.
    let replayed = post(&standin, &path, Some("expire-1"), "").await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    let again = post(&standin, &path, Some("expire-2"), "").await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json()["error"]["message"],
        "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `expired`."
    );
    assert_eq!(standin.deliveries().len(), 1, "one expiry, one event");

    // A key belongs to the endpoint it was first used on.
    let reused = post(&standin, "/v1/checkout/sessions", Some("expire-1"), FORM).await;
    assert_eq!(
        (reused.status, reused.json()["error"]["type"].as_str()),
        (400, Some("idempotency_error"))
    );
    let unknown = post(
        &standin,
        "/v1/checkout/sessions/cs_test_nope/expire",
        None,
        "",
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.json()["error"]["code"].as_str()),
        (404, Some("resource_missing"))
    );
    let kinds: Vec<String> = standin.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
}

#[tokio::test]
async fn a_paid_session_cannot_be_expired() {
    let (standin, _) = standin_with_hook().await;
    let created = post(&standin, "/v1/checkout/sessions", None, FORM).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    standin
        .pay(&id, trials_local::stripe_standin::PayMethod::Card)
        .await
        .unwrap();
    let res = post(
        &standin,
        &format!("/v1/checkout/sessions/{id}/expire"),
        None,
        "",
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("status of `complete`."),
        "{}",
        res.body
    );
    let retrieved = call(
        Method::GET,
        &format!("{}/v1/checkout/sessions/{id}", standin.base_url()),
        &[("authorization", &format!("Bearer {LOCAL_SECRET_KEY}"))],
        None,
    )
    .await;
    assert_eq!(retrieved.json()["status"], "complete");
    assert_eq!(retrieved.json()["payment_status"], "paid");
}

#[tokio::test]
async fn sessions_that_run_out_expire_with_their_event() {
    let standin = StripeStandIn::start().await.unwrap();
    let now = Arc::new(std::sync::atomic::AtomicI64::new(NOW));
    let clock = now.clone();
    standin.set_clock(move || clock.load(std::sync::atomic::Ordering::SeqCst));
    let created = post(&standin, "/v1/checkout/sessions", None, FORM).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(standin.expire_due().await, 0);
    now.store(NOW + 86_400, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(standin.expire_due().await, 1);
    assert_eq!(standin.session(&id).unwrap().status, Status::Expired);
    let d = standin.deliveries();
    assert_eq!(d.len(), 1);
    // No endpoint configured: created, not sent, as in an account without one.
    assert_eq!(
        (d[0].event_type.as_str(), d[0].state),
        ("checkout.session.expired", DeliveryState::NotSent)
    );
    let page = get(&standin.session(&id).unwrap().url).await;
    assert!(page.body.contains("has expired"), "{}", page.body);
    assert!(!page.body.contains(r#"id="pay""#));
}

#[tokio::test]
async fn the_state_file_keeps_sessions_and_idempotency_keys() {
    let dir = temp_dir("standin-state");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let options = Options {
        state_file: Some(file.clone()),
        ..Options::default()
    };
    let first = StripeStandIn::start_with(options.clone()).await.unwrap();
    let created = post(&first, "/v1/checkout/sessions", Some("k"), FORM).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();

    let second = StripeStandIn::start_with(options).await.unwrap();
    assert_eq!(second.session(&id).unwrap().status, Status::Open);
    let replayed = post(&second, "/v1/checkout/sessions", Some("k"), FORM).await;
    assert_eq!(replayed.json()["id"], id.as_str());
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.sessions_created(), 0);

    std::fs::write(&file, b"not json").unwrap();
    let err = StripeStandIn::start_with(Options {
        state_file: Some(file),
        ..Options::default()
    })
    .await
    .err()
    .unwrap();
    assert!(err.contains("delete it"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
