//! A trial's timeline: one **entry item per domain event about the trial**, in the trial's own
//! partition (`TRIAL#<trial_id>`, sort key `TL#<at>#<rank>#<event_id>`), written by
//! [`super::Tx::event`] as one more slot of the transaction that writes the event. Every change
//! that writes an event therefore records its entry with no extra round trip, and any event kind
//! (a new one included) gets an entry with no code of its own: `type` is its detail type.
//!
//! **Invariant: an entry exists exactly when its event does** (same transaction; the event's
//! own condition refuses a repeat, so the unconditional entry put cannot be written twice).
//!
//! An entry holds `at` (the write's time, whole seconds; within one second the start comes
//! first, the endings (expired, canceled, converted) last, the rest by event id), `type`, `actor` (the API key id that made the change, `stripe` for the
//! webhook, `job` for the scheduled jobs, `trialctl` for the CLI's own moves) and `details`:
//! the event's detail with only the fields [`crate::telemetry::SAFE_FIELDS`] allows (as a
//! code field allows a code), never the applicant or free text. No TTL: an entry lives as long
//! as its trial; the purge job deletes the entries in the trial's delete transaction and
//! `trial.purged` carries them. `trial.purged` itself has no entry (its partition is gone), nor
//! has `trial.payment_unmatched` (a payment for a trial we do not have).
//!
//! **Bounded** at [`TIMELINE_CAP`] entries: past it, the oldest entries after the first (the
//! start) are not shown and `truncated` counts them; the purge job deletes them before its
//! transaction (nobody reads them), so its transaction holds at most the cap's entries and the
//! trial, guard and event (93 of DynamoDB's 100 items).
//!
//! Cost: one more item per event in the event's transaction (2 write units for an entry under
//! 1 KB, typically ~250 bytes); reading is one consistent `Query` of the trial's partition (the
//! trial item and its entries), one page for a capped timeline.
use aws_sdk_dynamodb::types::{Delete, Put};
use serde_json::{json, Map, Value};

use super::codec::{get_n, get_s, key, n, next_page, s, Item, Values};
use super::schema::{trial_pk, PK, TRIAL_SK};
use super::{Store, StoreError};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::TrialId;
use crate::telemetry::{redact, REDACTED};

/// The most entries a timeline shows (and `trial.purged` carries).
pub const TIMELINE_CAP: usize = 90;
/// The sort-key prefix of entry items.
pub const ENTRY_PREFIX: &str = "TL#";
/// Events that get no entry: `trial.purged` (the partition goes with it) and a payment for a
/// trial we do not have (its `trial_id` may name a purged trial: an entry would outlive it).
const NO_ENTRY: [EventKind; 2] = [EventKind::Purged, EventKind::UnmatchedPayment];
/// The fields of every event's detail that the entry states itself, or that name the trial.
const ENVELOPE: [&str; 4] = ["event_id", "type", "trial_id", "org_id"];

/// One entry, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its sort key: its place in the timeline.
    pub sk: String,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub details: Value,
}

impl Entry {
    /// `{at, type, actor, details}`, as the API shows it and `trial.purged` carries it.
    pub fn view(&self) -> Value {
        json!({
            "at": rfc3339(self.at),
            "type": self.kind,
            "actor": self.actor,
            "details": self.details,
        })
    }

    fn from_item(item: &Item) -> Option<Entry> {
        Some(Entry {
            sk: get_s(item, "sk")?.to_owned(),
            at: get_n(item, "at")?,
            kind: get_s(item, "type")?.to_owned(),
            actor: get_s(item, "actor")?.to_owned(),
            details: serde_json::from_str(get_s(item, "details")?).ok()?,
        })
    }
}

/// A timeline within its cap: the entries shown, oldest first, and how many were dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub entries: Vec<Entry>,
    pub truncated: usize,
}

impl Timeline {
    /// `all` (oldest first) within [`TIMELINE_CAP`]: the first entry and the newest after it;
    /// the second value is the entries dropped in between.
    pub fn capped(mut all: Vec<Entry>) -> (Timeline, Vec<Entry>) {
        if all.len() <= TIMELINE_CAP {
            return (Timeline::of(all, 0), Vec::new());
        }
        let over = all.len() - TIMELINE_CAP;
        let dropped: Vec<Entry> = all.drain(1..=over).collect();
        (Timeline::of(all, over), dropped)
    }

