//! The `publish` function's work: a batch of DynamoDB stream records (Lambda's event shape, or
//! `trials-local`'s emulation of it) in, one `PutEvents` out, and the records whose events
//! EventBridge did not accept reported as batch item failures (`ReportBatchItemFailures`: the
//! mapping retries from the first failed sequence number).
//!
//! A record that is not an INSERT of an event item (the mapping's filter lets none through, but
//! an emulator or a changed filter might) is passed over; an event item that does not decode is
//! logged at ERROR and passed over too, rather than blocking the shard for a day: it stays in
//! the table for `trialctl events replay`.
use serde_json::{json, Map, Value};

use super::Publisher;
use crate::domain::events::DomainEvent;
use crate::store::schema::EVENT_PREFIX;

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

/// Publishes the events of a batch; the records whose events were not accepted come back.
pub async fn handle(publisher: &Publisher, event: &Value) -> BatchResult {
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
    let accepted = publisher.publish(&events).await;
    let mut result = BatchResult::default();
    for (event, seq) in events.iter().zip(sequences) {
        if accepted.contains(&event.id) {
            result.published += 1;
        } else {
            result.failed_sequence_numbers.push(seq);
        }
    }
    if !result.failed_sequence_numbers.is_empty() {
        tracing::warn!(
            failed = result.failed_sequence_numbers.len(),
            published = result.published,
            "events not accepted by EventBridge: reported for redelivery"
        );
    }
    result
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
