//! The Stripe API client (issue 4 fills this in).
use crate::config::StripeConfig;

/// Talks to Stripe's API.
#[derive(Clone, Debug)]
pub struct StripeClient {
    api_base: String,
}

impl StripeClient {
    pub fn new(config: &StripeConfig) -> StripeClient {
        StripeClient {
            api_base: config.api_base.clone(),
        }
    }
    pub fn api_base(&self) -> &str {
        &self.api_base
    }
}