    fn of(entries: Vec<Entry>, truncated: usize) -> Timeline {
        Timeline { entries, truncated }
    }

    /// Up to `limit` entries after the one whose sort key is `after` (from the first when
    /// `None`), and the sort key to continue after when more follow.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (&[Entry], Option<&str>) {
        let from = after.map_or(0, |after| {
            self.entries.partition_point(|e| e.sk.as_str() <= after)
        });
        let to = (from + limit).min(self.entries.len());
        let shown = &self.entries[from..to];
        let next = (to < self.entries.len())
            .then(|| shown.last().map(|e| e.sk.as_str()))
            .flatten();
        (shown, next)
    }

    /// The entries' views, for `trial.purged`.
    pub fn views(&self) -> Vec<Value> {
        self.entries.iter().map(Entry::view).collect()
    }
}

/// The entry's sort key: time (whole seconds, the transactions' clock), then, within one
/// second, the start first and the endings last, then the event id.
fn entry_sk(at: i64, event: &DomainEvent) -> String {
    let rank = match event.kind {
        EventKind::Started => 0,
        EventKind::Expired | EventKind::Canceled | EventKind::Converted => 2,
        _ => 1,
    };
    format!("{ENTRY_PREFIX}{:011}#{rank}#{}", at.max(0), event.id)
}

/// An event detail's allow-listed fields, without the envelope the entry states itself.
pub fn entry_details(detail: &Map<String, Value>) -> Value {
    let Value::Object(mut shown) = redact(&Value::Object(detail.clone())) else {
        return json!({});
    };
    shown.retain(|name, v| !ENVELOPE.contains(&name.as_str()) && v != REDACTED);
    Value::Object(shown)
}

impl Store {
    /// The timeline entry for `event`, made by `actor` at `now`; `None` for an event about no
    /// trial (an org's refused start) and for [`NO_ENTRY`]'s.
    pub fn timeline_put(
        &self,
        event: &DomainEvent,
        now: i64,
        actor: &str,
    ) -> Result<Option<Put>, StoreError> {
        if NO_ENTRY.contains(&event.kind) {
            return Ok(None);
        }
        let Ok(Value::Object(detail)) = serde_json::from_str::<Value>(&event.detail) else {
            return Ok(None);
        };
        let Some(trial) = detail
            .get("trial_id")
            .and_then(Value::as_str)
            .and_then(TrialId::parse)
        else {
            return Ok(None);
        };
        // The CLI's own moves name themselves (`requested_by: trialctl`).
        let actor = match detail.get("requested_by").and_then(Value::as_str) {
            Some(by) if actor == "job" => by,
            _ => actor,
        };
        let mut item = key(trial_pk(&trial), entry_sk(now, event));
        item.insert("at".into(), n(now));
        item.insert("type".into(), s(event.kind.detail_type()));
        item.insert("actor".into(), s(actor));
        item.insert("details".into(), s(entry_details(&detail).to_string()));
        Ok(Some(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()?,
        ))
    }

