//! The expire job's work: every ACTIVE trial whose `expires_at` has come becomes EXPIRED, with
//! its `trial.expired` event in the same transaction (the stream publishes it).
//!
//! The update is conditional (`status = ACTIVE AND expires_at <= now`): a trial converted or
//! canceled meanwhile, or expired by an overlapping run, fails the condition and is skipped.
//! The update also moves the trial to the PURGE queue at `expires_at + grace`.
use serde_json::json;

use super::{join_all, Run, Settled, CONCURRENCY};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{Trial, TrialPolicy};
use crate::store::codec::Item;
use crate::store::stats::Stage;
use crate::store::trials::trial_from_item;
use crate::store::{Outcome as Written, Slot, Store};

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

/// The conditional ACTIVE -> EXPIRED update and the event, in one transaction.
async fn expire_one(store: Store, trial: Trial, now: i64, policy: TrialPolicy) -> Settled {
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
            Settled::Done
        }
        Ok(Written::Rejected(_)) => Settled::Skipped,
        Err(e) => Settled::Failed(e),
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
            let due = |trial: &Trial| trial.lifecycle(trial.policy()).is_expiry_due(now);
            if let Some(trial) = run.triage(
                item,
                trial_from_item(item),
                due,
                "undecodable trial in the expire queue",
            ) {
                let policy = trial.policy();
                work.push(expire_one(run.app.store.clone(), trial, now, policy));
            }
        }
        let outcomes = join_all(work).await;
        run.settle(
            outcomes,
            |r| &mut r.processed,
            "expire failed; left for the next run",
        );
    }
}
