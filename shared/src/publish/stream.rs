//! The `publish` function's work: a batch of DynamoDB stream records (Lambda's event shape, or
//! `trials-local`'s emulation of it) in, one `PutEvents` out, and the records whose events
//! EventBridge did not accept reported as batch item failures (`ReportBatchItemFailures`: the
//! mapping retries from the first failed sequence number).
//!
//! Before publishing, the batch's funnel events (`trial.started`, `converted`, `expired`,
//! `canceled`, `purged`) are counted into the funnel counters ([`crate::store::stats`]), each
//! exactly once however often its record is delivered ([`Store::count_once`]); a record whose
//! count failed (a store error) is reported as a batch item failure like one EventBridge
//! refused, so the mapping delivers it again. Cost: one small transaction per funnel event,
//! the batch's counts sent concurrently.
//!
//! Alongside, each trial the batch's events add a timeline entry to (but a start's) has its
//! stored timeline trimmed to the cap ([`Store::trim_timeline`]: a keys-only `Query`, and a
//! transaction only past the cap), so no request pays for it; a failed trim is reported for
//! redelivery like a failed count (a trim is idempotent).
//!
//! A record that is not an INSERT of an event item (the mapping's filter lets none through, but
//! an emulator or a changed filter might) is passed over; an event item that does not decode is
//! logged at ERROR and passed over too, rather than blocking the shard for a day: it stays in
//! the table for `trialctl events replay`.
use serde_json::{json, Map, Value};

use super::Publisher;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::parse_rfc3339;
use crate::domain::TrialId;
use crate::store::schema::EVENT_PREFIX;
use crate::store::stats::{Count, Stage};
use crate::store::timeline::trim_target;
use crate::store::Store;

/// One stream record, as far as publishing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `dynamodb.SequenceNumber`: what a batch item failure names.
    pub sequence_number: String,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An event item was inserted: publish it.
    Event(DomainEvent),
    /// Anything else (another item, a MODIFY or REMOVE, a TTL deletion).
    Other,
    /// An event item whose image does not decode.
    Malformed(String),
}

/// Reads the records of a Lambda DynamoDB stream event (`{"Records": [...]}`).
pub fn records(event: &Value) -> Vec<Record> {
    event
        .get("Records")
        .and_then(Value::as_array)
        .map(|records| records.iter().map(record).collect())
        .unwrap_or_default()
}

fn record(raw: &Value) -> Record {
    let dynamodb = &raw["dynamodb"];
    let sequence_number = dynamodb["SequenceNumber"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = dynamodb["Keys"]["pk"]["S"].as_str().unwrap_or_default();
    let content = if raw["eventName"] != "INSERT" || !key.starts_with(EVENT_PREFIX) {
        Content::Other
    } else {
        match dynamodb["NewImage"].as_object().and_then(event_from_image) {
            Some(event) => Content::Event(event),
            None => Content::Malformed(key.to_owned()),
        }
    };
    Record {
        sequence_number,
        content,
    }
}

/// An event item's stream image (attribute values in DynamoDB JSON: `{"S": "..."}`).
fn event_from_image(image: &Map<String, Value>) -> Option<DomainEvent> {
    let text = |name: &str| image.get(name)?.get("S")?.as_str();
    DomainEvent::from_parts(
        text("event_id")?.to_owned(),
        text("detail_type")?,
        text("detail")?.to_owned(),
    )
}

/// What the function answers: the records to deliver again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    pub published: usize,
    pub failed_sequence_numbers: Vec<String>,
}

impl BatchResult {
    /// Lambda's `StreamsEventResponse`: `{"batchItemFailures": [{"itemIdentifier": seq}]}`.
    pub fn response(&self) -> Value {
        let failures: Vec<Value> = self
            .failed_sequence_numbers
            .iter()
            .map(|seq| json!({ "itemIdentifier": seq }))
            .collect();
        json!({ "batchItemFailures": failures })
    }
}