    /// The delete of one entry (the purge's).
    pub fn timeline_delete(&self, trial: &TrialId, sk: &str) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(trial), sk)))
            .build()?)
    }

    /// The trial item (if any) and every timeline entry of trial `id`, oldest first: one
    /// consistent `Query` of its partition (one page unless the entries pass ~3 000).
    pub async fn trial_and_timeline(
        &self,
        id: &TrialId,
    ) -> Result<(Option<Item>, Vec<Entry>), StoreError> {
        let (mut trial, mut entries, mut start) = (None, Vec::new(), None);
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .set_expression_attribute_values(Values::new().s(":pk", trial_pk(id)).build())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in page.items() {
                match get_s(item, "sk") {
                    Some(TRIAL_SK) => trial = Some(item.clone()),
                    Some(sk) if sk.starts_with(ENTRY_PREFIX) => match Entry::from_item(item) {
                        Some(entry) => entries.push(entry),
                        None => tracing::error!("timeline entry that does not decode: skipped"),
                    },
                    _ => {}
                }
            }
            match next_page(page.last_evaluated_key) {
                Some(key) => start = Some(key),
                None => return Ok((trial, entries)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> Entry {
        Entry {
            sk: format!("{ENTRY_PREFIX}{i:011}#1#e{i}"),
            at: i as i64,
            kind: "trial.paused".into(),
            actor: "job".into(),
            details: json!({}),
        }
    }

    #[test]
    fn past_the_cap_the_oldest_after_the_start_are_dropped_and_counted() {
        let all: Vec<Entry> = (0..TIMELINE_CAP + 5).map(entry).collect();
        let (timeline, dropped) = Timeline::capped(all.clone());
        assert_eq!(timeline.entries.len(), TIMELINE_CAP);
        assert_eq!(timeline.truncated, 5);
        assert_eq!(timeline.entries[0], all[0], "the start stays");
        assert_eq!(timeline.entries[1], all[6]);
        assert_eq!(dropped, all[1..6].to_vec());
        let (within, none) = Timeline::capped(all[..TIMELINE_CAP].to_vec());
        assert_eq!((within.entries.len(), within.truncated), (TIMELINE_CAP, 0));
        assert!(none.is_empty());
    }

    #[test]
    fn pages_continue_after_the_cursor_and_end_without_one() {
        let (timeline, _) = Timeline::capped((0..5).map(entry).collect());
        let (first, next) = timeline.page(None, 2);
        assert_eq!(first, &timeline.entries[..2]);
        assert_eq!(next, Some(timeline.entries[1].sk.as_str()));
        let (second, next) = timeline.page(next, 3);
        assert_eq!(second, &timeline.entries[2..]);
        assert_eq!(next, None);
        let (past, next) = timeline.page(Some("TL#~"), 3);
        assert!(past.is_empty() && next.is_none());
    }

    #[test]
    fn an_entry_for_each_event_about_a_trial_and_none_otherwise() {
        // Building the request sends nothing: a client with no endpoint is enough.
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let store = Store::new(client, "trials", 1);
        let trial = "trial_0123456789abcdef01234567";
        let event = |kind: &str, detail: Value| {
            DomainEvent::from_parts(format!("{trial}.x"), kind, detail.to_string()).unwrap()
        };
        let about = json!({ "trial_id": trial, "requested_by": "trialctl", "notes": "n" });
        let put = store
            .timeline_put(&event("trial.extended", about.clone()), 7, "job")
            .unwrap()
            .expect("an entry");
        let item = put.item();
        assert_eq!(get_s(item, "pk"), Some(format!("TRIAL#{trial}").as_str()));
        assert_eq!(
            get_s(item, "sk"),
            Some(format!("TL#00000000007#1#{trial}.x").as_str())
        );
        // The CLI names itself; a key's id given by the request wins.
        assert_eq!(get_s(item, "actor"), Some("trialctl"));
        let by_key = store.timeline_put(&event("trial.extended", about.clone()), 7, "k1");
        assert_eq!(get_s(by_key.unwrap().unwrap().item(), "actor"), Some("k1"));
        assert_eq!(
            get_s(item, "details"),
            Some(r#"{"requested_by":"trialctl"}"#)
        );
        assert_eq!(put.condition_expression(), None);
        for (kind, detail) in [
            ("trial.purged", about.clone()),
            ("trial.payment_unmatched", about),
            ("trial.blocked", json!({ "org_id": "org_a" })),
        ] {
            let none = store.timeline_put(&event(kind, detail), 7, "job").unwrap();
            assert!(none.is_none(), "{kind}");
        }
    }

    #[test]
    fn details_keep_allow_listed_fields_only() {
        let detail = json!({
            "event_id": "e", "type": "trial.started", "trial_id": "t", "org_id": "o",
            "plan": "pro", "expires_at": "2026-01-01T00:00:00Z",
            "applicant": { "email": "a@b.example" }, "reason": "Ada asked", "notes": "n",
        });
        let Value::Object(detail) = detail else {
            unreachable!()
        };
        assert_eq!(
            entry_details(&detail),
            json!({ "plan": "pro", "expires_at": "2026-01-01T00:00:00Z" })
        );
    }
}
