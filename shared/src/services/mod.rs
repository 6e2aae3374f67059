//! What `api` and `jobs` share, below both of them: each module keeps one invariant that more
//! than one handler or job relies on. Imports flow one way: `domain` <- `store` <- `services`
//! <- `api`/`jobs`; nothing here reads an HTTP request or answers one (errors stay store or
//! service types, the api maps them at its edge).
//!
//! - [`transition`]: the write of a trial's transition (trial item, idempotency answer, event,
//!   reminder cursor) in one transaction, and the retry when the trial moved.
//! - [`checkout_sessions`]: Stripe Checkout Sessions, created (convert, skip) and expired
//!   (cancel, the session expiry job).
//! - [`downgrade`]: a reverse trial's end (DOWNGRADED), written by the expire job and by a
//!   usage call that finds the end come.
//! - [`signals`]: the abuse-signal check of a start.
//! - [`stats`]: the funnel's shape, for `GET /v1/stats` and `trialctl stats`.
pub mod checkout_sessions;
pub mod downgrade;
pub mod signals;
pub mod stats;
pub mod transition;
