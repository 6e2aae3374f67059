//! Issue 15: `POST /v1/trials/skip`, buying at once: the org's trial is used up, the answer is a
//! Checkout URL, and the webhook converts the skipped trial as usual.
use serde_json::json;
use trials::api::Route;
use trials::config::Secret;
use trials::crypto::{hex, hmac_sha256};
use trials::store::stats::Stage;
use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{builtin_catalog_with, Call, T0};

const SECRET: &str = "whsec_skip";

fn skip(key: &str, plan: &str) -> Call {
    Call::post("/v1/trials/skip")
        .idempotency_key(key)
        .json(&json!({ "plan": plan }))
}

#[tokio::test]
async fn skip_uses_up_the_trial_answers_a_checkout_and_the_webhook_converts_it() {
    let (t, stripe) = with_stripe(|c| c.webhook.secrets = vec![Secret::new(SECRET)]).await;
    let res = t.send(skip("skip-1", "growth")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    let id = body["trial_id"].as_str().unwrap().to_owned();
    assert_eq!(body["plan"], "growth");
    let url = body["checkout_url"].as_str().unwrap().to_owned();
    assert!(url.contains("/checkout/pay/cs_test_"), "{url}");
    // No trial period on the session: billing starts now.
    let sent = stripe.requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].param("subscription_data[trial_end]").is_none());
    assert!(sent[0]
        .param("subscription_data[trial_period_days]")
        .is_none());
    assert_eq!(sent[0].param("metadata[trial_id]"), Some(id.as_str()));

    // Idempotent: the same key replays; another key finds the skipped trial and its session.
    let replay = t.send(skip("skip-1", "growth")).await;
    assert!(replay.replayed());
    assert_eq!(replay.body, res.body);
    let other = t.send(skip("skip-2", "growth")).await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.json()["checkout_url"], url.as_str());
    assert_eq!(stripe.requests().len(), 1);

    // The trial is used up.
    let read = t.send(Call::status(&id)).await.json();
    assert_eq!(read["is_trial_skipped"], true);
    assert_eq!(read["days_remaining"], 0);
    let start = t.send(Call::start("growth", "start-after-skip")).await;
    assert_eq!(start.status, 409, "{}", start.body);
    assert_eq!(start.error_code(), "trial_already_exists");
    let pro = t.send(skip("skip-3", "pro")).await;
    assert_eq!(pro.status, 409, "{}", pro.body);

    // Stripe reports the payment: converted as usual, the binding checked.
    let session_id = url.rsplit('/').next().unwrap().to_owned();
    let event = json!({
        "id": "evt_skip_paid",
        "object": "event",
        "created": T0,
        "type": "checkout.session.completed",
        "livemode": false,
        "data": { "object": {
            "id": session_id,
            "object": "checkout.session",
            "client_reference_id": id,
            "metadata": { "trial_id": id, "org_id": ORG, "plan": "growth" },
            "mode": "subscription",
            "payment_status": "paid",
            "status": "complete",
            "customer": "cus_skip",
            "subscription": "sub_skip",
        }},
    })
    .to_string();
    let now = t.now();
    let mac = hmac_sha256(SECRET.as_bytes(), format!("{now}.{event}").as_bytes());
    let delivered = t
        .send_to(
            Route::StripeWebhook,
            Call::post("/v1/webhooks/stripe")
                .raw_body(&event)
                .header("stripe-signature", &format!("t={now},v1={}", hex(&mac))),
        )
        .await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    let read = t.send(Call::status(&id)).await.json();
    assert_eq!(read["status"], "CONVERTED", "{read}");
    assert_eq!(read["is_trial_skipped"], true);
}

#[tokio::test]
async fn an_org_with_a_trial_cannot_skip() {
    let (t, stripe) = with_stripe(|_| {}).await;
    t.start_trial(ORG, "growth").await;
    let res = t.send(skip("skip", "growth")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "trial_already_exists");
    assert!(stripe.requests().is_empty());
    let bad = t.send(skip("skip-bad", "gold")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "invalid_plan");
}

#[tokio::test]
async fn skip_prices_from_the_catalog_and_counts_as_a_start() {
    // pro has no price in this catalog; starter is not offered for trial.
    let (t, stripe) = with_stripe(|c| {
        c.catalog = builtin_catalog_with(|v| {
            v["plans"][2]
                .as_object_mut()
                .unwrap()
                .remove("stripe_price");
            v["plans"][0]["trialable"] = json!(false);
        })
    })
    .await;
    let res = t.send(skip("skip-pro", "pro")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.error_code(), "plan_not_purchasable");
    let res = t.send(skip("skip-starter", "starter")).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.error_code(), "invalid_plan");
    // Nothing was written and Stripe was not called: the org still has its trial.
    assert!(stripe.requests().is_empty());
    assert!(t
        .app
        .store
        .get_guard(&trials::domain::OrgId::parse(ORG).unwrap())
        .await
        .unwrap()
        .is_none());

    // A priced plan: the session carries the catalog's price, and the funnel counts the start.
    let res = t.send(skip("skip-growth", "growth")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["billing_starts"], "now");
    assert_eq!(
        stripe.requests()[0].param("line_items[0][price]"),
        Some("price_growth")
    );
    t.publish_events().await;
    let stats = t
        .app
        .store
        .read_stats(&["growth".to_owned()], 1, t.now())
        .await
        .unwrap();
    assert_eq!(stats["growth"].count(Stage::Started), 1, "{stats:?}");
}
