//! The purge job's work: trials whose grace has ended (EXPIRED, or ACTIVE that the expire job
//! has not reached, at `expires_at + grace`; CANCELED at `canceled_at + grace`) are deleted.
//!
//! One transaction per trial: the conditional delete (DynamoDB re-checks the grace, that no
//! payment is on its way (younger than `PENDING_PAYMENT_MAX_AGE`) and that no checkout session is still payable, at the moment of the
//! delete), the org guard marked purged (the guard stays, so the org can never start a second
//! trial, and `GET` of the purged trial answers 410 to its org), and `trial.purged` with a
//! snapshot of the trial and its timeline (`store::timeline`: its entries are deleted in the same
//! transaction, those past the cap just before it; one `Query` of the trial's partition first).
//! Consumers get `trial.purged` exactly when the trial is gone: a payment
//! that converts it first makes the delete's condition fail, and no event is written.
use serde_json::{Map, Value};

use super::{Queue, Run, Settled};
use crate::domain::applicant::Privilege;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{Trial, TrialPolicy};
use crate::store::codec::Item;
use crate::store::timeline::Timeline;
use crate::store::trials::trial_from_item;
use crate::store::{Slot, Store};
use crate::App;

/// The `trial.purged` event (id `<trial_id>.purged`): what the trial was when it went, as
/// `GET` showed it (`trial`: a snapshot), for consumers that must clean up after it.
pub fn purged_event(
    trial: &Trial,
    now: i64,
    policy: TrialPolicy,
    timeline: &Timeline,
) -> DomainEvent {
    let mut extra = Map::new();
    extra.insert(
        "status".into(),
        trial.lifecycle(policy).status_at(now).as_str().into(),
    );
    extra.insert("started_at".into(), rfc3339(trial.started_at).into());
    extra.insert("expires_at".into(), rfc3339(trial.expires_at).into());
    if let Some(at) = trial.canceled_at {
        extra.insert("canceled_at".into(), rfc3339(at).into());
    }
    extra.insert("trial".into(), trial.view_at(now, policy, Privilege::Admin));
    extra.insert("timeline".into(), timeline.views().into());
    extra.insert("truncated".into(), timeline.truncated.into());
    DomainEvent::for_trial(EventKind::Purged, trial, now, None, Value::Object(extra))
}

/// Whether the purge job may delete `trial` at `now`, as far as the index's copy tells: the
/// delete's condition decides on the item itself.
fn may_purge(trial: &Trial, now: i64, policy: TrialPolicy, pending_max_age: i64) -> bool {
    trial.lifecycle(policy).is_purge_due(now)
        && trial.open_checkout(now).is_none()
        && trial.pending_at(now, pending_max_age).is_none()
}

/// The purge queue: trials, each re-checked as purgeable at the run's `now`.
const QUEUE: Queue<Trial> = Queue {
    decode: trial_from_item,
    undecodable: "undecodable trial in the purge queue",
    done: |r| &mut r.processed,
    failed: "purge failed; left for the next run",
};

async fn purge_one(store: Store, trial: Trial, now: i64) -> Settled {
    let policy = trial.policy();
    let written = async {
        let (_, entries) = store.trial_and_timeline(&trial.id).await?;
        let (timeline, dropped) = Timeline::capped(entries);
        // Past the cap: read by nobody, so deleted first, keeping the transaction in its limit.
        for entry in &dropped {
            let delete = store.timeline_delete(&trial.id, &entry.sk)?;
            store.tx().delete(Slot::Timeline, delete).commit().await?;
        }
        let event = purged_event(&trial, now, policy, &timeline);
        let mut tx = store
            .tx()
            .delete(Slot::Trial, store.purge_delete(&trial, now, policy)?)
            .update(
                Slot::OrgGuard,
                store.guard_purged_update(&trial.org_id, now)?,
            )
            .event(&event, now)?;
        for entry in &timeline.entries {
            tx = tx.delete(Slot::Timeline, store.timeline_delete(&trial.id, &entry.sk)?);
        }
        tx.commit().await
    };
    // Rejected: the trial is gone (another run) or no longer due (converted by a late payment,
    // a session opened or a payment on its way since the index was read).
    Settled::of_commit(written.await).on_done(|| crate::metrics::trial_purged(&trial.plan))
}

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    let due = |app: &App, trial: &Trial| {
        let max_age = app.config.pending_payment_max_age_secs;
        may_purge(trial, now, trial.policy(), max_age)
    };
    let start = |run: &Run, trial| purge_one(run.app.store.clone(), trial, now);
    run.work(items, &QUEUE, due, start).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use crate::domain::trial::{Checkout, PendingPayment, PENDING_MAX_AGE_SECS};
    use crate::domain::{OrgId, TrialId, TrialStatus};

    #[test]
    fn purged_event_has_a_deterministic_id_and_the_trial_as_it_was() {
        let policy = TrialPolicy::default();
        let mut trial = Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            1_000,
            Catalog::builtin().get("pro").unwrap().snapshot(),
        );
        trial.status = TrialStatus::Canceled;
        trial.canceled_at = Some(2_000);
        let event = purged_event(&trial, 9_999_999, policy, &Timeline::default());
        assert_eq!(event.id, format!("{}.purged", trial.id));
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(detail["event_id"], event.id.as_str());
        assert_eq!(detail["type"], "trial.purged");
        assert_eq!(detail["status"], "CANCELED");
        assert_eq!(detail["canceled_at"], rfc3339(2_000));
    }

    /// A pro trial started at 0 by `org_a`.
    fn pro_trial() -> Trial {
        Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            0,
            Catalog::builtin().get("pro").unwrap().snapshot(),
        )
    }

    #[test]
    fn an_open_checkout_holds_the_purge_back_until_it_ends() {
        let policy = TrialPolicy::default();
        let mut trial = pro_trial();
        let grace_end = trial.expires_at + policy.grace_secs;
        assert!(!may_purge(
            &trial,
            grace_end - 1,
            policy,
            PENDING_MAX_AGE_SECS
        ));
        assert!(may_purge(&trial, grace_end, policy, PENDING_MAX_AGE_SECS));
        trial.checkout = Some(Checkout {
            session_id: "cs_1".into(),
            url: "https://checkout".into(),
            expires_at: grace_end + 60,
            trial_end: None,
        });
        assert!(!may_purge(&trial, grace_end, policy, PENDING_MAX_AGE_SECS));
        assert!(may_purge(
            &trial,
            grace_end + 60,
            policy,
            PENDING_MAX_AGE_SECS
        ));
    }

    #[test]
    fn a_payment_on_its_way_holds_the_purge_back_until_its_maximum_age() {
        let policy = TrialPolicy::default();
        let mut trial = pro_trial();
        let grace_end = trial.expires_at + policy.grace_secs;
        trial.pending = Some(PendingPayment {
            session_id: "cs_debit".into(),
            since: grace_end - 10,
        });
        let max_age = 100;
        assert!(!may_purge(&trial, grace_end, policy, max_age));
        assert!(!may_purge(&trial, grace_end + 89, policy, max_age));
        assert!(may_purge(&trial, grace_end + 90, policy, max_age));
    }
}
