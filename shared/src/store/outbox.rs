//! The outbox: every state change writes its domain event in the same transaction, so an event
//! exists exactly when its change does. The writer publishes at once and deletes the item;
//! whatever is left (publish failed, process died) the expire job publishes later.
use aws_sdk_dynamodb::types::{Delete, Put};

use super::codec::{get_s, key, n, s, Item};
use super::keys::{outbox_pk, DueQueue, DUE_AT, DUE_PK, OUTBOX_SK};
use super::{Store, StoreError};
use crate::domain::events::DomainEvent;

/// How long the writer has to publish before the scheduled job considers the event stranded.
pub const OUTBOX_RETRY_AFTER_SECS: i64 = 60;

impl Store {
    /// The outbox item for `event`, to add to the transaction that makes the change. The
    /// condition makes a repeated transition (a retry) unable to queue the event twice.
    pub fn outbox_put(&self, event: &DomainEvent, now: i64) -> Result<Put, StoreError> {
        let mut item = key(outbox_pk(&event.id), OUTBOX_SK);
        item.insert("event_id".into(), s(&event.id));
        item.insert("detail_type".into(), s(event.kind.detail_type()));
        item.insert("detail".into(), s(&event.detail));
        item.insert(
            DUE_PK.into(),
            s(DueQueue::Outbox.partition_for(&event.id, self.shards)),
        );
        item.insert(DUE_AT.into(), n(now + OUTBOX_RETRY_AFTER_SECS));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    /// Removes published events from the outbox (one request per event: DynamoDB has no
    /// multi-delete that is cheaper for the handful a request produces).
    pub async fn outbox_ack(&self, event_ids: &[&str]) -> Result<(), StoreError> {
        for id in event_ids {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(outbox_pk(id), OUTBOX_SK)))
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
        }
        Ok(())
    }

    pub fn outbox_delete(&self, event_id: &str) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(outbox_pk(event_id), OUTBOX_SK)))
            .build()?)
    }
}

/// An outbox item read back by the job.
pub fn event_from_item(item: &Item) -> Option<DomainEvent> {
    DomainEvent::from_parts(
        get_s(item, "event_id")?.to_owned(),
        get_s(item, "detail_type")?,
        get_s(item, "detail")?.to_owned(),
    )
}
