//! Checkout Sessions that a canceled trial left open, expired at Stripe, so that nobody can pay
//! for a trial after it was canceled: the job's half (the work item, Stripe's call and the
//! back-off are [`crate::services::checkout_sessions`], which cancel uses too).
//!
//! **Invariant: the work exists exactly when the cancel does.** Cancel writes a work item
//! (`SESSION_EXPIRE#<cs_id>`, in the `due` index's sharded `SESSION_EXPIRE#<s>` queue, due at
//! once) in the same transaction as the transition. After the commit it asks Stripe to expire
//! the session (within the invocation's deadline) and deletes the item when Stripe confirms, or
//! answers that the session is no longer open (expired, or complete: paid before the cancel).
//! If Stripe cannot be reached, answers late, or the function dies right after the commit, the
//! item stays, and the expire function's run ([`Job::ExpireSessions`](super::Job)) retries it
//! with a growing back-off ([`backoff_secs`](crate::services::checkout_sessions::backoff_secs): 1, 2, 4... minutes, at most an hour).
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

use super::{Queue, Run, Settled};
use crate::services::checkout_sessions::{ask_stripe, SessionToExpire};
use crate::store::codec::Item;
use crate::store::{Outcome as Written, Slot};
use crate::App;

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
