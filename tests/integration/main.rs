//! Integration tests: handlers driven in-process against embedded dynoxide.
mod auth;
mod events;
mod idempotency;
mod jobs;
mod start;
mod status;
mod webhook;
