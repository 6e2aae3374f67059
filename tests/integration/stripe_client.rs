//! The Stripe client against the stand-in, and the stand-in against Stripe's documented
//! behaviour for `POST /v1/checkout/sessions`.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trials::config::{Config, Secret};
use trials::stripe::client::{NewCheckoutSession, SessionExpiry, StripeClient, StripeError};
use trials_local::stripe_standin::{Fault, PayMethod, Status, StripeStandIn, LOCAL_SECRET_KEY};
use trials_tests::stripe::TIMEOUT_MS;
use trials_tests::time::Frozen;

fn client(base: &str, key: Option<&str>, timeout_ms: u64) -> StripeClient {
    let mut config = Config::from_lookup(|_| None).unwrap().stripe;
    config.api_base = base.to_owned();
    config.secret_key = key.map(Secret::new);
    config.timeout_ms = timeout_ms;
    StripeClient::new(&config)
}

fn session(price: &str) -> NewCheckoutSession {
    NewCheckoutSession {
        price: price.into(),
        quantity: 1,
        success_url: "https://example.com/ok".into(),
        cancel_url: "https://example.com/back".into(),
        client_reference_id: "trial_0123456789abcdef01234567".into(),
        metadata: vec![("trial_id".into(), "trial_0123456789abcdef01234567".into())],
        trial_end: None,
    }
}

