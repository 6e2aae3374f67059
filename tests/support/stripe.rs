//! A TestApp whose convert (and cancel) talk to the local Stripe stand-in, on the test's clock,
//! and whose webhook takes deliveries signed with [`WEBHOOK_SECRET`]: the stand-in's own events
//! (what Stripe would send) or hand-made ones.
use trials::api::Route;
use trials::clock::Clock;
use trials::config::{Config, Secret};
use trials::crypto::{hex, hmac_sha256};
use trials_local::stripe_standin::{Options, StripeStandIn, LOCAL_SECRET_KEY};

use crate::requests::Call;
use crate::{TestApp, TestResponse};

/// The webhook endpoint secret of [`with_stripe`]'s apps.
pub const WEBHOOK_SECRET: &str = "whsec_test_money";

/// The Stripe call's timeout in these apps: far beyond any healthy answer, so no test depends
/// on how fast the machine is. Tests of the timeout hold the stand-in's answer back and move
/// paused tokio time (see `crate::time`).
pub const TIMEOUT_MS: u64 = 30_000;

/// `Stripe-Signature` for `body` signed with `secret` at `t`, by Stripe's documented algorithm
/// (HMAC-SHA256 of `"{t}.{body}"`, hex).
pub fn signature(body: &str, secret: &str, t: i64) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex(&mac))
}

pub async fn with_stripe(tweak: impl FnOnce(&mut Config)) -> (TestApp, StripeStandIn) {
    with_stripe_options(Options::default(), tweak).await
}

/// [`with_stripe`] with the stand-in configured by `options` (e.g. no delay before a delayed
/// payment settles).
pub async fn with_stripe_options(
    options: Options,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, StripeStandIn) {
    let standin = StripeStandIn::start_with(options)
        .await
        .expect("Stripe stand-in");
    let base = standin.base_url().to_owned();
    let t = TestApp::with_config(|c| {
        c.stripe.api_base = base;
        c.stripe.secret_key = Some(Secret::new(LOCAL_SECRET_KEY));
        c.stripe.timeout_ms = TIMEOUT_MS;
        c.webhook.secrets = vec![Secret::new(WEBHOOK_SECRET)];
        tweak(c);
    })
    .await;
    let clock = t.clock.clone();
    standin.set_clock(move || clock.now());
    (t, standin)
}

impl TestApp {
    /// Delivers `body` to the webhook function, signed now.
    pub async fn deliver(&self, body: &str) -> TestResponse {
        let call = Call::post("/v1/webhooks/stripe").raw_body(body).header(
            "stripe-signature",
            &signature(body, WEBHOOK_SECRET, self.now()),
        );
        self.send_to(Route::StripeWebhook, call).await
    }

    /// Delivers `event` (e.g. one the stand-in made), signed now; returns the webhook's
    /// `outcome`, asserting a 200.
    pub async fn deliver_event(&self, event: &serde_json::Value) -> String {
        let res = self.deliver(&event.to_string()).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Delivers the stand-in's event of type `kind` about `session_id` (the last one made), as
    /// Stripe would have sent it; returns the webhook's `outcome`.
    pub async fn deliver_from(
        &self,
        stripe: &StripeStandIn,
        kind: &str,
        session_id: &str,
    ) -> String {
        let delivery = stripe
            .deliveries()
            .into_iter()
            .rev()
            .find(|d| d.event_type == kind && d.session_id == session_id)
            .unwrap_or_else(|| panic!("the stand-in made no {kind} for {session_id}"));
        let res = self.deliver(&delivery.payload).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl crate::requests::Call {
    pub fn convert(id: &str, key: &str) -> crate::requests::Call {
        crate::requests::Call::post(&format!("/v1/trials/{id}/convert")).idempotency_key(key)
    }

    pub fn cancel(id: &str, key: &str) -> crate::requests::Call {
        crate::requests::Call::post(&format!("/v1/trials/{id}/cancel")).idempotency_key(key)
    }
}
