//! The expire job's work: every ACTIVE trial whose `expires_at` has come becomes EXPIRED, with
//! its `trial.expired` event in the same transaction (the stream publishes it); so does every
//! PENDING trial whose activation deadline (its `expires_at`) has come, unactivated
//! (`expiry_reason: activation_window`).
//!
//! The update is conditional (`status = ACTIVE AND expires_at <= now`): a trial converted or
//! canceled meanwhile, or expired by an overlapping run, fails the condition and is skipped.
//! The update also moves the trial to the PURGE queue at `expires_at + grace`.
//!
//! A reverse trial (its plan's end behavior is `downgrade`) becomes DOWNGRADED instead: on its
//! free plan, with `trial.downgraded`, out of every queue (`Store::downgrade_update`).
use serde_json::json;

use super::{Queue, Run, Settled};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::trial::EXPIRY_ACTIVATION_WINDOW;
use crate::domain::{Trial, TrialPolicy};
use crate::services::downgrade;
use crate::store::codec::Item;
use crate::store::trials::trial_from_item;
use crate::store::{Slot, Store};
use crate::App;

/// The `trial.expired` event: it happened at `expires_at`, whenever the job got to it.
/// A trial never activated lapsed at its activation deadline: `expiry_reason`
/// `activation_window`.
pub fn expired_event(trial: &Trial, policy: TrialPolicy) -> DomainEvent {
    let mut fields = json!({
        "expires_at": rfc3339(trial.expires_at),
        "grace_period_ends_at": rfc3339(trial.expires_at + policy.grace_secs),
    });
    if trial.activate_by.is_some() {
        fields["expiry_reason"] = EXPIRY_ACTIVATION_WINDOW.into();
    }
    DomainEvent::for_trial(EventKind::Expired, trial, trial.expires_at, None, fields)
}

/// The expire queue: trials, each re-checked as due at the run's `now`.
const QUEUE: Queue<Trial> = Queue {
    decode: trial_from_item,
    undecodable: "undecodable trial in the expire queue",
    done: |r| &mut r.processed,
    failed: "expire failed; left for the next run",
};

/// The conditional ACTIVE -> EXPIRED (or DOWNGRADED) update and the event, in one transaction.
async fn expire_one(store: Store, trial: Trial, now: i64) -> Settled {
    let policy = trial.policy();
    let event = expired_event(&trial, policy);
    let written = async {
        if let Some(downgraded) = downgrade::commit(&store, &trial, now).await.transpose() {
            return downgraded;
        }
        store
            .tx()
            .update(Slot::Trial, store.expire_update(&trial, now, policy)?)
            .event(&event, now)?
            .commit()
            .await
    };
    Settled::of_commit(written.await).on_done(|| crate::metrics::trial_expired(&trial.plan))
}

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    let due = |_: &App, trial: &Trial| trial.lifecycle(trial.policy()).is_expiry_due(now);
    let start = |run: &Run, trial| expire_one(run.app.store.clone(), trial, now);
    run.work(items, &QUEUE, due, start).await;
}
