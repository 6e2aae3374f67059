//! Trials: a free-trial service for SaaS plans.
//!
//! Layers, imports flowing one way: `domain` <- `store` <- `services` <- `api` / `jobs` <-
//! `lambda` (and the `trials-local` crate).
//!
//! - [`domain`]: plans, ids, the trial and its state machine (pure).
//! - [`store`]: the one DynamoDB table, its key design and every conditional write.
//! - `services`: what handlers and jobs share above the store (Stripe sessions, abuse signals,
//!   transition writes).
//! - [`api`]: the HTTP handlers (one per route), the route table that lists them, and what they
//!   share.
//! - [`jobs`]: the five scheduled jobs: expire, resume (pauses past their maximum), remind,
//!   expire-sessions (run by the expire function) and purge.
//! - [`auth`]: API keys: who is calling, the warm cache of verdicts, issuing.
//! - [`stripe`]: the Stripe client, webhook signatures and events.
//! - [`publish`]: domain events from the table's stream to EventBridge.
//! - [`lambda`]: the entry points the function binaries call; [`app`]: what a handler needs,
//!   built once per process.
//! - [`headers`] (tenant headers), [`config`], [`clock`], [`crypto`], [`aws`], [`metrics`],
//!   [`telemetry`]: what the layers above share.
pub mod api;
pub mod app;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod headers;
pub mod jobs;
pub mod jwt;
pub mod lambda;
pub mod metrics;
pub mod publish;
pub mod services;
pub mod store;
pub mod stripe;
pub mod telemetry;

pub use app::App;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
