//! `POST /v1/trials/start`: one trial per organization, ever.
//!
//! The response is known before anything is written, so the trial, the org guard, the completed
//! idempotency record and the `trial.started` event go out in one transaction: one round trip,
//! no in-flight state, and no way to end up with half of them.
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
use crate::domain::{Plan, Trial, TrialId};
use crate::store::trials::StartRejected;
use crate::App;

pub const PATH: &str = "/v1/trials/start";

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let idempotency = Idempotency::from_request(req, &tenant.org, PATH)?;
    let body = json_object(req)?;
    let plan = body
        .get("plan")
        .and_then(Value::as_str)
        .and_then(Plan::parse)
        .ok_or_else(ApiError::invalid_plan)?;

    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let policy = app.config.policy;
    let ttl = app.config.idempotency_ttl_secs;
    let trial = Trial::start(TrialId::generate(), tenant.org.clone(), plan, now, policy);
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
    let written = store
        .start_trial(
            &trial,
            store.idempotency_put_new(
                &idempotency.scope,
                &idempotency.fingerprint,
                &reply.stored(),
                now_ms,
                ttl,
            )?,
            store.outbox_put(&event, now)?,
            policy,
        )
        .await?;
    match written {
        Ok(()) => {
            app.publish_committed(&[event]).await;
            Ok(reply)
        }
        Err(StartRejected::Idempotency(old)) => {
            log.trial_id = None;
            idempotency.answer_conflict(app, old).await
        }
        Err(StartRejected::OrgHasTrial(guard)) => {
            log.trial_id = guard.trial_id.as_ref().map(ToString::to_string);
            let message = match &guard.trial_id {
                Some(id) => format!("This organization has already used its trial ({id})"),
                None => "This organization has already used its trial".to_owned(),
            };
            // A deterministic outcome: stored, so a retry with this key gets the same answer.
            idempotency
                .refuse(
                    app,
                    ApiError::new(409, "trial_already_exists", message),
                    now_ms,
                )
                .await
        }
    }
}
