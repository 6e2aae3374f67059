//! The expire job's work: every ACTIVE trial whose `expires_at` has come becomes EXPIRED, with
//! its `trial.expired` event in the same transaction (the outbox), then published.
//!
//! The update is conditional (`status = ACTIVE AND expires_at <= now`): a trial converted or
//! canceled meanwhile, or expired by an overlapping run, fails the condition and is skipped.
//! The update also moves the trial to the PURGE queue at `expires_at + grace`.
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde_json::json;

use super::{join_all, Flow, Run, CONCURRENCY};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{Trial, TrialPolicy};
use crate::store::codec::Item;
use crate::store::trials::trial_from_item;
use crate::store::{Store, StoreError};

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

/// The conditional ACTIVE -> EXPIRED update and the event's outbox item: one transaction.
fn writes(
    store: &Store,
    trial: &Trial,
    event: &DomainEvent,
    now: i64,
    policy: TrialPolicy,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    Ok(vec![
        TransactWriteItem::builder()
            .update(store.expire_update(trial, now, policy)?)
            .build(),
        TransactWriteItem::builder()
            .put(store.outbox_put(event, now)?)
            .build(),
    ])
}

enum Outcome {
    Expired(DomainEvent),
    /// The condition failed: the state moved on.
    Skipped,
    Failed(StoreError),
}

async fn expire_one(store: Store, trial: Trial, now: i64, policy: TrialPolicy) -> Outcome {
    let event = expired_event(&trial, policy);
    let items = match writes(&store, &trial, &event, now, policy) {
        Ok(items) => items,
        Err(e) => return Outcome::Failed(e),
    };
    match store.transact(items).await {
        Ok(Ok(())) => Outcome::Expired(event),
        Ok(Err(reasons)) if reasons.iter().any(|r| r.condition_failed()) => Outcome::Skipped,
        Ok(Err(reasons)) => Outcome::Failed(StoreError(format!(
            "expire transaction cancelled: {reasons:?}"
        ))),
        Err(e) => Outcome::Failed(e),
    }
}

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) -> Flow {
    let policy = run.app.config.policy;
    let now = run.now;
    let mut events = Vec::new();
    for chunk in items.chunks(CONCURRENCY) {
        if run.out_of_time() {
            break;
        }
        let mut work = Vec::with_capacity(chunk.len());
        for item in chunk {
            match trial_from_item(item) {
                // The index may lag the table: re-check on what it returned; the write's
                // condition re-checks on the item itself.
                Ok(trial) if trial.lifecycle(policy).is_expiry_due(now) => {
                    work.push(expire_one(run.app.store.clone(), trial, now, policy));
                }
                Ok(_) => run.report.skipped += 1,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable trial in the expire queue");
                    run.report.failed += 1;
                }
            }
        }
        for outcome in join_all(work).await {
            match outcome {
                Some(Outcome::Expired(event)) => {
                    run.report.processed += 1;
                    events.push(event);
                }
                Some(Outcome::Skipped) => run.report.skipped += 1,
                Some(Outcome::Failed(e)) => {
                    tracing::warn!(error = %e, "expire failed; left for the next run");
                    run.report.failed += 1;
                }
                None => run.report.failed += 1,
            }
        }
    }
    // Committed changes publish their events even when the run stops here: what fails stays
    // in the outbox for a later run.
    if !events.is_empty() {
        run.app.publish_committed(&events).await;
    }
    Flow::Continue
}
