//! Stripe: the Checkout Sessions client and webhook signatures.
pub mod client;
pub mod signature;

pub use client::StripeClient;
