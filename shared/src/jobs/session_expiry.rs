//! Checkout Sessions that a canceled trial left open, expired at Stripe, so that nobody can pay
//! for a trial after it was canceled.
//!
//! **Invariant: the work exists exactly when the cancel does.** Cancel writes a work item
//! (`SESSION_EXPIRE#<cs_id>`, in the `due` index's sharded `SESSION_EXPIRE#<s>` queue, due at
//! once) in the same transaction as the transition. After the commit it asks Stripe to expire
//! the session (within the invocation's deadline) and deletes the item when Stripe confirms, or
//! answers that the session is no longer open (expired, or complete: paid before the cancel).
//! If Stripe cannot be reached, answers late, or the function dies right after the commit, the
//! item stays, and the expire function's run ([`Job::ExpireSessions`](super::Job)) retries it
//! with a growing back-off ([`backoff_secs`]: 1, 2, 4... minutes, at most an hour).
//!
//! An item is moot once the session's own `expires_at` has passed (Stripe then expires it by
//! itself, 24 hours after creation at most): the job deletes it without calling Stripe, and the
//! item's TTL removes any leftover. So retries end by themselves within a day.
//!
//! Cost: one more item in the cancel's transaction, one `DeleteItem` when Stripe confirms; each
//! retry is one Stripe call (two when Stripe refuses because the session is no longer open: the
//! expire, then a retrieve) and one write. The job's reads grow with the items due, never with
//! the table.
use std::time::Duration;

use aws_sdk_dynamodb::types::{Delete, Put, Update};

use super::{Queue, Run, Settled};
use crate::domain::trial::Checkout;
use crate::domain::{Trial, TrialId};
use crate::store::codec::{get_n, get_s, key, n, s, Item, Values};
use crate::store::schema::{session_expiry_pk, DueQueue, DUE_AT, DUE_PK, SESSION_EXPIRY_SK, TTL};
use crate::store::{Outcome as Written, Slot, Store, StoreError};
use crate::stripe::client::{SessionExpiry, StripeError};
use crate::App;

/// How long an item outlives the session it is about (DynamoDB's TTL sweep then removes it,
/// should the job never get to it).
const KEEP_AFTER_SESSION_SECS: i64 = 86_400;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 3_600;

/// A Checkout Session to expire at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToExpire {
    pub session_id: String,
    /// The canceled trial the session was opened for (for the log).
    pub trial_id: TrialId,
    /// When Stripe expires the session by itself: after that, nothing is left to do.
    pub session_expires_at: i64,
    /// Attempts that failed so far.
    pub attempts: i64,
}

impl SessionToExpire {
    pub fn new(trial: &Trial, checkout: &Checkout) -> SessionToExpire {
        SessionToExpire {
            session_id: checkout.session_id.clone(),
            trial_id: trial.id.clone(),
            session_expires_at: checkout.expires_at,
            attempts: 0,
        }
    }

    /// The item, due at `now`, for the cancel's transaction ([`Slot::SessionExpiry`]). No
    /// condition: writing it twice (a cancel retried after a store failure) is harmless.
    pub fn put(&self, store: &Store, now: i64) -> Result<Put, StoreError> {
        let mut item = key(session_expiry_pk(&self.session_id), SESSION_EXPIRY_SK);
        item.insert("session_id".into(), s(&self.session_id));
        item.insert("trial_id".into(), s(self.trial_id.as_str()));
        item.insert("session_expires_at".into(), n(self.session_expires_at));
        item.insert("attempts".into(), n(self.attempts));
        item.insert(
            DUE_PK.into(),
            s(DueQueue::SessionExpire.partition_for(&self.session_id, store.shards())),
        );
        item.insert(DUE_AT.into(), n(now));
        item.insert(
            TTL.into(),
            n(self.session_expires_at + KEEP_AFTER_SESSION_SECS),
        );
        Ok(Put::builder()
            .table_name(store.table_name())
            .set_item(Some(item))
            .build()?)
    }

    pub fn from_item(item: &Item) -> Result<SessionToExpire, StoreError> {
        let corrupt = |what: &str| StoreError::corrupt(format!("session to expire without {what}"));
        Ok(SessionToExpire {
            session_id: get_s(item, "session_id")
                .ok_or_else(|| corrupt("session_id"))?
                .to_owned(),
            trial_id: get_s(item, "trial_id")
                .and_then(TrialId::parse)
                .ok_or_else(|| corrupt("trial_id"))?,
            session_expires_at: get_n(item, "session_expires_at")
                .ok_or_else(|| corrupt("session_expires_at"))?,
            attempts: get_n(item, "attempts").unwrap_or(0),
        })
    }

