//! Integration tests: handlers driven in-process against embedded dynoxide.
mod idempotency;
mod start;
mod status;
