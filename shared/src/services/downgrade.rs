//! A reverse trial's end, written: ACTIVE -> DOWNGRADED on its free plan
//! (`Trial::downgraded`), with `trial.downgraded` and its timeline entry, in one transaction
//! whose condition is the state machine's ending phase (`Store::downgrade_update`). The expire
//! job writes it when the end comes; a usage call that finds the end already come writes it
//! first (settles the trial), so that usage counts against the free plan's limits, never the
//! trialled plan's. Either may win: the other's condition fails and it reads the trial again.
//! Cost: one transaction of the trial item, the event and its timeline entry.
use serde_json::json;

use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::Trial;
use crate::store::{Outcome, Slot, Store, StoreError};

/// The `trial.downgraded` event: a reverse trial dropped to its free plan `after.plan` at its
/// `expires_at`. It is about the trialled plan (the funnel counts it there).
pub fn downgraded_event(trial: &Trial, after: &Trial) -> DomainEvent {
    DomainEvent::for_trial(
        EventKind::Downgraded,
        trial,
        trial.expires_at,
        None,
        json!({
            "downgraded_at": rfc3339(trial.expires_at),
            "downgrade_to": after.plan.as_str(),
        }),
    )
}

/// Writes `trial`'s downgrade at `now`; `Ok(None)` when its plan does not downgrade (nothing
/// to write).
pub async fn commit(store: &Store, trial: &Trial, now: i64) -> Result<Option<Outcome>, StoreError> {
    let Some(after) = trial.downgraded() else {
        return Ok(None);
    };
    let update = store.downgrade_update(trial, &after, now, trial.policy())?;
    let event = downgraded_event(trial, &after);
    let tx = store.tx().update(Slot::Trial, update).event(&event, now)?;
    Ok(Some(tx.commit().await?))
}
