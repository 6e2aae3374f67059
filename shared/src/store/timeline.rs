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
//! start) are not shown and `truncated` counts them. They are not kept either:
//! [`Store::trim_timeline`], which `publish` runs for the trial of every event it handles
//! (the stream sees each event item INSERT, so no request pays for it), deletes the entries
//! past the cap and adds their number to the trial item's [`TIMELINE_DROPPED`], in one
//! transaction whose deletes are conditioned on each entry still being there: a redelivered
//! record or two concurrent runs delete and count each entry once. **Stored bound**: a trial
//! partition holds at most `TIMELINE_CAP` entries once `publish` has handled its events, and
//! between, at most one more per event not yet published. `truncated` is the stored count plus
//! any entries past the cap not trimmed yet. The purge job deletes what is left past the cap
//! before its transaction (nobody reads them), so its transaction holds at most the cap's
//! entries and the trial, guard and event (93 of DynamoDB's 100 items).
//!
//! Cost: one more item per event in the event's transaction (2 write units for an entry under
//! 1 KB, typically ~250 bytes); reading is one consistent `Query` of the trial's partition (the
//! trial item and its entries), one page for a capped timeline. The trim: one consistent
//! keys-only `Query` (~80 bytes an entry: ≤ 2 read units) per trial per stream batch, and a
//! transaction only for a trial past the cap (usually one entry and the trial's count).
use aws_sdk_dynamodb::types::{Delete, Put, Update};
use serde_json::{json, Map, Value};

use super::codec::{get_n, get_s, key, n, next_page, s, Item, Values};
use super::schema::{trial_pk, PK, SK, TRIAL_SK};
use super::{Outcome, Slot, Store, StoreError};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::TrialId;
use crate::telemetry::{redact, REDACTED};

