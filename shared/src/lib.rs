//! Trials: a free-trial service for SaaS plans.
//!
//! - [`domain`]: plans, ids, the trial and its state machine (pure).
//! - [`store`]: the one DynamoDB table, its key design and every conditional write.
//! - [`api`]: the HTTP handlers (one per route) and what they share.
//! - [`jobs`]: the scheduled expire and purge jobs.
//! - [`stripe`]: the Stripe client and webhook signatures.
//! - [`publish`]: domain events from the table's stream to EventBridge.
//! - [`auth`]: API keys.
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
pub mod lambda;
pub mod metrics;
pub mod publish;
pub mod services;
pub mod store;
pub mod stripe;
pub mod telemetry;

pub use app::App;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
