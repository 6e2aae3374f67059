//! What the console reads beside the API: the table as an operator tool reads it (one paginated
//! `Scan`, capped at [`MAX_ITEMS`]; never on a request path of the service) and what the local
//! job timer recorded of its runs.
//!
//! The API has no route listing trials, sessions waiting to be expired or unmatched payments
//! (the service never needs one), and `trialctl` lists none either; a local console may afford
//! a scan of a laptop's table. Each page is classified into the few item kinds the console
//! shows and the rest dropped, so memory holds the kept items only.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use trials::domain::Trial;
use trials::jobs::RunReport;
use trials::store::codec::{get_n, get_s, Item};
use trials::store::schema::{EVENT_SK, SESSION_EXPIRY_SK, SK, TRIAL_SK};
use trials::store::trials::trial_from_item;
use trials::store::{Store, StoreError};

/// The most items one scan reads before it stops (and says so).
pub const MAX_ITEMS: usize = 50_000;
/// Job runs kept in memory.
pub const KEPT_RUNS: usize = 30;

/// A domain event item as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub created_at: i64,
    pub detail_type: String,
    pub detail: Value,
}

/// A Checkout Session a canceled trial left open, waiting for the expire job.
#[derive(Debug, Clone)]
pub struct SessionToExpire {
    pub session_id: String,
    pub trial_id: String,
    pub session_expires_at: i64,
    pub attempts: i64,
    pub due_at: i64,
}

/// The table's items the console shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub trials: Vec<Trial>,
    pub events: Vec<StoredEvent>,
    pub sessions: Vec<SessionToExpire>,
    /// The scan stopped at [`MAX_ITEMS`].
    pub truncated: bool,
}

impl Snapshot {
    /// Scans the table; only trial, event and session-expiry items are kept.
    pub async fn read(store: &Store) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let mut read = 0usize;
        let mut start: Option<Item> = None;
        loop {
            let out = store
                .client()
                .scan()
                .table_name(store.table_name())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items() {
                snapshot.keep(item)?;
            }
            read += out.items().len();
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && read < MAX_ITEMS => start = Some(key),
                Some(key) if !key.is_empty() => {
                    snapshot.truncated = true;
                    break;
                }
                _ => break,
            }
        }
        snapshot
            .trials
            .sort_by_key(|t| std::cmp::Reverse(t.started_at));
        snapshot.events.sort_by_key(|e| e.created_at);
        Ok(snapshot)
    }

    fn keep(&mut self, item: &Item) -> Result<(), StoreError> {
        match get_s(item, SK) {
            Some(TRIAL_SK) => self.trials.push(trial_from_item(item)?),
            Some(EVENT_SK) => self.events.push(StoredEvent {
                created_at: get_n(item, "created_at").unwrap_or(0),
                detail_type: get_s(item, "detail_type").unwrap_or("-").to_owned(),
                detail: get_s(item, "detail")
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null),
            }),
            Some(SESSION_EXPIRY_SK) => self.sessions.push(SessionToExpire {
                session_id: get_s(item, "session_id").unwrap_or("-").to_owned(),
                trial_id: get_s(item, "trial_id").unwrap_or("-").to_owned(),
                session_expires_at: get_n(item, "session_expires_at").unwrap_or(0),
                attempts: get_n(item, "attempts").unwrap_or(0),
                due_at: get_n(item, "due_at").unwrap_or(0),
            }),
            _ => {}
        }
        Ok(())
    }

    /// The events naming trial `id`, oldest first.
    pub fn events_of(&self, id: &str) -> Vec<&StoredEvent> {
        self.events
            .iter()
            .filter(|e| e.detail["trial_id"].as_str() == Some(id))
            .collect()
    }

    /// Payments the webhook could not match to a trial (`trial.payment_unmatched`, kept as long
    /// as event items are: a week).
    pub fn unmatched_payments(&self) -> Vec<&StoredEvent> {
        self.events
            .iter()
            .filter(|e| e.detail_type == "trial.payment_unmatched")
            .collect()
    }

    /// Trials whose payment on its way is older than `max_age_secs` at `now`: presumed lost,
    /// an operator's question.
    pub fn stale_pending(&self, now: i64, max_age_secs: i64) -> Vec<&Trial> {
        self.trials
            .iter()
            .filter(|t| {
                t.pending
                    .as_ref()
                    .is_some_and(|p| !p.holds_at(now, max_age_secs))
                    && t.converted_at.is_none()
            })
            .collect()
    }
}

/// One run of a job by the local timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub job: &'static str,
    pub at: i64,
    pub report: RunReport,
}

/// The last [`KEPT_RUNS`] runs, newest last: the local timer's record (the deployed jobs' is
/// their log line and metrics). In memory only: a restart starts it over.
#[derive(Debug, Clone, Default)]
pub struct JobLog(Arc<Mutex<VecDeque<JobRun>>>);

impl JobLog {
    pub fn record(&self, run: JobRun) {
        let mut runs = self.0.lock().expect("job log lock");
        if runs.len() == KEPT_RUNS {
            runs.pop_front();
        }
        runs.push_back(run);
    }

    /// Newest first.
    pub fn runs(&self) -> Vec<JobRun> {
        self.0
            .lock()
            .expect("job log lock")
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_log_keeps_the_newest_runs() {
        let log = JobLog::default();
        for at in 0..(KEPT_RUNS as i64 + 5) {
            log.record(JobRun {
                job: "expire",
                at,
                report: RunReport::nothing_yet(),
            });
        }
        let runs = log.runs();
        assert_eq!(runs.len(), KEPT_RUNS);
        assert_eq!(runs[0].at, KEPT_RUNS as i64 + 4);
        assert_eq!(runs.last().unwrap().at, 5);
    }
}
