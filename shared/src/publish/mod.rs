//! Publishing domain events to EventBridge, from the table's DynamoDB stream.
//!
//! Mutations never call EventBridge: they write their event item in their transaction
//! ([`crate::store::events`]) and answer. The stream carries each INSERT of an `EVENT#` item to
//! the `publish` function (an event source mapping: batches of 10, failed entries reported as
//! batch item failures, retried until the record expires, then an SQS on-failure destination);
//! [`stream::handle`] turns a batch into one `PutEvents`. `trials-local` emulates the mapping on
//! the embedded store's stream, and `trialctl events replay` republishes from the table.
//!
//! Delivery is at least once: a record delivered twice is published twice. Consumers dedupe on
//! the event's `event_id` (deterministic: subject + transition).
pub mod publisher;
pub mod stream;

pub use publisher::Publisher;
