//! Draining stranded outbox events (the expire job's second sweep).
//!
//! Every state change writes its event to the outbox in its own transaction; the writer
//! publishes and deletes it at once. An event still there `OUTBOX_RETRY_AFTER_SECS` later was
//! not published (the bus failed, the process died): this sweep publishes it and deletes it.
//! Publishing may repeat an event (published, then the delete failed): consumers deduplicate
//! on the deterministic `event_id` of the detail.
use super::{Flow, Run};
use crate::store::codec::Item;
use crate::store::outbox::event_from_item;

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) -> Flow {
    let mut events = Vec::with_capacity(items.len());
    for item in &items {
        match event_from_item(item) {
            Some(event) => events.push(event),
            None => {
                tracing::error!(pk = ?item.get("pk"), "undecodable outbox event left in place");
                run.report.failed += 1;
            }
        }
    }
    if events.is_empty() {
        return Flow::Continue;
    }
    let published = run.app.publish_committed(&events).await;
    run.report.events_republished += published as u64;
    run.report.events_failed += (events.len() - published) as u64;
    if published == 0 {
        tracing::warn!(
            pending = events.len(),
            "event bus refused every stranded event; the outbox waits for the next run"
        );
        return Flow::StopQueue;
    }
    Flow::Continue
}
