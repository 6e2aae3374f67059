//! `POST /v1/trials/start`: one trial per organization, ever.
//!
//! The response is known before anything is written, so the trial, the org guard, the completed
//! idempotency record and the `trial.started` event go out in one transaction: one round trip
//! (the stream publishes the event), no in-flight state, and no way to end up with half of them.
use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::reply::Reply;
use super::request::json_object;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{ErrorCode, Trial, TrialId};
use crate::store::stats::Stage;
use crate::store::trials::Guard;
use crate::store::{Outcome, Slot, StoreError};
use crate::App;

pub const PATH: &str = "/v1/trials/start";

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let idempotency = Idempotency::from_request(req, tenant, PATH)?;
    let body = json_object(req)?;
    let catalog = &app.config.catalog;
    let terms = body
        .get("plan")
        .and_then(Value::as_str)
        .and_then(|id| catalog.get_trialable(id))
        .ok_or_else(|| ApiError::invalid_plan(catalog))?
        .snapshot();

    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let ttl = app.config.idempotency_ttl_secs;
    let trial = Trial::start(TrialId::generate(), tenant.org.clone(), now, terms)
        .in_project(tenant.project.clone());
    let policy = trial.policy();
    log.trial_id = Some(trial.id.to_string());

    let reply = Reply::json(201, &trial.started_view());
    let event = DomainEvent::for_trial(
        EventKind::Started,
        &trial,
        now,
        None,
        json!({ "project_id": tenant.project.as_str(), "expires_at": rfc3339(trial.expires_at) }),
    );
    let store = &app.store;
    let outcome = store
        .tx()
        .put(Slot::OrgGuard, store.guard_put(&trial)?)
        .put(Slot::Trial, store.trial_put(&trial, policy)?)
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
        .update(
            Slot::Stats,
            store.stats_update(
                Stage::Started,
                trial.plan.as_str(),
                trial.id.as_str(),
                now,
                None,
            )?,
        )
        // The reminder cursor, at the first reminder not already past (see store::lifecycle).
        .reminder(store.reminder_rearm(&trial, now, &app.config.lifecycle_terms(&trial), policy)?)
        .commit()
        .await?;
    let rejection = match outcome {
        Outcome::Committed => {
            crate::metrics::trial_started(&trial.plan);
            return Ok(reply);
        }
        Outcome::Rejected(rejection) => rejection,
    };
    log.trial_id = None;
    if rejection.failed(Slot::Idempotency) {
        return idempotency
            .answer_conflict(app, rejection.old(Slot::Idempotency))
            .await;
    }
    if !rejection.failed(Slot::OrgGuard) {
        // A fresh trial id already taken (never, at 128 random bits): nothing was written.
        return Err(StoreError::Unavailable(format!(
            "start rejected on {:?}",
            rejection.slots().collect::<Vec<_>>()
        ))
        .into());
    }
    let guard = rejection.old(Slot::OrgGuard).map(Guard::from_item);
    let used = guard.as_ref().and_then(|g| g.trial_id.as_ref());
    log.trial_id = used.map(ToString::to_string);
    let message = match used {
        Some(id) => format!("This organization has already used its trial ({id})"),
        None => "This organization has already used its trial".to_owned(),
    };
    // A deterministic outcome: stored, so a retry with this key gets the same answer.
    idempotency
        .refuse(
            app,
            ApiError::new(ErrorCode::TrialAlreadyExists, message),
            now_ms,
        )
        .await
}
