//! The write of a trial's transition, in one place for every route and job that moves a trial.
//!
//! **Invariant: a transition and everything it implies commit together or not at all.** The
//! trial's conditional put or update, the request's completed idempotency answer, the domain
//! events and the reminder cursor are slots of one [`Tx`] (no item shared by other orgs' trials:
//! the funnel counters are counted from the events by `publish`, see [`crate::store::stats`]);
//! the condition on the trial item (not a read) decides whether the move still holds.
//!
//! When it does not, DynamoDB returns the trial as it is now (`ALL_OLD`), and
//! [`retry_on_moved`] decides again on that trial without reading it: each attempt is one
//! round trip (one `TransactWriteItems`), and a request costs its first read plus one
//! transaction per attempt. A rejection is read in one place ([`Rejected::read`]): the
//! idempotency key taken meanwhile (the caller answers with that request's answer), the trial
//! moved on (decide again), the trial gone (404 / 410), or another slot (a store failure, 503).
use crate::domain::{OrgId, Trial};
use crate::store::codec::Item;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Rejection, Slot, StoreError, Tx};

/// Why a transition's transaction was rejected, read once for every caller.
#[derive(Debug, Clone)]
pub enum Rejected {
    /// The request's idempotency key was taken meanwhile: the old record, if DynamoDB returned
    /// it (the caller answers with that request's answer).
    Conflict(Option<Item>),
    /// The trial's condition failed and the trial is as given now.
    Moved(Box<Trial>),
    /// The trial's condition failed and there is no trial any more (purged) or never was.
    Gone,
    /// Only other slots failed (e.g. an event written by a concurrent move).
    Other(Rejection),
}

impl Rejected {
    pub fn read(rejection: Rejection) -> Result<Rejected, StoreError> {
        if rejection.failed(Slot::Idempotency) {
            return Ok(Rejected::Conflict(
                rejection.old(Slot::Idempotency).cloned(),
            ));
        }
        if !rejection.failed(Slot::Trial) {
            return Ok(Rejected::Other(rejection));
        }
        Ok(match rejected_trial(&rejection)? {
            Some(trial) => Rejected::Moved(Box::new(trial)),
            None => Rejected::Gone,
        })
    }

    /// A store failure naming the slots, for a rejection nobody can answer for.
    pub fn unavailable(what: &str, rejection: &Rejection) -> StoreError {
        StoreError::Unavailable(format!(
            "{what} rejected on {:?}",
            rejection.slots().collect::<Vec<_>>()
        ))
    }
}

/// Commits `tx`: `Ok(Ok(()))` when it committed, else the rejection as read.
pub async fn commit(tx: Tx<'_>) -> Result<Result<(), Rejected>, StoreError> {
    match tx.commit().await? {
        Outcome::Committed => Ok(Ok(())),
        Outcome::Rejected(rejection) => Ok(Err(Rejected::read(rejection)?)),
    }
}

/// How a decided-and-written transition ended.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Committed; the value the decision returned with its transaction.
    Committed(T),
    /// The decision refused the move on the trial as it was then.
    Refused(E),
    /// The idempotency key was taken meanwhile (see [`Rejected::Conflict`]).
    Conflict(Option<Item>),
    /// The trial is gone, or (never, ids being unique) belongs to another org now.
    Gone,
    /// Only other slots failed.
    Other(Rejection),
    /// The trial kept moving: the last attempt's trial as it is now.
    Exhausted(Box<Trial>),
}

/// Decides the move on `trial` and commits it, up to `attempts` times: when the trial's
/// condition fails, `decide` runs again on the trial as DynamoDB returned it (no second read).
/// `decide` answers with the transaction and a value to hand back once it commits, or with a
/// refusal. A trial that is not `owner`'s any more counts as gone.
pub async fn retry_on_moved<'s, T, E, D>(
    owner: &OrgId,
    mut trial: Trial,
    attempts: usize,
    mut decide: D,
) -> Result<Attempt<T, E>, StoreError>
where
    D: FnMut(&Trial) -> Result<(Tx<'s>, T), E>,
{
    for _ in 0..attempts {
        let (tx, value) = match decide(&trial) {
            Ok(decided) => decided,
            Err(refusal) => return Ok(Attempt::Refused(refusal)),
        };
        match commit(tx).await? {
            Ok(()) => return Ok(Attempt::Committed(value)),
            Err(Rejected::Conflict(old)) => return Ok(Attempt::Conflict(old)),
            Err(Rejected::Other(rejection)) => return Ok(Attempt::Other(rejection)),
            Err(Rejected::Moved(current)) if current.org_id == *owner => trial = *current,
            Err(Rejected::Moved(_) | Rejected::Gone) => return Ok(Attempt::Gone),
        }
    }
    Ok(Attempt::Exhausted(Box::new(trial)))
}
