//! Ending-soon and grace-ending reminders, from the REMIND queue of the `due` index (one cursor
//! item per trial, see `store::reminders`): the expire job's third sweep.
//!
//! For each due cursor the job reads the trial (one consistent `GetItem`) and asks it what to
//! publish (`Trial::reminder_due`: the latest reminder in `[cursor, now]` that still holds, so
//! a converted, canceled or paused trial gets none). It then commits, in one transaction: the
//! event with its deterministic id (`<trial>.ending_soon.<expires_at>.<offset>` or
//! `<trial>.grace_ending.<purge_at>`, refused if it exists), the cursor moved to the next
//! reminder (or deleted) on condition that it still waits where the job read it, and a check
//! that the trial still has the status and end the reminder was computed from. A run twice, or
//! two overlapping runs, therefore publish once; an extension or a resume meanwhile rewrote the
//! cursor (and changes the ids), so the stale one is skipped.
use super::{Queue, Run, Settled};
use crate::domain::events::DomainEvent;
use crate::domain::{ScheduledReminder, Trial};
use crate::store::codec::Item;
use crate::store::reminders::ReminderCursor;
use crate::store::{Outcome as Written, Slot, StoreError};
use crate::App;

/// The cursor's next write after `now`: advance to the trial's next reminder, or delete.
fn next_cursor(
    app: &App,
    cursor: &ReminderCursor,
    trial: Option<&Trial>,
    now: i64,
) -> Result<CursorWrite, StoreError> {
    let next = trial.and_then(|t| {
        t.next_reminder(now + 1, &app.config.lifecycle_terms(t), t.policy())
            .map(|r| r.at())
    });
    Ok(match next {
        Some(at) => CursorWrite::Advance(app.store.reminder_advance(
            &cursor.trial_id,
            cursor.at,
            at,
        )?),
        None => CursorWrite::Delete(
            app.store
                .reminder_delete(&cursor.trial_id, Some(cursor.at))?,
        ),
    })
}

enum CursorWrite {
    Advance(aws_sdk_dynamodb::types::Update),
    Delete(aws_sdk_dynamodb::types::Delete),
}

impl CursorWrite {
    fn into_tx(self, tx: crate::store::Tx<'_>) -> crate::store::Tx<'_> {
        match self {
            CursorWrite::Advance(u) => tx.update(Slot::Reminder, u),
            CursorWrite::Delete(d) => tx.delete(Slot::Reminder, d),
        }
    }
}

async fn remind_one(app: App, cursor: ReminderCursor, now: i64) -> Settled {
    match remind(&app, &cursor, now).await {
        Ok(outcome) => outcome,
        Err(e) => Settled::Failed(e),
    }
}

async fn remind(app: &App, cursor: &ReminderCursor, now: i64) -> Result<Settled, StoreError> {
    let store = &app.store;
    let trial = store.get_trial(&cursor.trial_id).await?;
    let due: Option<ScheduledReminder> = trial
        .as_ref()
        .and_then(|t| t.reminder_due(cursor.at, now, &app.config.lifecycle_terms(t), t.policy()));
    let (Some(trial), Some(reminder)) = (trial.as_ref(), due) else {
        // Gone, converted, canceled, paused, or nothing that still holds: move on quietly.
        // Rejected: another run moved the cursor first; skipped either way.
        next_cursor(app, cursor, trial.as_ref(), now)?
            .into_tx(store.tx())
            .commit()
            .await?;
        return Ok(Settled::Skipped);
    };
    let event = DomainEvent::reminder(trial, &reminder, reminder.at());
    let written = next_cursor(app, cursor, Some(trial), now)?
        .into_tx(store.tx())
        .event(&event, now)?
        .check(Slot::Trial, store.trial_unchanged_check(trial)?)
        .commit()
        .await?;
    let rejection = match written {
        Written::Committed => return Ok(Settled::Done),
        Written::Rejected(rejection) => rejection,
    };
    let event_only = rejection
        .slots()
        .all(|slot| slot == Slot::Event(event.kind));
    if event_only {
        // Already published (the same end was armed again): only the cursor moves (or another
        // run moved it first).
        next_cursor(app, cursor, Some(trial), now)?
            .into_tx(store.tx())
            .commit()
            .await?;
    }
    Ok(Settled::Skipped)
}

/// The remind queue: reminder cursors, each re-checked as due at the run's `now`.
const QUEUE: Queue<ReminderCursor> = Queue {
    decode: ReminderCursor::from_item,
    undecodable: "undecodable reminder cursor",
    done: |r| &mut r.reminded,
    failed: "reminder failed; left for the next run",
};

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    let due = |_: &App, cursor: &ReminderCursor| cursor.at <= now;
    let start = |run: &Run, cursor| remind_one(run.app.clone(), cursor, now);
    run.work(items, &QUEUE, due, start).await;
}