/// The most entries a timeline shows (and `trial.purged` carries).
pub const TIMELINE_CAP: usize = 90;
/// The sort-key prefix of entry items.
pub const ENTRY_PREFIX: &str = "TL#";
/// The trial item's count of entries [`Store::trim_timeline`] deleted past the cap.
pub const TIMELINE_DROPPED: &str = "timeline_dropped";
/// The most entries one trim transaction deletes (with the trial's count: 100 items).
const TRIM_BATCH: usize = 99;
/// Trims begun again after a concurrent one deleted some of the same entries first.
const TRIM_ATTEMPTS: usize = 3;
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

    /// [`Timeline::capped`] for the trial item `trial` (as read with `all`): `truncated` also
    /// counts the entries already trimmed ([`TIMELINE_DROPPED`]).
    pub fn of_trial(trial: Option<&Item>, all: Vec<Entry>) -> (Timeline, Vec<Entry>) {
        let (mut timeline, dropped) = Timeline::capped(all);
        let trimmed = trial.and_then(|item| get_n(item, TIMELINE_DROPPED));
        timeline.truncated += usize::try_from(trimmed.unwrap_or(0)).unwrap_or(0);
        (timeline, dropped)
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

/// The trial whose timeline gets `event`'s entry, and the event's detail; `None` for an event
/// about no trial (an org's refused start) and for [`NO_ENTRY`]'s.
fn entry_of(event: &DomainEvent) -> Option<(TrialId, Map<String, Value>)> {
    if NO_ENTRY.contains(&event.kind) {
        return None;
    }
    let Ok(Value::Object(detail)) = serde_json::from_str::<Value>(&event.detail) else {
        return None;
    };
    let trial = detail
        .get("trial_id")
        .and_then(Value::as_str)
        .and_then(TrialId::parse)?;
    Some((trial, detail))
}

/// The trial whose timeline may be past its cap once `event`'s entry is in: the trial the
/// entry is about, unless it is the start's (a trial's first entry).
pub fn trim_target(event: &DomainEvent) -> Option<TrialId> {
    let (trial, _) = entry_of(event).filter(|_| event.kind != EventKind::Started)?;
    Some(trial)
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
        let Some((trial, detail)) = entry_of(event) else {
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

    /// Deletes trial `id`'s entries past [`TIMELINE_CAP`] (the oldest after the first, as
    /// [`Timeline::capped`] drops them) and counts them in the trial's [`TIMELINE_DROPPED`]:
    /// each transaction deletes up to [`TRIM_BATCH`] entries, each conditioned on being there,
    /// and adds their number, so no entry is counted twice (a concurrent trim that deleted one
    /// first makes ours fail whole; it reads again and goes on). Nothing for a trial within the
    /// cap or gone (the purge deletes its entries). Answers how many entries it deleted.
    pub async fn trim_timeline(&self, id: &TrialId) -> Result<usize, StoreError> {
        let mut trimmed = 0;
        for _ in 0..TRIM_ATTEMPTS {
            let keys = self.timeline_keys(id).await?;
            let over = keys.len().saturating_sub(TIMELINE_CAP);
            if over == 0 {
                return Ok(trimmed);
            }
            let mut raced = false;
            for chunk in keys[1..=over].chunks(TRIM_BATCH) {
                let mut tx = self
                    .tx()
                    .update(Slot::Trial, self.dropped_update(id, chunk.len())?);
                for sk in chunk {
                    let mut delete = self.timeline_delete(id, sk)?;
                    delete.condition_expression = Some("attribute_exists(sk)".into());
                    tx = tx.delete(Slot::Timeline, delete);
                }
                match tx.commit().await? {
                    Outcome::Committed => trimmed += chunk.len(),
                    // The trial is gone: its entries are the purge's.
                    Outcome::Rejected(r) if r.failed(Slot::Trial) => return Ok(trimmed),
                    Outcome::Rejected(_) => {
                        raced = true;
                        break;
                    }
                }
            }
            if !raced {
                return Ok(trimmed);
            }
        }
        Err(StoreError::Unavailable(format!(
            "timeline trim of {id} kept meeting concurrent trims"
        )))
    }

    /// `TIMELINE_DROPPED += count` on trial `id`'s item, if it exists.
    fn dropped_update(&self, id: &TrialId, count: usize) -> Result<Update, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .update_expression(format!("ADD {TIMELINE_DROPPED} :count"))
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_values(Values::new().n(":count", count as i64).build())
            .build()?)
    }

    /// The sort keys of trial `id`'s entries, oldest first: one consistent keys-only `Query`.
    async fn timeline_keys(&self, id: &TrialId) -> Result<Vec<String>, StoreError> {
        let items = self.partition(id, Some(ENTRY_PREFIX), Some(SK)).await?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, SK))
            .map(str::to_owned)
            .collect())
    }

    /// The trial item (if any) and every timeline entry of trial `id`, oldest first: one
    /// consistent `Query` of its partition (one page unless the entries pass ~3 000).
    pub async fn trial_and_timeline(
        &self,
        id: &TrialId,
    ) -> Result<(Option<Item>, Vec<Entry>), StoreError> {
        let (mut trial, mut entries) = (None, Vec::new());
        for item in self.partition(id, None, None).await? {
            match get_s(&item, SK) {
                Some(TRIAL_SK) => trial = Some(item),
                Some(sk) if sk.starts_with(ENTRY_PREFIX) => match Entry::from_item(&item) {
                    Some(entry) => entries.push(entry),
                    None => tracing::error!("timeline entry that does not decode: skipped"),
                },
                _ => {}
            }
        }
        Ok((trial, entries))
    }

    /// The items of trial `id`'s partition (those whose sort key starts with `prefix`, if
    /// given), in sort-key order, with only `projection`'s attributes if given: one consistent
    /// `Query`, every page.
    async fn partition(
        &self,
        id: &TrialId,
        prefix: Option<&str>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut values = Values::new().s(":pk", trial_pk(id));
        let mut condition = "#pk = :pk".to_owned();
        if let Some(prefix) = prefix {
            values = values.s(":prefix", prefix);
            condition.push_str(" AND begins_with(#sk, :prefix)");
        }
        let values = values.build();
        let (mut items, mut start) = (Vec::new(), None);
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .expression_attribute_names("#pk", PK)
                .set_projection_expression(projection.map(str::to_owned))
                .set_expression_attribute_values(values.clone());
            if prefix.is_some() {
                query = query.expression_attribute_names("#sk", SK);
            }
            let page = query
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            items.extend(page.items().iter().cloned());
            match next_page(page.last_evaluated_key) {
                Some(key) => start = Some(key),
                None => return Ok(items),
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
