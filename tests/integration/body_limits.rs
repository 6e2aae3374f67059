//! Issue 26: the body limits are guarded, with literal sizes (not the constants, so raising a
//! constant fails here): 32 KiB for the API's routes, 512 KiB for Stripe's webhook, checked
//! before anything reads the body, authenticates the caller or writes.
use trials::api::Route;
use trials::config::Secret;
use trials_tests::stripe::signature;
use trials_tests::{Call, TestApp};

const SECRET: &str = "whsec_body_limits";

/// `{"plan":"growth"}` padded with JSON whitespace to exactly `len` bytes: a valid body of that
/// size whatever the start route thinks of unknown fields.
fn start_body(len: usize) -> String {
    let mut body = r#"{"plan":"growth"}"#.to_owned();
    body.push_str(&" ".repeat(len - body.len()));
    assert_eq!(body.len(), len);
    body
}

fn start(key: &str, body: &str) -> Call {
    Call::post("/v1/trials/start")
        .idempotency_key(key)
        .header("content-type", "application/json")
        .raw_body(body)
}

#[tokio::test]
async fn a_start_one_byte_over_32_kib_is_413_writes_nothing_and_frees_its_key() {
    let t = TestApp::new().await;
    t.api_key(trials_tests::requests::ORG).await;
    t.dynamo.reset();
    let over = t.send(start("big", &start_body(32_769))).await;
    assert_eq!(over.status, 413, "{}", over.body);
    assert_eq!(over.error_code(), "payload_too_large");
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());

    // The key was not taken: a retry with a small body runs and creates the trial.
    let retried = t.send(start("big", r#"{"plan":"growth"}"#)).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(!retried.replayed());
}

#[tokio::test]
async fn a_start_of_exactly_32_kib_is_accepted() {
    let t = TestApp::new().await;
    let exact = t.send(start("exact", &start_body(32_768))).await;
    assert_eq!(exact.status, 201, "{}", exact.body);
}

#[tokio::test]
async fn another_mutating_route_one_byte_over_32_kib_is_413() {
    let t = TestApp::new().await;
    let id = t.start_trial(trials_tests::requests::ORG, "growth").await;
    let mut body = r#"{"option":"api_calls","value":1}"#.to_owned();
    body.push_str(&" ".repeat(32_769 - body.len()));
    t.dynamo.reset();
    let usage = t
        .send(
            Call::post(&format!("/v1/trials/{id}/usage"))
                .idempotency_key("usage-big")
                .header("content-type", "application/json")
                .raw_body(&body),
        )
        .await;
    assert_eq!(usage.status, 413, "{}", usage.body);
    assert_eq!(usage.error_code(), "payload_too_large");
    assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());
    let convert = t
        .send(
            Call::post(&format!("/v1/trials/{id}/convert"))
                .idempotency_key("convert-big")
                .raw_body(&" ".repeat(32_769)),
        )
        .await;
    assert_eq!(convert.status, 413, "{}", convert.body);
}

/// A Stripe-shaped body of exactly `len` bytes.
fn stripe_body(len: usize) -> String {
    let mut body =
        r#"{"id":"evt_big","type":"checkout.session.completed","data":{"object":{}}}"#.to_owned();
    body.push_str(&" ".repeat(len - body.len()));
    body
}

#[tokio::test]
async fn the_webhook_one_byte_over_512_kib_is_413_before_its_signature_is_checked() {
    let t = TestApp::with_config(|c| c.webhook.secrets = vec![Secret::new(SECRET)]).await;
    let deliver = |body: String, signed: bool| {
        let mut call = Call::post("/v1/webhooks/stripe")
            .without_auth()
            .raw_body(&body);
        if signed {
            call = call.header("stripe-signature", &signature(&body, SECRET, t.now()));
        }
        t.send_to(Route::StripeWebhook, call)
    };
    for signed in [true, false] {
        t.dynamo.reset();
        let over = deliver(stripe_body(524_289), signed).await;
        assert_eq!(over.status, 413, "signed {signed}: {}", over.body);
        assert_eq!(over.error_code(), "payload_too_large");
        assert_eq!(t.dynamo.total(), 0, "{:?}", t.dynamo.by_operation());
    }
    // At exactly 512 KiB the limit lets it through: unsigned, the signature is what refuses.
    let exact = deliver(stripe_body(524_288), false).await;
    assert_ne!(exact.status, 413, "{}", exact.body);
    assert_ne!(exact.error_code(), "payload_too_large");
}
