//! Domain event items. A mutation writes its event (`EVENT#<event_id>`) in the transaction that
//! makes the change, so the event exists exactly when the change does, and answers: it never
//! calls EventBridge. The table's stream carries every INSERT of an event item to the `publish`
//! function (see [`crate::publish`]).
//!
//! Event items stay for [`EVENT_RETENTION_SECS`] (TTL), longer than the stream's 24 hours, so a
//! long EventBridge outage loses nothing: `trialctl events replay --since` republishes them
//! from the table.
use aws_sdk_dynamodb::types::Put;

use super::codec::{get_n, get_s, key, n, s, Item};
use super::schema::{event_pk, EVENT_SK, TTL};
use super::{Store, StoreError};
use crate::domain::events::DomainEvent;

/// How long an event item stays in the table after it is written.
pub const EVENT_RETENTION_SECS: i64 = 7 * 86_400;

impl Store {
    /// The item for `event`. Its condition makes a repeated transition (a retry, an overlapping
    /// job run) unable to write the same event twice.
    pub fn event_put(&self, event: &DomainEvent, now: i64) -> Result<Put, StoreError> {
        let mut item = key(event_pk(&event.id), EVENT_SK);
        item.insert("event_id".into(), s(&event.id));
        item.insert("detail_type".into(), s(event.kind.detail_type()));
        item.insert("detail".into(), s(&event.detail));
        item.insert("created_at".into(), n(now));
        item.insert(TTL.into(), n(now + EVENT_RETENTION_SECS));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }
}

/// An event item read back (from the table or a stream record's new image).
pub fn event_from_item(item: &Item) -> Option<DomainEvent> {
    DomainEvent::from_parts(
        get_s(item, "event_id")?.to_owned(),
        get_s(item, "detail_type")?,
        get_s(item, "detail")?.to_owned(),
    )
}

/// When the event item was written (epoch seconds), for replays.
pub fn event_created_at(item: &Item) -> Option<i64> {
    get_n(item, "created_at")
}
