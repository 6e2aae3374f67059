//! `POST /v1/trials/{id}/cancel`: ACTIVE → CANCELED.
//!
//! The trial is read to build the answer, but the transition itself is an update conditioned on
//! the trial still being ACTIVE and unexpired, committed in one transaction with the completed
//! idempotency record and the `trial.canceled` event: a racing expiry, conversion or second
//! cancel makes the condition fail, never a lost update. No lease is needed: the outcome and its
//! record commit together. Two round trips: the read and the transaction.
use lambda_http::Request;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::trial_id;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::{Trial, TrialStatus};
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Slot};
use crate::App;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency =
        Idempotency::from_request(req, &tenant.org, &format!("/v1/trials/{id}/cancel"))?;
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let ttl = app.config.idempotency_ttl_secs;

    let trial = match load_owned(app, &id, tenant).await {
        Ok(trial) => trial,
        Err(err) => return idempotency.refuse(app, err, now_ms).await,
    };
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
    let store = &app.store;
    let outcome = store
        .tx()
        .update(Slot::Trial, store.cancel_update(&trial, now, policy)?)
        .put(
            Slot::Idempotency,
            store.idempotency_put_new(
                &idempotency.scope,
                &idempotency.fingerprint,
                &reply.stored(),
                now_ms,
                ttl,
            )?,
        )
        .event(&event, now)?
        .commit()
        .await?;
    let rejection = match outcome {
        Outcome::Committed => {
            crate::metrics::trial_canceled(&trial.plan);
            return Ok(reply);
        }
        Outcome::Rejected(rejection) => rejection,
    };
    if rejection.failed(Slot::Idempotency) {
        return idempotency
            .answer_conflict(app, rejection.old(Slot::Idempotency))
            .await;
    }
    // The trial moved on between the read and the write: answer for the state it is in now.
    let err = match rejected_trial(&rejection)? {
        Some(current) => match current.lifecycle(policy).check_cancel(now) {
            Err(e) => e.into(),
            // Still cancelable yet the condition failed: it belongs to another org.
            Ok(()) => ApiError::trial_not_found(),
        },
        None => ApiError::trial_not_found(),
    };
    idempotency.refuse(app, err, now_ms).await
}
