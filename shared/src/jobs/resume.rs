//! The automatic resume: a PAUSED trial whose pause maximum has come resumes, as of the moment
//! the maximum was reached (`Trial::resume` caps the pause), with its `trial.resumed` event
//! (`automatic: true`) and its reminders re-armed, in one transaction.
//!
//! The trial waits in the RESUME queue at `paused_at + pause_max` (put there by the pause). The
//! update is conditioned on the lifecycle the job read (`Store::lifecycle_update`): a trial
//! resumed, canceled or converted meanwhile, or resumed by an overlapping run, is skipped.
use serde_json::json;

use super::{join_all, Run, CONCURRENCY};
use crate::domain::events::DomainEvent;
use crate::domain::Trial;
use crate::store::codec::Item;
use crate::store::trials::trial_from_item;
use crate::store::{Outcome as Written, Slot, Store, StoreError};
use crate::App;

enum Outcome {
    Resumed,
    Skipped,
    Failed(StoreError),
}

async fn resume_one(app: App, paused: Trial, now: i64) -> Outcome {
    let store: &Store = &app.store;
    let policy = paused.policy();
    let terms = app.config.lifecycle_terms(&paused);
    let resumed = match paused.resume(now, policy, &terms) {
        Ok(resumed) => resumed,
        Err(_) => return Outcome::Skipped,
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
        Ok(Written::Committed) => Outcome::Resumed,
        Ok(Written::Rejected(_)) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e),
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
            match trial_from_item(item) {
                // The index may lag the table: re-check on what it returned; the write's
                // condition re-checks on the item itself.
                Ok(trial)
                    if trial.is_auto_resume_due(now, &run.app.config.lifecycle_terms(&trial)) =>
                {
                    work.push(resume_one(run.app.clone(), trial, now));
                }
                Ok(_) => {
                    run.report.skipped += 1;
                    run.left_due(item);
                }
                Err(e) => {
                    tracing::error!(error = %e, "undecodable trial in the resume queue");
                    run.report.failed += 1;
                }
            }
        }
        for outcome in join_all(work).await {
            match outcome {
                Some(Outcome::Resumed) => run.report.resumed += 1,
                Some(Outcome::Skipped) => run.report.skipped += 1,
                Some(Outcome::Failed(e)) => {
                    tracing::warn!(error = %e, "resume failed; left for the next run");
                    run.report.failed += 1;
                }
                None => run.report.failed += 1,
            }
        }
    }
}
