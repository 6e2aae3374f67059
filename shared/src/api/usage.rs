//! `POST /v1/trials/{id}/usage`: records usage of a limited option of an ACTIVE trial.
//!
//! The trial is read, the step decided ([`crate::domain::usage::step`]), then one transaction
//! writes the usage (a conditional `UpdateItem` on the trial item, see `store::usage`), the
//! completed idempotency record and the limit events this step crosses (deterministic ids:
//! `<trial>.limit_warning.<option>`). When another caller moved the usage since the read, the
//! condition fails and the request re-reads and decides again; nothing is ever recorded past
//! the limit (429 `trial_limit_exceeded`, nothing written but the refusal under the key).
//! An option with `ends_trial` ends the trial (EXPIRED, `limit_reached`) in the same
//! transaction that reaches its limit.
use lambda_http::Request;
use serde_json::{json, Value};

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::{json_object, trial_id};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::trial::EXPIRY_LIMIT_REACHED;
use crate::domain::usage::{step, UsageStep, MAX_QUANTITY};
use crate::domain::{ErrorCode, Trial, TrialStatus};
use crate::store::usage::UsageWrite;
use crate::store::{Outcome, Slot, StoreError};
use crate::App;

/// Lost races tolerated before answering 503 (retryable): each loss means another caller
/// recorded usage, so this only bites under sustained contention near a threshold.
const ATTEMPTS: usize = 64;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency = Idempotency::from_request(req, tenant, &format!("/v1/trials/{id}/usage"))?;
    let body = json_object(req)?;
    let option = body
        .get("option")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_option("option must be a string"))?
        .to_owned();
    let quantity = body
        .get("quantity")
        .and_then(Value::as_i64)
        .filter(|q| (1..=MAX_QUANTITY).contains(q))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuantity,
                format!("quantity must be an integer from 1 to {MAX_QUANTITY}"),
            )
        })?;

    let store = &app.store;
    for _ in 0..ATTEMPTS {
        let now_ms = app.clock.now_millis();
        let now = now_ms.div_euclid(1000);
        let trial = match load_owned(app, &id, tenant).await {
            Ok(trial) => trial,
            Err(err) => return idempotency.refuse(app, err, now_ms).await,
        };
        let Some(terms) = trial.terms.option(&option).filter(|o| o.is_limit).cloned() else {
            let names: Vec<&str> = trial
                .terms
                .options
                .iter()
                .filter(|o| o.is_limit)
                .map(|o| o.internal_name.as_str())
                .collect();
            let err = invalid_option(&if names.is_empty() {
                format!("The trial's plan has no limited option {option:?}")
            } else {
                format!("option must be one of: {}", names.join(", "))
            });
            return idempotency.refuse(app, err, now_ms).await;
        };
        if let Err(err) = trial.lifecycle(trial.policy()).check_usage(now) {
            return idempotency.refuse(app, err.into(), now_ms).await;
        }
        let before = trial.used.get(&option).copied().unwrap_or(0);
        let (after, warns, reaches) = match step(terms.value, before, quantity) {
            UsageStep::Exceeded { remaining } => {
                let err = ApiError::new(
                    ErrorCode::TrialLimitExceeded,
                    format!(
                        "Recording {quantity} more {option} would exceed the limit of {}: {remaining} remaining",
                        terms.value
                    ),
                );
                return idempotency.refuse(app, err, now_ms).await;
            }
            UsageStep::Recorded {
                after,
                warns,
                reaches,
            } => (after, warns, reaches),
        };
        let ends_trial = reaches && terms.ends_trial;
        let status = if ends_trial {
            TrialStatus::Expired
        } else {
            TrialStatus::Active
        };
        let reply = Reply::json(
            200,
            &json!({
                "trial_id": trial.id.as_str(),
                "option": option,
                "value": terms.value,
                "used_value": after,
                "remaining_value": terms.value - after,
                "status": status.as_str(),
            }),
        );
        let write = UsageWrite {
            trial: &trial,
            option: &option,
            value: terms.value,
            before,
            quantity,
            ends_trial,
        };
        let mut tx = store
            .tx()
            .update(Slot::Trial, store.usage_update(&write, now)?)
            .answer(
                &idempotency.scope,
                &idempotency.fingerprint,
                &reply.stored(),
                now_ms,
                app.config.idempotency_ttl_secs,
            )?;
        let detail = |threshold: i64| {
            json!({
                "project_id": tenant.project.as_str(),
                "option": option,
                "value": terms.value,
                "used_value": after,
                "threshold": threshold,
            })
        };
        if warns {
            let threshold = crate::domain::usage::warning_threshold(terms.value);
            let event = limit_event(
                EventKind::LimitWarning,
                &trial,
                now,
                &option,
                detail(threshold),
            );
            tx = tx.event(&event, now)?;
        }
        if reaches {
            let event = limit_event(
                EventKind::LimitReached,
                &trial,
                now,
                &option,
                detail(terms.value),
            );
            tx = tx.event(&event, now)?;
        }
        if ends_trial {
            let event = DomainEvent::for_trial(
                EventKind::Expired,
                &trial,
                now,
                None,
                json!({
                    "expires_at": rfc3339(now),
                    "expiry_reason": EXPIRY_LIMIT_REACHED,
                    "grace_period_ends_at": rfc3339(now + trial.terms.grace_secs),
                }),
            );
            tx = tx.event(&event, now)?;
        }
        let rejection = match tx.commit().await? {
            Outcome::Committed => {
                if ends_trial {
                    crate::metrics::trial_expired(&trial.plan);
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
        // The trial changed since the read (usage by another caller, or a transition): decide
        // again on what it is now.
    }
    Err(StoreError::Unavailable("usage: too many concurrent recordings".into()).into())
}

fn invalid_option(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidOption, message.to_owned())
}

/// `trial.limit_warning` / `trial.limit_reached` for `option`: once per trial and option.
fn limit_event(
    kind: EventKind,
    trial: &Trial,
    now: i64,
    option: &str,
    extra: Value,
) -> DomainEvent {
    DomainEvent::for_trial(kind, trial, now, Some(option), extra)
}
