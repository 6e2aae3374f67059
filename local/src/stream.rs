//! The event source mapping, emulated on the embedded dynoxide's stream: what AWS Lambda does
//! for the `publish` function in the cloud, `trials-local` (and the tests) do here.
//!
//! Like the mapping: records are read in order from the table's one shard, filtered on INSERTs
//! of `EVENT#` items, handed to the same publisher code (`trials::publish::stream::handle`,
//! which also counts the funnel events into the table's counters) in Lambda's event shape, 10 at a time; when some are reported failed, reading resumes from the
//! first failed record (at least once: later records of that batch are delivered again).
//!
//! The position (the last sequence number fully handled) is checkpointed in a file under the
//! data directory after every batch, so killing `trials-local` between a commit and the stream
//! read loses no event: the next start resumes after the checkpoint.
use std::path::PathBuf;

use dynoxide::actions::describe_stream::DescribeStreamRequest;
use dynoxide::actions::get_records::GetRecordsRequest;
use dynoxide::actions::get_shard_iterator::GetShardIteratorRequest;
use dynoxide::actions::list_streams::ListStreamsRequest;
use serde_json::{json, Value};
use trials::publish::Publisher;
use trials::store::schema::EVENT_PREFIX;
use trials::store::Store;

/// The mapping's batch size.
pub const BATCH_SIZE: usize = 10;
/// The checkpoint file's name in the data directory.
pub const CHECKPOINT_FILE: &str = "stream-checkpoint";

/// What one pass over the stream did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Events the publisher accepted.
    pub published: usize,
    /// Events reported failed (read again on the next pass).
    pub failed: usize,
}

pub struct StreamReader {
    db: dynoxide::Database,
    table: String,
    checkpoint: Option<PathBuf>,
    /// The last sequence number handled; `None`: from the start of the stream.
    position: Option<String>,
}

impl StreamReader {
    /// A reader of `table`'s stream, resuming from `checkpoint` (a file) when it exists.
    pub fn new(db: dynoxide::Database, table: &str, checkpoint: Option<PathBuf>) -> StreamReader {
        let position = checkpoint
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        StreamReader {
            db,
            table: table.to_owned(),
            checkpoint,
            position,
        }
    }

    /// The last sequence number handled.
    pub fn position(&self) -> Option<&str> {
        self.position.as_deref()
    }

    /// Reads every record written since the position, counts the funnel events among them into
    /// `store` and publishes the events, [`BATCH_SIZE`] at a time. Stops at the first batch with a failure: the position stays
    /// just before its first failed record, where the next pass starts.
    pub async fn pump(&mut self, publisher: &Publisher, store: &Store) -> Result<Pumped, String> {
        let records = self.read_new().await?;
        let events: Vec<usize> = (0..records.len())
            .filter(|&i| is_event_insert(&records[i].1))
            .collect();
        let mut pumped = Pumped::default();
        for (n, chunk) in events.chunks(BATCH_SIZE).enumerate() {
            let batch: Vec<Value> = chunk.iter().map(|&i| records[i].1.clone()).collect();
            let result =
                trials::publish::stream::handle(publisher, store, &json!({ "Records": batch }))
                    .await;
            pumped.published += result.published;
            pumped.failed += result.failed_sequence_numbers.len();
            let failed = chunk
                .iter()
                .find(|&&i| result.failed_sequence_numbers.contains(&records[i].0));
            if let Some(&first_failed) = failed {
                if first_failed > 0 {
                    self.advance(records[first_failed - 1].0.clone())?;
                }
                return Ok(pumped);
            }
            // Handled up to the record before the next batch's first event (filtered-out
            // records between them need no delivery).
            let upto = events
                .get((n + 1) * BATCH_SIZE)
                .map_or(records.len(), |&next| next);
            self.advance(records[upto - 1].0.clone())?;
        }
        if events.is_empty() {
            if let Some((last, _)) = records.last() {
                self.advance(last.clone())?;
            }
        }
        Ok(pumped)
    }

    fn advance(&mut self, seq: String) -> Result<(), String> {
        if let Some(path) = &self.checkpoint {
            // Write then rename: a crash mid-write leaves the old checkpoint, never half of one.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &seq)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| format!("stream checkpoint {}: {e}", path.display()))?;
        }
        self.position = Some(seq);
        Ok(())
    }

    /// Every record after the position, in order, as Lambda's record JSON.
    async fn read_new(&self) -> Result<Vec<(String, Value)>, String> {
        let db = self.db.clone();
        let table = self.table.clone();
        let position = self.position.clone();
        tokio::task::spawn_blocking(move || read_records(&db, &table, position))
            .await
            .map_err(|e| format!("stream reader task: {e}"))?
    }
}

fn is_event_insert(record: &Value) -> bool {
    record["eventName"] == "INSERT"
        && record["dynamodb"]["Keys"]["pk"]["S"]
            .as_str()
            .is_some_and(|pk| pk.starts_with(EVENT_PREFIX))
}

/// Every record of `table`'s stream after `position` (from the start: `None`), in order, as
/// Lambda's record JSON with its sequence number. Synchronous: call it off the runtime.
pub fn read_records(
    db: &dynoxide::Database,
    table: &str,
    position: Option<String>,
) -> Result<Vec<(String, Value)>, String> {
    let err = |what: &str, e: dynoxide::errors::DynoxideError| format!("{what}: {e}");
    let streams = db
        .list_streams(ListStreamsRequest {
            table_name: Some(table.to_owned()),
            ..Default::default()
        })
        .map_err(|e| err("ListStreams", e))?;
    let Some(stream) = streams.streams.first() else {
        return Err(format!("table {table} has no stream"));
    };
    let described = db
        .describe_stream(DescribeStreamRequest {
            stream_arn: stream.stream_arn.clone(),
            exclusive_start_shard_id: None,
            limit: None,
        })
        .map_err(|e| err("DescribeStream", e))?;
    let mut out = Vec::new();
    for shard in &described.stream_description.shards {
        let (kind, seq) = match &position {
            Some(seq) => ("AFTER_SEQUENCE_NUMBER", Some(seq.clone())),
            None => ("TRIM_HORIZON", None),
        };
        let mut iterator = db
            .get_shard_iterator(GetShardIteratorRequest {
                stream_arn: stream.stream_arn.clone(),
                shard_id: shard.shard_id.clone(),
                shard_iterator_type: kind.to_owned(),
                sequence_number: seq,
            })
            .map_err(|e| err("GetShardIterator", e))?
            .shard_iterator;
        while let Some(it) = iterator {
            let page = db
                .get_records(GetRecordsRequest {
                    shard_iterator: it,
                    limit: Some(1000),
                })
                .map_err(|e| err("GetRecords", e))?;
            if page.records.is_empty() {
                break;
            }
            for record in page.records {
                let seq = record.dynamodb.sequence_number.clone();
                let value = serde_json::to_value(&record).map_err(|e| e.to_string())?;
                out.push((seq, value));
            }
            iterator = page.next_shard_iterator;
        }
    }
    Ok(out)
}

/// Runs dynoxide's TTL sweep (DynamoDB's TTL deletes expired items by itself; dynoxide only
/// when asked), so expired idempotency records and event items really go away locally.
pub async fn sweep_ttl(db: &dynoxide::Database) -> Result<usize, String> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.sweep_ttl())
        .await
        .map_err(|e| format!("TTL sweep task: {e}"))?
        .map_err(|e| format!("TTL sweep: {e}"))
}
