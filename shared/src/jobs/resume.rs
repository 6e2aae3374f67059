//! The automatic resume: a PAUSED trial whose pause maximum has come resumes, as of the moment
//! the maximum was reached (`Trial::resume` caps the pause), with its `trial.resumed` event
//! (`automatic: true`) and its reminders re-armed, in one transaction.
//!
//! The trial waits in the RESUME queue at `paused_at + pause_max` (put there by the pause). The
//! update is conditioned on the lifecycle the job read (`Store::lifecycle_update`): a trial
//! resumed, canceled or converted meanwhile, or resumed by an overlapping run, is skipped.
use serde_json::json;

use super::{join_all, Run, Settled, CONCURRENCY};
use crate::domain::events::DomainEvent;
use crate::domain::Trial;
use crate::store::codec::Item;
use crate::store::trials::trial_from_item;
use crate::store::{Outcome as Written, Slot, Store};
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
    match written.await {
        Ok(Written::Committed) => Settled::Done,
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
            let due = |trial: &Trial| {
                trial.is_auto_resume_due(now, &run.app.config.lifecycle_terms(trial))
            };
            if let Some(trial) = run.triage(
                item,
                trial_from_item(item),
                due,
                "undecodable trial in the resume queue",
            ) {
                work.push(resume_one(run.app.clone(), trial, now));
            }
        }
        let outcomes = join_all(work).await;
        run.settle(
            outcomes,
            |r| &mut r.resumed,
            "resume failed; left for the next run",
        );
    }
}
