//! `PutEvents` in batches of 10 (the API's limit), retrying the entries EventBridge reports as
//! failed. Whatever still fails is reported back (the stream retries it).
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::domain::events::{DomainEvent, SOURCE};

const BATCH: usize = 10;
/// Attempts per batch at the entries `FailedEntryCount` reports (the SDK does not retry those).
const ATTEMPTS: u32 = 3;

#[derive(Clone, Debug)]
pub enum Publisher {
    EventBridge {
        client: aws_sdk_eventbridge::Client,
        bus: String,
    },
    /// No bus configured (local run): events go to the log, and count as published.
    Log,
}

impl Publisher {
    /// Publishes `events`; returns the ids that EventBridge accepted.
    pub async fn publish(&self, events: &[DomainEvent]) -> Vec<String> {
        match self {
            Publisher::Log => {
                for e in events {
                    let detail = redacted_detail(&e.detail);
                    tracing::info!(event_id = %e.id, detail_type = e.kind.detail_type(), detail = %detail, "domain event");
                }
                events.iter().map(|e| e.id.clone()).collect()
            }
            Publisher::EventBridge { client, bus } => {
                let mut published = Vec::with_capacity(events.len());
                // Redacted once: the size, the entries and their retries all read this.
                let events: Vec<DomainEvent> = events.iter().map(outgoing).collect();
                let sizes: Vec<usize> = events.iter().map(entry_size).collect();
                let (batches, oversized) = plan_batches(&sizes);
                for &i in &oversized {
                    // It can never be sent; retrying it would hold the stream's shard for a day.
                    // The event item stays in the table (`trialctl events` reads it).
                    tracing::error!(
                        event_id = %events[i].id,
                        entry_bytes = sizes[i],
                        "event larger than EventBridge's entry limit: not published"
                    );
                    published.push(events[i].id.clone());
                }
                for batch in batches {
                    let (ids, call_failed) = put_batch(client, bus, &events[batch]).await;
                    published.extend(ids);
                    if call_failed {
                        // The call itself failed after the SDK's own retries (5xx, throttling,
                        // network): the next batches would fail alike. They are reported failed
                        // and the stream delivers them again.
                        break;
                    }
                }
                published
            }
        }
    }
}

/// `PutEvents` takes entries whose sizes add up to less than 256 KB per request, as
/// EventBridge counts them ("Calculating PutEvents event entry size"): the UTF-8 bytes of the
/// source, the detail type and the detail (no time, no resources are sent).
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// `event` as it leaves for the bus: its detail through the same allow-list as a log line (a
/// bus has many readers: rules, archives, other accounts), so the applicant's fields and the
/// notes leave as `<redacted>`; a consumer that needs them reads the trial with its API key.
fn outgoing(event: &DomainEvent) -> DomainEvent {
    DomainEvent {
        detail: redacted_detail(&event.detail),
        ..event.clone()
    }
}

/// An outgoing entry's size as EventBridge counts it.
fn entry_size(event: &DomainEvent) -> usize {
    SOURCE.len() + event.kind.detail_type().len() + event.detail.len()
}

/// Consecutive batches of at most [`BATCH`] entries whose sizes add up to less than
/// [`MAX_REQUEST_BYTES`], in order; and the entries too large to be sent at all.
fn plan_batches(sizes: &[usize]) -> (Vec<std::ops::Range<usize>>, Vec<usize>) {
    let mut batches = Vec::new();
    let mut oversized = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if size >= MAX_REQUEST_BYTES {
            if start < i {
                batches.push(start..i);
            }
            oversized.push(i);
            (start, bytes) = (i + 1, 0);
            continue;
        }
        if i - start == BATCH || bytes + size >= MAX_REQUEST_BYTES {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    (batches, oversized)
}

/// One `PutEvents` entry of an [`outgoing`] event.
fn entry(bus: &str, event: &DomainEvent) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .source(SOURCE)
        .detail_type(event.kind.detail_type())
        .detail(&event.detail)
        .event_bus_name(bus)
        .build()
}

/// One batch: the ids accepted (retrying the failed entries), and whether a call failed
/// outright.
async fn put_batch(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    batch: &[DomainEvent],
) -> (Vec<String>, bool) {
    let mut pending: Vec<&DomainEvent> = batch.iter().collect();
    let mut published = Vec::with_capacity(batch.len());
    for attempt in 1..=ATTEMPTS {
        let entries = pending.iter().map(|e| entry(bus, e)).collect::<Vec<_>>();
        let out = match client.put_events().set_entries(Some(entries)).send().await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), attempt, "PutEvents failed");
                return (published, true);
            }
        };
        let results = out.entries();
        let mut still_failing = Vec::new();
        for (i, event) in pending.iter().enumerate() {
            // EventBridge answers entry by entry, in request order; a missing result is
            // treated as a failure so the event is retried, never assumed sent.
            let ok = results
                .get(i)
                .is_some_and(|r| r.error_code().is_none() && r.event_id().is_some());
            if ok {
                published.push(event.id.clone());
            } else {
                still_failing.push(*event);
            }
        }
        if !still_failing.is_empty() {
            let first = results
                .iter()
                .find_map(|r| r.error_code())
                .unwrap_or("missing result");
            tracing::warn!(
                failed = still_failing.len(),
                error_code = first,
                attempt,
                "PutEvents entries failed"
            );
        }
        pending = still_failing;
        if pending.is_empty() {
            break;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
        }
    }
    (published, false)
}

/// An event's detail fit for a log line: [`crate::telemetry::redact`]'s allow-list at every
/// depth (the applicant and the notes inside `trial.purged`'s `trial` as much as at the top).
/// What goes to EventBridge passes the same list (see [`outgoing`]).
fn redacted_detail(detail: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(value @ serde_json::Value::Object(_)) => crate::telemetry::redact(&value).to_string(),
        // Every detail is a JSON object; anything else is not logged at all.
        _ => "<unreadable>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_entries_under_256_kb_and_skip_what_can_never_fit() {
        const KB: usize = 1024;
        // Ten small entries, then an eleventh: two batches.
        assert_eq!(plan_batches(&[100; 11]).0, vec![0..10, 10..11]);
        // 100 KB entries: two fit under 256 KB, a third does not.
        assert_eq!(plan_batches(&[100 * KB; 5]).0, vec![0..2, 2..4, 4..5]);
        // Exactly the limit together is not under it.
        assert_eq!(plan_batches(&[128 * KB, 128 * KB]).0, vec![0..1, 1..2]);
        // One entry that can never be sent is set apart; the others still go, in order.
        let (batches, oversized) = plan_batches(&[10, 256 * KB, 20, 30]);
        assert_eq!(batches, vec![0..1, 2..4]);
        assert_eq!(oversized, vec![1]);
        assert_eq!(plan_batches(&[]), (vec![], vec![]));
    }

    #[test]
    fn a_logged_detail_hides_personal_fields_at_any_depth() {
        let detail = serde_json::json!({
            "event_id": "trial_x.purged",
            "trial": { "id": "trial_x", "notes": "n0tes", "applicant": { "email": "a@b.example" } },
        })
        .to_string();
        let logged = redacted_detail(&detail);
        assert!(
            !logged.contains("n0tes") && !logged.contains("a@b.example"),
            "{logged}"
        );
        assert!(logged.contains("trial_x.purged"), "{logged}");
        assert_eq!(redacted_detail("[1]"), "<unreadable>");
    }
}
