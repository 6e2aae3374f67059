//! A TestApp whose convert talks to the local Stripe stand-in, on the test's clock.
use trials::clock::Clock;
use trials::config::{Config, Secret};
use trials_local::stripe_standin::{StripeStandIn, LOCAL_SECRET_KEY};

use crate::TestApp;

pub async fn with_stripe(tweak: impl FnOnce(&mut Config)) -> (TestApp, StripeStandIn) {
    let standin = StripeStandIn::start().await.expect("Stripe stand-in");
    let base = standin.base_url().to_owned();
    let t = TestApp::with_config(|c| {
        c.stripe.api_base = base;
        c.stripe.secret_key = Some(Secret::new(LOCAL_SECRET_KEY));
        c.stripe.timeout_ms = 500;
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
