//! Integration tests: handlers driven in-process against embedded dynoxide.
mod auth;
mod cancel;
mod convert;
mod events;
mod idempotency;
mod jobs;
mod lifecycle;
mod plans;
mod start;
mod status;
mod stripe_client;
mod webhook;
