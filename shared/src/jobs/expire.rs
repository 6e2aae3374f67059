//! The expire job's work: every ACTIVE trial whose `expires_at` has come becomes EXPIRED, with
//! its `trial.expired` event in the same transaction (the stream publishes it).
//!
//! The update is conditional (`status = ACTIVE AND expires_at <= now`): a trial converted or
//! canceled meanwhile, or expired by an overlapping run, fails the condition and is skipped.
//! The update also moves the trial to the PURGE queue at `expires_at + grace`.
use serde_json::json;

use super::{join_all, Run, CONCURRENCY};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{Trial, TrialPolicy};
use crate::store::codec::Item;
use crate::store::stats::Stage;
use crate::store::trials::trial_from_item;
use crate::store::{Outcome as Written, Slot, Store, StoreError};

/// The `trial.expired` event: it happened at `expires_at`, whenever the job got to it.
pub fn expired_event(trial: &Trial, policy: TrialPolicy) -> DomainEvent {
    DomainEvent::for_trial(
        EventKind::Expired,
        trial,
        trial.expires_at,
        None,
        json!({
            "expires_at": rfc3339(trial.expires_at),
            "grace_period_ends_at": rfc3339(trial.expires_at + policy.grace_secs),
        }),
    )
}

enum Outcome {
    Expired,
    /// The condition failed: the state moved on.
    Skipped,
    Failed(StoreError),
}

/// The conditional ACTIVE -> EXPIRED update and the event, in one transaction.
async fn expire_one(store: Store, trial: Trial, now: i64, policy: TrialPolicy) -> Outcome {
    let event = expired_event(&trial, policy);
    let written = async {
        store
            .tx()
            .update(Slot::Trial, store.expire_update(&trial, now, policy)?)
            .event(&event, now)?
            .update(
                Slot::Stats,
                store.stats_update(
                    Stage::Expired,
                    trial.plan.as_str(),
                    trial.id.as_str(),
                    now,
                    None,
                )?,
            )
            .commit()
            .await
    };
    match written.await {
        Ok(Written::Committed) => {
            crate::metrics::trial_expired(&trial.plan);
            Outcome::Expired
        }
        Ok(Written::Rejected(_)) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e),
    }
}

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    for chunk in items.chunks(CONCURRENCY) {
        if run.out_of_time() {
            break;
        }
        let mut work = Vec::with_capacity(chunk.len());
        for item in chunk {
            match trial_from_item(item) {
                // The index may lag the table: re-check on what it returned; the write's
                // condition re-checks on the item itself.
                Ok(trial) if trial.lifecycle(trial.policy()).is_expiry_due(now) => {
                    let policy = trial.policy();
                    work.push(expire_one(run.app.store.clone(), trial, now, policy));
                }
                Ok(_) => {
                    run.report.skipped += 1;
                    run.left_due(item);
                }
                Err(e) => {
                    tracing::error!(error = %e, "undecodable trial in the expire queue");
                    run.report.failed += 1;
                }
            }
        }
        for outcome in join_all(work).await {
            match outcome {
                Some(Outcome::Expired) => run.report.processed += 1,
                Some(Outcome::Skipped) => run.report.skipped += 1,
                Some(Outcome::Failed(e)) => {
                    tracing::warn!(error = %e, "expire failed; left for the next run");
                    run.report.failed += 1;
                }
                None => run.report.failed += 1,
            }
        }
    }
}
