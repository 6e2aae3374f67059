//! Stripe: the Checkout Sessions client, webhook signatures and the events we act on.
pub mod client;
pub mod event;
pub mod signature;

pub use client::StripeClient;
