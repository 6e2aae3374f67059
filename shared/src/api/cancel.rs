//! `POST /v1/trials/{id}/cancel`: ACTIVE → CANCELED, and the trial's open Checkout Session
//! expired at Stripe so that it can no longer be paid.
//!
//! The trial is read to build the answer, but the transition itself is an update conditioned on
//! the trial still being ACTIVE and unexpired and still holding the open session it was read
//! with, committed in one transaction with the completed idempotency record and the
//! `trial.canceled` event: a racing expiry, conversion or second cancel makes the condition fail,
//! never a lost update (a convert that stored a session meanwhile makes the cancel run again on
//! the trial as it is now). No lease is needed: the outcome and its record commit together.
//!
//! A trial with an open session: the same transaction writes a "session to expire" work item
//! ([`crate::jobs::session_expiry`]); after the commit the session is expired at Stripe within
//! the invocation's deadline and the item deleted. If Stripe cannot be reached (or the function
//! dies right after the commit), the cancel still succeeds and the expire job retries the item.
//!
//! Cost: without an open session, two DynamoDB round trips (the read and the transaction). With
//! one, three (the transaction carries one more item, then a `DeleteItem`) and one Stripe call
//! (two if Stripe says the session had already stopped being open).
use lambda_http::Request;
use serde_json::json;

use super::convert::stripe_budget;
use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::{deadline_ms, trial_id};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::{Trial, TrialStatus};
use crate::jobs::session_expiry::{self, SessionToExpire};
use crate::store::stats::Stage;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Slot, StoreError};
use crate::App;

/// Commits tried when the trial's open session changed between the read and the write.
const ATTEMPTS: usize = 3;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency = Idempotency::from_request(req, tenant, &format!("/v1/trials/{id}/cancel"))?;
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let ttl = app.config.idempotency_ttl_secs;

    let mut trial = match load_owned(app, &id, tenant).await {
        Ok(trial) => trial,
        Err(err) => return idempotency.refuse(app, err, now_ms).await,
    };
    let store = &app.store;
    for _ in 0..ATTEMPTS {
        let policy = trial.policy();
        if let Err(err) = trial.lifecycle(policy).check_cancel(now) {
            return idempotency.refuse(app, err.into(), now_ms).await;
        }
        let canceled = Trial {
            status: TrialStatus::Canceled,
            canceled_at: Some(now),
            ..trial.clone()
        };
        let reply = Reply::json(200, &canceled.view_at(now, policy));
        let event = DomainEvent::for_trial(
            EventKind::Canceled,
            &trial,
            now,
            None,
            json!({ "project_id": tenant.project.as_str(), "canceled_at": crate::domain::time::rfc3339(now) }),
        );
        let open = trial.open_checkout(now);
        // A session whose (delayed) payment is already on its way is complete, not payable:
        // nothing to expire.
        let expiry = open
            .filter(|c| trial.pending.as_ref().map(|p| &p.session_id) != Some(&c.session_id))
            .map(|c| SessionToExpire::new(&trial, c));
        let mut tx = store
            .tx()
            .update(
                Slot::Trial,
                store.cancel_update(&trial, open.map(|c| c.session_id.as_str()), now, policy)?,
            )
            .answer(
                &idempotency.scope,
                &idempotency.fingerprint,
                &reply.stored(),
                now_ms,
                ttl,
            )?
            .event(&event, now)?
            .update(
                Slot::Stats,
                store.stats_update(
                    Stage::Canceled,
                    trial.plan.as_str(),
                    trial.id.as_str(),
                    now,
                    None,
                )?,
            );
        if let Some(work) = &expiry {
            tx = tx.put(Slot::SessionExpiry, work.put(store, now)?);
        }
        let rejection = match tx.commit().await? {
            Outcome::Committed => {
                crate::metrics::trial_canceled(&trial.plan);
                if let Some(work) = &expiry {
                    let now_ms = app.clock.now_millis();
                    let budget =
                        stripe_budget(app.stripe.timeout(), deadline_ms(req, now_ms), now_ms);
                    session_expiry::expire_now(app, work, budget).await;
                }
                return Ok(reply);
            }
            Outcome::Rejected(rejection) => rejection,
        };
        if rejection.failed(Slot::Idempotency) {
            return idempotency
                .answer_conflict(app, rejection.old(Slot::Idempotency))
                .await;
        }
        // The trial moved on between the read and the write: answer for the state it is in now,
        // or, if it is still cancelable (its checkout session changed), cancel it as it is.
        match rejected_trial(&rejection)? {
            Some(current) if current.org_id == tenant.org => trial = current,
            _ => {
                return idempotency
                    .refuse(app, ApiError::trial_not_found(), now_ms)
                    .await
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "cancel of {id} kept racing a change of its checkout"
    ))
    .into())
}
