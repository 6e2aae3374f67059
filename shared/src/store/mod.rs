//! The one DynamoDB table. Invariants live in condition expressions and transactions, never in
//! a read followed by a write: one trial per org, idempotency, legal transitions.
pub mod api_keys;
pub mod codec;
pub mod error;
pub mod idempotency;
pub mod keys;
pub mod outbox;
pub mod table;
pub mod trials;
pub mod webhook_events;

use aws_sdk_dynamodb::types::Put;
use aws_sdk_dynamodb::Client;

pub use error::StoreError;

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

    /// Sends `put` on its own (a `PutItem`, half the cost of a one-item transaction):
    /// `false` when its condition failed.
    pub async fn put_conditional(&self, put: Put) -> Result<bool, StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::from_sdk(e)),
        }
    }
}
