//! The one DynamoDB table. Invariants live in condition expressions and transactions, never in
//! a read followed by a write: one trial per org, idempotency, legal transitions.
//!
//! - [`schema`]: the key design (what lives under which `pk`/`sk`, the `due` index).
//! - [`tx`]: the transaction builder every write goes through, with named slots.
//! - [`trials`], [`idempotency`], [`api_keys`], [`events`], [`webhook_events`]: how each kind of
//!   item is stored, and the conditional write of each change, handed to a [`tx::Tx`].
//! - [`error`]: store failures (never a domain answer).
pub mod admin;
pub mod api_keys;
pub mod batch;
pub mod codec;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod lifecycle;
pub mod schema;
pub mod signals;
pub mod stats;
pub mod table;
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
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Store {
        Store {
            client,
            table: table.into(),
            shards: shards.max(1),
        }
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
}