/// Counts the funnel events of a batch, then publishes its events; the records whose events
/// were not counted or not accepted come back.
pub async fn handle(publisher: &Publisher, store: &Store, event: &Value) -> BatchResult {
    let records = records(event);
    let mut events = Vec::new();
    let mut sequences = Vec::new();
    for record in &records {
        match &record.content {
            Content::Event(e) => {
                events.push(e.clone());
                sequences.push(record.sequence_number.clone());
            }
            Content::Other => {}
            Content::Malformed(key) => tracing::error!(
                key = %key,
                sequence_number = %record.sequence_number,
                "event item that does not decode: not published (replay it once mended)"
            ),
        }
    }
    let (counted, trimmed) =
        tokio::join!(count_funnel(store, &events), trim_timelines(store, &events));
    let accepted = publisher.publish(&events).await;
    let mut result = BatchResult::default();
    let done = counted.into_iter().zip(trimmed).map(|(c, t)| c && t);
    for ((event, seq), done) in events.iter().zip(sequences).zip(done) {
        if done && accepted.contains(&event.id) {
            result.published += 1;
        } else {
            result.failed_sequence_numbers.push(seq);
        }
    }
    if !result.failed_sequence_numbers.is_empty() {
        tracing::warn!(
            failed = result.failed_sequence_numbers.len(),
            published = result.published,
            "events not counted, not trimmed or not accepted by EventBridge: reported for redelivery"
        );
    }
    result
}

/// Whether each event's trial has its timeline within the cap now ([`Store::trim_timeline`],
/// once per trial of the batch, concurrently): `false` only for a store failure, which the
/// caller reports for redelivery (a trim is idempotent, so running it again is safe).
async fn trim_timelines(store: &Store, events: &[DomainEvent]) -> Vec<bool> {
    let mut trials: Vec<TrialId> = events.iter().filter_map(trim_target).collect();
    trials.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    trials.dedup();
    let mut trimming = tokio::task::JoinSet::new();
    for trial in trials {
        let store = store.clone();
        trimming.spawn(async move { (store.trim_timeline(&trial).await, trial) });
    }
    let mut failed: Vec<TrialId> = Vec::new();
    while let Some(joined) = trimming.join_next().await {
        match joined {
            Ok((Ok(_), _)) => {}
            Ok((Err(e), trial)) => {
                tracing::warn!(trial_id = %trial, error = %e, "timeline trim failed: redelivery");
                failed.push(trial);
            }
            Err(e) => {
                tracing::error!(error = %e, "timeline trim task failed");
                return vec![false; events.len()];
            }
        }
    }
    events
        .iter()
        .map(|e| trim_target(e).is_none_or(|t| !failed.contains(&t)))
        .collect()
}

/// The funnel count an event stands for: `None` for an event the funnel does not count. A
/// usage-limit ending is a `trial.expired` like the job's, and counts as expired.
pub fn funnel_count(event: &DomainEvent) -> Option<Result<Count, String>> {
    let stage = match event.kind {
        EventKind::Started => Stage::Started,
        EventKind::Converted => Stage::Converted,
        EventKind::Expired => Stage::Expired,
        EventKind::Canceled => Stage::Canceled,
        EventKind::Purged => Stage::Purged,
        EventKind::FirstPayment => Stage::Paid,
        EventKind::SubscriptionLapsed => Stage::Lapsed,
        EventKind::Activated => Stage::Activated,
        EventKind::Downgraded => Stage::Downgraded,
        _ => return None,
    };
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or_default();
    let text = |name: &str| detail.get(name).and_then(Value::as_str);
    let count = (|| {
        Some(Count {
            event_id: event.id.clone(),
            stage,
            plan: text("plan")?.to_owned(),
            trial_id: text("trial_id")?.to_owned(),
            at: parse_rfc3339(text("occurred_at")?)?,
            started_at: text("started_at").and_then(parse_rfc3339),
            // A first payment delivered after the lapse it revokes (Stripe's order is not the
            // delivery order): the lapse counted is taken back, on the same day's counter.
            undo: (detail.get("lapse_revoked") == Some(&Value::Bool(true)))
                .then_some(Stage::Lapsed),
        })
    })();
    Some(count.ok_or_else(|| format!("{} has no plan, trial_id or occurred_at", event.id)))
}

