//! Integration tests: handlers driven in-process against embedded dynoxide.
mod admin;
mod applicant;
mod auth;
mod cancel;
mod convert;
mod current;
mod events;
mod idempotency;
mod jobs;
mod lifecycle;
mod plans;
mod signals;
mod skip;
mod start;
mod status;
mod stripe_client;
mod webhook;
