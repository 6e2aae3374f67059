//! A TestApp whose convert talks to the local Stripe stand-in, on the test's clock; and
//! Stripe's webhook signature.
use trials::clock::Clock;
use trials::config::{Config, Secret};
use trials::crypto::{hex, hmac_sha256};
use trials_local::stripe_standin::{StripeStandIn, LOCAL_SECRET_KEY};

use crate::TestApp;

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
    let standin = StripeStandIn::start().await.expect("Stripe stand-in");
    let base = standin.base_url().to_owned();
    let t = TestApp::with_config(|c| {
        c.stripe.api_base = base;
        c.stripe.secret_key = Some(Secret::new(LOCAL_SECRET_KEY));
        c.stripe.timeout_ms = TIMEOUT_MS;
        tweak(c);
    })
    .await;
    let clock = t.clock.clone();
    standin.set_clock(move || clock.now());
    (t, standin)
}

impl crate::requests::Call {
    pub fn convert(id: &str, key: &str) -> crate::requests::Call {
        crate::requests::Call::post(&format!("/v1/trials/{id}/convert")).idempotency_key(key)
    }

    pub fn cancel(id: &str, key: &str) -> crate::requests::Call {
        crate::requests::Call::post(&format!("/v1/trials/{id}/cancel")).idempotency_key(key)
    }
}