    /// The item gone: the session can no longer be paid.
    fn delete(&self, store: &Store) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(store.table_name())
            .set_key(Some(key(
                session_expiry_pk(&self.session_id),
                SESSION_EXPIRY_SK,
            )))
            .build()?)
    }

    /// One more failed attempt: the next one after [`backoff_secs`]. Conditioned on the count
    /// as read, so two overlapping runs cannot both push it.
    fn retry_later(&self, store: &Store, now: i64) -> Result<Update, StoreError> {
        let attempts = self.attempts + 1;
        Ok(Update::builder()
            .table_name(store.table_name())
            .set_key(Some(key(
                session_expiry_pk(&self.session_id),
                SESSION_EXPIRY_SK,
            )))
            .update_expression("SET attempts = :next, due_at = :due")
            .condition_expression("attempts = :attempts")
            .set_expression_attribute_values(
                Values::new()
                    .n(":next", attempts)
                    .n(":attempts", self.attempts)
                    .n(":due", now + backoff_secs(attempts))
                    .build(),
            )
            .build()?)
    }
}

/// The wait after the `attempts`-th failure: 1 minute, doubling, at most an hour.
pub fn backoff_secs(attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 7) - 1;
    (60 * (1i64 << doublings)).min(MAX_BACKOFF_SECS)
}

/// Asks Stripe to expire the session, within `timeout`; logs the outcome (ids only).
async fn ask_stripe(
    app: &App,
    work: &SessionToExpire,
    timeout: Duration,
) -> Result<SessionExpiry, StripeError> {
    let answer = app
        .stripe
        .expire_checkout_session(&work.session_id, Some(timeout))
        .await;
    match &answer {
        Ok(SessionExpiry::Missing) => tracing::warn!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            "Stripe does not know the canceled trial's checkout session: nothing to expire"
        ),
        Ok(done) => tracing::info!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            outcome = ?done,
            "canceled trial's checkout session can no longer be paid"
        ),
        Err(e) => tracing::warn!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            attempts = work.attempts + 1,
            error = %e,
            "checkout session not expired at Stripe; retried later"
        ),
    }
    answer
}

/// Right after a cancel committed `work`: one attempt within `budget`, the item deleted if it
/// worked. Never fails the cancel: whatever goes wrong here, the item stays and the job
/// retries. Returns whether the session is known to be unpayable now.
pub async fn expire_now(app: &App, work: &SessionToExpire, budget: Duration) -> bool {
    if ask_stripe(app, work, budget).await.is_err() {
        return false;
    }
    let deleted = async {
        let store = &app.store;
        store
            .tx()
            .delete(Slot::SessionExpiry, work.delete(store)?)
            .commit()
            .await
    };
    if let Err(e) = deleted.await {
        // Stripe did it; the job will find the session no longer open and delete the item.
        tracing::warn!(error = %e, checkout_session_id = %work.session_id, "session to expire not deleted");
    }
    true
}

async fn attempt(app: App, work: SessionToExpire, now: i64, timeout: Duration) -> Settled {
    let store = &app.store;
    let done = now >= work.session_expires_at || ask_stripe(&app, &work, timeout).await.is_ok();
    let write = if done {
        work.delete(store)
            .map(|d| store.tx().delete(Slot::SessionExpiry, d))
    } else {
        work.retry_later(store, now)
            .map(|u| store.tx().update(Slot::SessionExpiry, u))
    };
    let written = match write {
        Ok(tx) => tx.commit().await,
        Err(e) => Err(e),
    };
    match written {
        // Stripe says it can no longer be paid (or it ran out by itself): the item is gone.
        Ok(Written::Committed) if done => Settled::Done,
        // Stripe failed; the next attempt is scheduled.
        Ok(Written::Committed) => Settled::Left,
        // Another run moved the item on meanwhile.
        Ok(Written::Rejected(_)) => Settled::Skipped,
        Err(e) => Settled::Failed(e),
    }
}

/// The session expiry queue: every item read is due (Stripe or the session's own end decides).
const QUEUE: Queue<SessionToExpire> = Queue {
    decode: SessionToExpire::from_item,
    undecodable: "undecodable item in the session expiry queue",
    done: |r| &mut r.processed,
    failed: "session expiry not recorded; left for the next run",
};

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    let due = |_: &App, _: &SessionToExpire| true;
    let start = |run: &Run, session| attempt(run.app.clone(), session, now, run.stripe_budget());
    run.work(items, &QUEUE, due, start).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_a_minute_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(backoff_secs).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(backoff_secs(0), 60);
        assert_eq!(backoff_secs(i64::MAX), 3600);
    }
}
