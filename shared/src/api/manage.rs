//! The operator's lifecycle moves, `POST /v1/trials/{id}/extend`, `/pause`, `/resume`,
//! `/change-plan` and `/activate` (served together by the `manage` function): what they share.
//!
//! Each request reads the trial once, computes the move in memory (`Trial::pause`, `resume`,
//! `extend`, which check the state machine), and commits one transaction: the trial update
//! conditioned on the lifecycle it read (`Store::lifecycle_update`, which also moves its `due`
//! entry), the completed idempotency record, the event, and the reminder cursor re-armed for the
//! new end (deleted on pause). No lease: the outcome and its record commit together, as cancel
//! does. If the trial moved on between the read and the write, the move is decided again on the
//! trial as the failed condition returned it (no second read), up to three times.
//!
//! A pause past its maximum counts as resumed (`Trial::settled_at`) before a pause or an
//! extension: the write then also carries the automatic `trial.resumed` event the job would
//! have written. Cost: one read and one transaction (five items at most).
use lambda_http::Request;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::purged_or_not_found;
use super::reply::Reply;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::TrialTerms;
use crate::domain::events::DomainEvent;
use crate::domain::plan_change::change_plan;
use crate::domain::{ExtendRequest, LifecycleTerms, Trial, TrialPolicy};
use crate::services::transition::retry_on_moved;
use crate::store::{Slot, Store, StoreError, Tx};
use crate::App;
use aws_sdk_dynamodb::types::Update;

/// A lifecycle move an operator asks for.
#[derive(Debug, Clone)]
pub enum Move {
    Pause,
    Resume,
    Extend(ExtendRequest),
    /// To the plan whose terms these are (`domain::plan_change`); `force` lets use so far
    /// exceed a limit of the new plan; a payment on its way holds the plan while younger than
    /// `pending_max_age`.
    ChangePlan {
        to: Box<TrialTerms>,
        force: bool,
        pending_max_age: i64,
    },
    /// A PENDING trial's clock starts now.
    Activate,
}

impl Move {
    fn action(&self) -> &'static str {
        match self {
            Move::Pause => "pause",
            Move::Resume => "resume",
            Move::Extend(_) => "extend",
            Move::ChangePlan { .. } => "change-plan",
            Move::Activate => "activate",
        }
    }

    fn apply(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
        terms: &LifecycleTerms,
    ) -> Result<Trial, ApiError> {
        Ok(match self {
            Move::Pause => trial.pause(now, policy)?,
            Move::Resume => trial.resume(now, policy, terms)?,
            Move::Extend(request) => trial.extend(request.extension, now, policy, terms)?,
            Move::ChangePlan {
                to,
                force,
                pending_max_age,
            } => change_plan(trial, to, *force, now, *pending_max_age)
                .map_err(|refusal| ApiError::new(refusal.code(), refusal.message()))?,
            Move::Activate => trial.activate(now, policy)?,
        })
    }

    /// The trial's conditional write for the move from `stored` to `after`.
    fn update(
        &self,
        store: &Store,
        stored: &Trial,
        after: &Trial,
        now: i64,
        terms: &LifecycleTerms,
    ) -> Result<Update, StoreError> {
        match self {
            Move::ChangePlan { force, .. } => {
                store.plan_change_update(stored, after, *force, now, terms)
            }
            Move::Activate => store.activation_update(stored, after, now, terms),
            _ => store.lifecycle_update(stored, after, terms),
        }
    }

    fn event(&self, before: &Trial, after: &Trial, now: i64, tenant: &Tenant) -> DomainEvent {
        let extra = json!({ "project_id": tenant.project.as_str() });
        match self {
            Move::Pause => DomainEvent::paused(after, extra),
            Move::Resume => DomainEvent::resumed(before, after, false, extra),
            Move::Extend(request) => DomainEvent::extended(
                before,
                after,
                now,
                request.reason.as_deref(),
                &tenant.key_id,
                extra,
            ),
            Move::ChangePlan { force, .. } => {
                DomainEvent::plan_changed(before, after, now, *force, &tenant.key_id, extra)
            }
            Move::Activate => DomainEvent::activated(after, now, "activate", extra),
        }
    }
}

/// Attempts at a move whose condition failed because the trial moved on meanwhile.
const ATTEMPTS: usize = 3;

/// Runs `mv` on the trial of the request's path for `tenant`.
pub async fn run(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
    mv: Move,
) -> Result<Reply, ApiError> {
    let suffix = format!("/{}", mv.action());
    let (id, idempotency) = Idempotency::for_trial(req, tenant, log, &suffix)?;
    let now_ms = app.clock.now_millis();
    let stored = match idempotency.load_owned(app, &id, tenant, now_ms).await? {
        Ok(trial) => trial,
        Err(refused) => return Ok(refused),
    };
    // The trial moved on between the read and the write: decide again on what it is now.
    let attempt = retry_on_moved(&tenant.org, stored, ATTEMPTS, |stored| {
        decide(app, &idempotency, tenant, &mv, stored, now_ms)
    })
    .await?;
    let gone = purged_or_not_found(app, &id, tenant);
    let settled = idempotency.settle(app, attempt, now_ms, gone, mv.action());
    Ok(settled.await?.unwrap_or_else(|answered| answered))
}

/// `mv` on `stored` as it is: refused by the state machine, or its transaction (the update
/// conditioned on the lifecycle read, the answer, the events, the reminder cursor).
fn decide<'a>(
    app: &'a App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    mv: &Move,
    stored: &Trial,
    now_ms: i64,
) -> Result<(Tx<'a>, Reply), ApiError> {
    let now = now_ms.div_euclid(1000);
    let store = &app.store;
    // The trial's own terms, snapshotted from its plan at start.
    let (policy, terms) = (stored.policy(), app.config.lifecycle_terms(stored));
    // A resume late past the maximum answers as the automatic resume would have.
    let base = match mv {
        Move::Resume => stored.clone(),
        _ => stored.clone().settled_at(now, policy, &terms),
    };
    let after = mv.apply(&base, now, policy, &terms)?;
    // The trial's terms after the move: a plan change brings its plan's.
    let (policy, terms) = (after.policy(), app.config.lifecycle_terms(&after));
    let reply = Reply::json(200, &after.view_at(now, policy, tenant.privilege()));
    let update = mv.update(store, stored, &after, now, &terms)?;
    let tx = store.tx().update(Slot::Trial, update);
    let mut tx = idempotency
        .complete(app, tx, &reply, now_ms)?
        .event(&mv.event(&base, &after, now, tenant), now)?;
    if base != *stored {
        tx = tx.event(&DomainEvent::resumed(stored, &base, true, json!({})), now)?;
    }
    let tx = tx.reminder(store.reminder_rearm(&after, now, &terms, policy)?);
    Ok((tx, reply))
}
