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

/// Scan segments run at once by [`Store::events_since`].
const REPLAY_SEGMENTS: i32 = 4;

impl Store {
    /// Every event item written at or after `since` (epoch seconds), oldest first: what
    /// `trialctl events replay` republishes after an EventBridge outage longer than the
    /// stream's 24 hours. Event items have no index entry (they cost nothing at rest), so this
    /// is a parallel `Scan` of the whole table with a filter: an operator's recovery tool,
    /// read-heavy on purpose, never on a request path.
    pub async fn events_since(&self, since: i64) -> Result<Vec<DomainEvent>, StoreError> {
        let mut segments = tokio::task::JoinSet::new();
        for segment in 0..REPLAY_SEGMENTS {
            let store = self.clone();
            segments.spawn(async move { store.scan_events(segment, since).await });
        }
        let mut found = Vec::new();
        while let Some(done) = segments.join_next().await {
            let part = done.map_err(|e| StoreError::Unavailable(format!("scan task: {e}")))??;
            found.extend(part);
        }
        found.sort_by(|a: &(i64, DomainEvent), b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(found.into_iter().map(|(_, e)| e).collect())
    }

    async fn scan_events(
        &self,
        segment: i32,
        since: i64,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(segment)
                .total_segments(REPLAY_SEGMENTS)
                .filter_expression("begins_with(pk, :prefix) AND created_at >= :since")
                .set_expression_attribute_values(
                    super::codec::Values::new()
                        .s(":prefix", super::schema::EVENT_PREFIX)
                        .n(":since", since)
                        .build(),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in page.items() {
                match (event_created_at(item), event_from_item(item)) {
                    (Some(at), Some(event)) => out.push((at, event)),
                    _ => tracing::error!("event item that does not decode: not replayed"),
                }
            }
            match super::codec::next_page(page.last_evaluated_key) {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_item_is_kept_a_week_and_written_once() {
        // Building the request sends nothing: a client with no endpoint is enough.
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let store = Store::new(client, "trials", 1);
        let event = DomainEvent::from_parts(
            "evt_1".into(),
            "trial.started",
            r#"{"trial_id":"trial_1"}"#.into(),
        )
        .expect("a known event type");
        let put = store.event_put(&event, 1_000).unwrap();
        let item = put.item();
        // When it was written: what a replay orders by (oldest first).
        assert_eq!(event_created_at(item), Some(1_000));
        // A week: longer than the stream's 24 hours, so a replay after a long EventBridge
        // outage still finds the event.
        assert_eq!(get_n(item, TTL), Some(1_000 + 7 * 86_400));
        assert_eq!(event_from_item(item), Some(event));
        assert_eq!(put.condition_expression(), Some("attribute_not_exists(pk)"));
    }
}