/// A request the typed client cannot send: raw HTTP/1.1 over a socket.
async fn raw_post(base: &str, auth: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Bearer {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/checkout/sessions HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test]
async fn creates_a_session_and_replays_it_for_the_same_key_and_parameters() {
    let stripe = StripeStandIn::start().await.unwrap();
    let c = client(stripe.base_url(), Some(LOCAL_SECRET_KEY), TIMEOUT_MS);
    let first = c
        .create_checkout_session(&session("price_a"), "key-1", None)
        .await
        .unwrap();
    assert!(first.id.starts_with("cs_test_"));
    assert!(first.url.ends_with(&first.id));
    assert!(!first.replayed);
    let again = c
        .create_checkout_session(&session("price_a"), "key-1", None)
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert!(again.replayed);
    assert_eq!(stripe.sessions_created(), 1);
    let sent = &stripe.requests()[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {LOCAL_SECRET_KEY}").as_str())
    );
    assert_eq!(sent.idempotency_key.as_deref(), Some("key-1"));
}

#[tokio::test]
async fn the_same_key_with_other_parameters_is_an_idempotency_error() {
    let stripe = StripeStandIn::start().await.unwrap();
    let c = client(stripe.base_url(), Some(LOCAL_SECRET_KEY), TIMEOUT_MS);
    c.create_checkout_session(&session("price_a"), "key-1", None)
        .await
        .unwrap();
    let err = c
        .create_checkout_session(&session("price_b"), "key-1", None)
        .await
        .unwrap_err();
    match &err {
        StripeError::Api(body) => {
            assert_eq!(body.status, 400);
            assert_eq!(body.error_type, "idempotency_error");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn errors_are_parsed_and_never_carry_the_secret() {
    let stripe = StripeStandIn::start().await.unwrap();
    let err = client(stripe.base_url(), Some("rk_wrong_kind_of_key"), TIMEOUT_MS)
        .create_checkout_session(&session("price_a"), "k", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    match &err {
        StripeError::Api(body) => {
            assert_eq!(body.error_type, "invalid_request_error");
            assert_eq!(
                body.message.as_deref(),
                Some("Invalid API Key provided: rk_wrong_****_key")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("rk_wrong_kind_of_key"), "{err}");
    assert!(!format!("{err:?}").contains("rk_wrong_kind_of_key"));

    stripe.fail_next(Fault::ServerError);
    let err = client(stripe.base_url(), Some(LOCAL_SECRET_KEY), TIMEOUT_MS)
        .create_checkout_session(&session("price_a"), "k2", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_transient());

    let err = client(stripe.base_url(), None, TIMEOUT_MS)
        .create_checkout_session(&session("price_a"), "k3", None)
        .await
        .unwrap_err();
    assert_eq!(err, StripeError::NotConfigured);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_answer_times_out_as_a_transient_error() {
    let mut frozen = Frozen::new();
    let stripe = StripeStandIn::start().await.unwrap();
    // Stripe creates the session and never answers.
    let mut held = stripe.hold_next();
    let c = client(stripe.base_url(), Some(LOCAL_SECRET_KEY), 100);
    let call = tokio::spawn({
        let c = c.clone();
        async move {
            c.create_checkout_session(&session("price_a"), "k", None)
                .await
        }
    });
    frozen
        .finish("the call reaching Stripe", held.handled())
        .await;
    tokio::time::advance(Duration::from_millis(100)).await;
    let err = frozen
        .finish("the call after its 100 ms timeout", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, StripeError::Timeout { after_ms: 100 });
    assert!(err.is_transient());
    assert_eq!(
        stripe.sessions_created(),
        1,
        "Stripe acted on the call that timed out"
    );

    // A timeout given for one call replaces the configured one.
    let mut held = stripe.hold_next();
    let call = tokio::spawn(async move {
        c.create_checkout_session(&session("price_a"), "k2", Some(Duration::from_millis(40)))
            .await
    });
    frozen
        .finish("the second call reaching Stripe", held.handled())
        .await;
    tokio::time::advance(Duration::from_millis(40)).await;
    let err = frozen
        .finish("the call after its 40 ms timeout", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, StripeError::Timeout { after_ms: 40 });
    drop(held);
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&base, Some(LOCAL_SECRET_KEY), TIMEOUT_MS)
        .create_checkout_session(&session("price_a"), "k", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StripeError::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn the_stand_in_requires_what_stripe_requires() {
    let stripe = StripeStandIn::start().await.unwrap();
    let base = stripe.base_url();
    let (status, body) = raw_post(base, None, "mode=subscription").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let key = Some(LOCAL_SECRET_KEY);
    let (status, body) = raw_post(base, key, "success_url=https%3A%2F%2Fx").await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("mode"))
    );
    assert_eq!(body["error"]["code"], "parameter_missing");
    let (status, body) = raw_post(base, key, "mode=subscription").await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("success_url"))
    );
    let (status, body) = raw_post(base, key, "mode=subscription&success_url=https%3A%2F%2Fx").await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("line_items"))
    );
    let (status, body) = raw_post(base, key, "mode=rental&success_url=https%3A%2F%2Fx").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("parameter_invalid_string"))
    );
    assert_eq!(stripe.sessions_created(), 0);
}

#[tokio::test]
async fn expiring_a_session_makes_it_unpayable_whatever_state_it_was_in() {
    let stripe = StripeStandIn::start().await.unwrap();
    let c = client(stripe.base_url(), Some(LOCAL_SECRET_KEY), 2_000);
    let open = c
        .create_checkout_session(&session("price_a"), "key-open", None)
        .await
        .unwrap();
    assert_eq!(
        c.expire_checkout_session(&open.id, None).await,
        Ok(SessionExpiry::Expired)
    );
    assert_eq!(stripe.session(&open.id).unwrap().status, Status::Expired);
    let expire = stripe.requests().pop().unwrap();
    assert_eq!(
        (expire.method.as_str(), expire.path.as_str()),
        (
            "POST",
            format!("/v1/checkout/sessions/{}/expire", open.id).as_str()
        )
    );
    // No Idempotency-Key: expiring is idempotent by nature, and a retry must ask again rather
    // than get a saved failure replayed.
    assert_eq!(expire.idempotency_key, None);

    // Again: Stripe refuses (not open); the session is looked up and that is an answer.
    assert_eq!(
        c.expire_checkout_session(&open.id, None).await,
        Ok(SessionExpiry::NotOpen("expired".into()))
    );
    let paid = c
        .create_checkout_session(&session("price_a"), "key-paid", None)
        .await
        .unwrap();
    stripe.pay(&paid.id, PayMethod::Card).await.unwrap();
    assert_eq!(
        c.expire_checkout_session(&paid.id, None).await,
        Ok(SessionExpiry::NotOpen("complete".into()))
    );
    assert_eq!(
        c.expire_checkout_session("cs_test_unknown", None).await,
        Ok(SessionExpiry::Missing)
    );
    // Ids that could be a path are never sent.
    assert!(matches!(
        c.expire_checkout_session("cs_1/../../v1/customers", None)
            .await,
        Err(StripeError::InvalidRequest(_))
    ));

    // A failure is a failure, and the session stays open for the retry.
    let later = c
        .create_checkout_session(&session("price_a"), "key-later", None)
        .await
        .unwrap();
    stripe.fail_next(Fault::ServerError);
    let failed = c
        .expire_checkout_session(&later.id, None)
        .await
        .unwrap_err();
    assert!(failed.is_transient(), "{failed}");
    assert_eq!(stripe.session(&later.id).unwrap().status, Status::Open);
    assert_eq!(
        c.expire_checkout_session(&later.id, None).await,
        Ok(SessionExpiry::Expired)
    );
}
