//! The one DynamoDB table. Invariants live in condition expressions and transactions, never in
//! a read followed by a write: one trial per org, idempotency, legal transitions.
//!
//! - [`schema`]: the key design (what lives under which `pk`/`sk`, the `due` index).
//! - [`tx`]: the transaction builder the writes go through, with named slots.
//! - [`conditions`]: the state machine's table as the DynamoDB condition of each transition.
//! - [`trials`] (a trial's transitions), [`moves`] (pause, resume, extend), [`org_guard`] (one
//!   trial per org), [`reminders`] (reminder cursors), [`usage`], [`admin`], [`idempotency`],
//!   [`api_keys`], [`signals`], [`events`], [`timeline`], [`webhook_events`], [`stats`]: how each kind of
//!   item is stored, and the conditional write of each change, handed to a [`tx::Tx`].
//! - [`error`]: store failures (never a domain answer).
pub mod admin;
pub mod api_keys;
pub mod batch;
pub mod codec;
pub mod conditions;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod moves;
pub mod org_guard;
pub mod reminders;
pub mod schema;
pub mod signals;
pub mod stats;
pub mod subscriptions;
pub mod table;
pub mod timeline;
pub mod trials;
pub mod tx;
pub mod usage;
pub mod webhook_events;

use aws_sdk_dynamodb::Client;

pub use error::StoreError;
pub use tx::{Outcome, Rejection, Slot, Tx};

/// A handle on the table; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) shards: u32,
    /// How long a payment on its way holds a trial (`Config::pending_payment_max_age_secs`):
    /// the writes that wait for one (a new session, cancel, purge) condition on its age.
    pub(crate) pending_max_age_secs: i64,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Store {
        Store {
            client,
            table: table.into(),
            shards: shards.max(1),
            pending_max_age_secs: crate::domain::trial::PENDING_MAX_AGE_SECS,
        }
    }

    /// The store with another maximum age for a payment on its way (the configured one).
    pub fn with_pending_max_age(mut self, secs: i64) -> Store {
        self.pending_max_age_secs = secs;
        self
    }

    /// A payment on its way since before this, at `now`, no longer holds the trial.
    pub(crate) fn pending_stale_at(&self, now: i64) -> i64 {
        now - self.pending_max_age_secs
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// A `Query` on the table (the caller pages it with `codec::next_page`).
    pub(crate) fn query(&self) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }
}