/// Whether each event is counted now (or was before, or is not a funnel event): `false` only
/// for a store failure, which the caller reports for redelivery. The counts go out
/// concurrently: each is its own transaction on its own items.
async fn count_funnel(store: &Store, events: &[DomainEvent]) -> Vec<bool> {
    let mut counting = tokio::task::JoinSet::new();
    for (i, event) in events.iter().enumerate() {
        match funnel_count(event) {
            None => {}
            // Not countable, ever: counting it again would not help, so it is not retried.
            Some(Err(why)) => tracing::error!(%why, "funnel event without its fields: not counted"),
            Some(Ok(count)) => {
                let store = store.clone();
                counting.spawn(async move { (i, store.count_once(&count, count.at).await) });
            }
        }
    }
    let mut ok = vec![true; events.len()];
    while let Some(joined) = counting.join_next().await {
        let (i, outcome) = match joined {
            Ok(done) => done,
            Err(e) => {
                // A panicked count: which one is unknown, so the whole batch goes again (the
                // markers keep the counted ones from counting twice).
                tracing::error!(error = %e, "funnel count task failed");
                return vec![false; events.len()];
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(event_id = %events[i].id, error = %e, "funnel count failed: redelivery");
            ok[i] = false;
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(seq: &str, pk: &str, image: Value) -> Value {
        json!({
            "eventName": "INSERT",
            "dynamodb": { "Keys": { "pk": { "S": pk } }, "NewImage": image, "SequenceNumber": seq }
        })
    }

    #[test]
    fn only_inserted_event_items_are_events() {
        let image = json!({
            "event_id": { "S": "trial_x.started" },
            "detail_type": { "S": "trial.started" },
            "detail": { "S": "{}" },
        });
        let batch = json!({ "Records": [
            insert("1", "EVENT#trial_x.started", image.clone()),
            insert("2", "TRIAL#trial_x", image.clone()),
            { "eventName": "REMOVE", "dynamodb": { "Keys": { "pk": { "S": "EVENT#a" } }, "SequenceNumber": "3" } },
            insert("4", "EVENT#broken", json!({ "event_id": { "S": "x" } })),
        ]});
        let read = records(&batch);
        assert_eq!(read.len(), 4);
        assert!(matches!(&read[0].content, Content::Event(e) if e.id == "trial_x.started"));
        assert_eq!(read[1].content, Content::Other);
        assert_eq!(read[2].content, Content::Other);
        assert_eq!(read[3].content, Content::Malformed("EVENT#broken".into()));
        assert_eq!(read[3].sequence_number, "4");
    }

    fn event(id: &str, detail_type: &str, detail: Value) -> DomainEvent {
        DomainEvent::from_parts(id.into(), detail_type, detail.to_string()).unwrap()
    }

    #[test]
    fn funnel_events_map_to_their_stage_and_others_count_nothing() {
        let base = json!({ "trial_id": "trial_x", "plan": "growth", "occurred_at": "2026-04-07T10:00:00Z" });
        let with = |extra: Value| {
            let mut d = base.clone();
            d.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            d
        };
        let count =
            |e: &DomainEvent| funnel_count(e).map(|c| c.map(|c| (c.stage, c.at, c.started_at)));
        let day2 = 1_775_469_600 + 86_400;
        assert_eq!(
            count(&event("a", "trial.started", base.clone())),
            Some(Ok((Stage::Started, day2, None)))
        );
        // A usage-limit ending is an expiry like the job's (issue 26 item 9c).
        let limit = with(json!({ "expiry_reason": "limit_reached" }));
        assert_eq!(
            count(&event("b", "trial.expired", limit))
                .unwrap()
                .unwrap()
                .0,
            Stage::Expired
        );
        let converted = with(json!({ "started_at": "2026-04-06T10:00:00Z" }));
        assert_eq!(
            count(&event("c", "trial.converted", converted)),
            Some(Ok((Stage::Converted, day2, Some(1_775_469_600))))
        );
        assert_eq!(
            count(&event("d", "trial.canceled", base.clone()))
                .unwrap()
                .unwrap()
                .0,
            Stage::Canceled
        );
        assert_eq!(
            count(&event("e", "trial.purged", base.clone()))
                .unwrap()
                .unwrap()
                .0,
            Stage::Purged
        );
        assert_eq!(count(&event("f", "trial.paused", base.clone())), None);
        assert_eq!(count(&event("g", "trial.limit_reached", base)), None);
        assert!(matches!(
            count(&event("h", "trial.started", json!({}))),
            Some(Err(_))
        ));
    }

    #[test]
    fn failures_are_reported_by_sequence_number() {
        let result = BatchResult {
            published: 1,
            failed_sequence_numbers: vec!["7".into()],
        };
        assert_eq!(
            result.response(),
            json!({ "batchItemFailures": [{ "itemIdentifier": "7" }] })
        );
        assert_eq!(
            BatchResult::default().response(),
            json!({ "batchItemFailures": [] })
        );
    }
}
