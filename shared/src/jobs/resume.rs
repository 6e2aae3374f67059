//! The automatic resume: a PAUSED trial whose pause maximum has come resumes, as of the moment
//! the maximum was reached (`Trial::resume` caps the pause), with its `trial.resumed` event
//! (`automatic: true`) and its reminders re-armed, in one transaction.
//!
//! The trial waits in the RESUME queue at `paused_at + pause_max` (put there by the pause). The
//! update is conditioned on the lifecycle the job read (`Store::lifecycle_update`): a trial
//! resumed, canceled or converted meanwhile, or resumed by an overlapping run, is skipped.
use serde_json::json;

use super::{Queue, Run, Settled};
use crate::domain::events::DomainEvent;
use crate::domain::Trial;
use crate::store::codec::Item;
use crate::store::trials::trial_from_item;
use crate::store::{Slot, Store};
use crate::App;

async fn resume_one(app: App, paused: Trial, now: i64) -> Settled {
    let store: &Store = &app.store;
    let policy = paused.policy();
    let terms = app.config.lifecycle_terms(&paused);
    let resumed = match paused.resume(now, policy, &terms) {
        Ok(resumed) => resumed,
        Err(_) => return Settled::Skipped,
    };
    let event = DomainEvent::resumed(&paused, &resumed, true, json!({}));
    let written = async {
        store
            .tx()
            .update(
                Slot::Trial,
                store.lifecycle_update(&paused, &resumed, &terms)?,
            )
            .event(&event, now)?
            .reminder(store.reminder_rearm(&resumed, now, &terms, policy)?)
            .commit()
            .await
    };
    Settled::of_commit(written.await)
}

/// The resume queue: paused trials, each re-checked as past its pause maximum.
const QUEUE: Queue<Trial> = Queue {
    decode: trial_from_item,
    undecodable: "undecodable trial in the resume queue",
    done: |r| &mut r.resumed,
    failed: "resume failed; left for the next run",
};

pub(super) async fn page(run: &mut Run<'_>, items: Vec<Item>) {
    let now = run.now;
    let due = |app: &App, trial: &Trial| {
        trial.is_auto_resume_due(now, &app.config.lifecycle_terms(trial))
    };
    let start = |run: &Run, trial| resume_one(run.app.clone(), trial, now);
    run.work(items, &QUEUE, due, start).await;
}
