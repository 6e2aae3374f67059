//! `POST /v1/trials/{id}/usage`: records usage of a limited option of an ACTIVE trial.
//!
//! The trial is read, the step decided ([`crate::domain::usage::step`]), then one transaction
//! writes the usage (a conditional `UpdateItem` on the trial item, see `store::usage`), the
//! completed idempotency record and the limit events this step crosses (deterministic ids:
//! `<trial>.limit_warning.<option>`). When another caller moved the usage since the read, the
//! condition fails and the request decides again on the trial as the failed condition returned
//! it ([`crate::services::transition::retry_on_moved`]: no second read); nothing is recorded past
//! the limit (429 `trial_limit_exceeded`, nothing written but the refusal under the key).
//! An option with `ends_trial` ends the trial (EXPIRED, `limit_reached`) in the same
//! transaction that reaches its limit. The body is `{option, quantity}` and nothing else (any
//! other field is 400 `invalid_field`). Cost: one read, then one transaction per attempt.
use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::purged_or_not_found;
use super::reply::Reply;
use super::request::typed_body;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::PlanOption;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::trial::EXPIRY_LIMIT_REACHED;
use crate::domain::usage::{step, warning_threshold, UsageStep, MAX_QUANTITY};
use crate::domain::{ErrorCode, Trial, TrialStatus};
use crate::services::transition::retry_on_moved;
use crate::store::usage::UsageWrite;
use crate::store::{Slot, Tx};
use crate::App;

/// Lost races tolerated before answering 503 (retryable): each loss means another caller
/// recorded usage, so this only bites under sustained contention near a threshold.
const ATTEMPTS: usize = 64;

/// The body as sent: `{"option": "<limited option>", "quantity": 1..=MAX_QUANTITY}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageFields {
    option: Option<String>,
    quantity: Option<i64>,
}

/// The body, checked.
struct UsageBody {
    option: String,
    quantity: i64,
}

/// What one recording does to the trial, decided on the trial as read.
struct Recording<'t> {
    terms: &'t PlanOption,
    before: i64,
    after: i64,
    warns: bool,
    reaches: bool,
    /// The limit reached ends the trial (EXPIRED, `limit_reached`) in the same write.
    ends_trial: bool,
}

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let (id, idempotency) = Idempotency::for_trial(req, tenant, log, "/usage")?;
    let body = parse(req)?;
    let now_ms = app.clock.now_millis();
    let trial = match idempotency.load_owned(app, &id, tenant, now_ms).await? {
        Ok(trial) => trial,
        Err(refused) => return Ok(refused),
    };
    // The trial changed since the read (usage by another caller, or a transition): decide
    // again on what it is now.
    let attempt = retry_on_moved(&tenant.org, trial, ATTEMPTS, |trial| {
        let now_ms = app.clock.now_millis();
        let recording = decide(trial, &body, now_ms.div_euclid(1000))?;
        write(app, &idempotency, tenant, trial, &body, &recording, now_ms)
    })
    .await?;
    let gone = purged_or_not_found(app, &id, tenant);
    let settled = idempotency.settle(
        app,
        attempt,
        now_ms,
        gone,
        "usage: too many concurrent recordings",
    );
    let (reply, ended) = match settled.await? {
        Ok(done) => done,
        Err(answered) => return Ok(answered),
    };
    if let Some(plan) = ended {
        crate::metrics::trial_expired(&plan);
    }
    Ok(reply)
}

fn parse(req: &Request) -> Result<UsageBody, ApiError> {
    let fields: UsageFields = typed_body(req, |field| match field {
        "option" => option_not_a_string(),
        _ => invalid_quantity(),
    })?;
    let option = fields.option.ok_or_else(option_not_a_string)?;
    let quantity = fields
        .quantity
        .filter(|q| (1..=MAX_QUANTITY).contains(q))
        .ok_or_else(invalid_quantity)?;
    Ok(UsageBody { option, quantity })
}

fn option_not_a_string() -> ApiError {
    invalid_option("option must be a string")
}

fn invalid_quantity() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidQuantity,
        format!("quantity must be an integer from 1 to {MAX_QUANTITY}"),
    )
}

/// The recording on `trial` as it is at `now`: a limited option of an ACTIVE trial, within
/// its limit (nothing is ever recorded past it).
fn decide<'t>(trial: &'t Trial, body: &UsageBody, now: i64) -> Result<Recording<'t>, ApiError> {
    let option = &body.option;
    let Some(terms) = trial.terms.option(option).filter(|o| o.is_limit) else {
        let names: Vec<&str> = trial
            .terms
            .options
            .iter()
            .filter(|o| o.is_limit)
            .map(|o| o.internal_name.as_str())
            .collect();
        return Err(invalid_option(&if names.is_empty() {
            format!("The trial's plan has no limited option {option:?}")
        } else {
            format!("option must be one of: {}", names.join(", "))
        }));
    };
    trial.lifecycle(trial.policy()).check_usage(now)?;
    let before = trial.used.get(option).copied().unwrap_or(0);
    match step(terms.value, before, body.quantity) {
        UsageStep::Exceeded { remaining } => Err(ApiError::new(
            ErrorCode::TrialLimitExceeded,
            format!(
                "Recording {} more {option} would exceed the limit of {}: {remaining} remaining",
                body.quantity, terms.value
            ),
        )),
        UsageStep::Recorded {
            after,
            warns,
            reaches,
        } => Ok(Recording {
            terms,
            before,
            after,
            warns,
            reaches,
            ends_trial: reaches && terms.ends_trial,
        }),
    }
}

/// The recording's transaction: the conditional usage update, the answer, and the limit
/// events it crosses. Hands back the answer and, when the trial ends, its plan.
#[allow(clippy::type_complexity)]
fn write<'a>(
    app: &'a App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    trial: &Trial,
    body: &UsageBody,
    r: &Recording<'_>,
    now_ms: i64,
) -> Result<(Tx<'a>, (Reply, Option<crate::domain::Plan>)), ApiError> {
    let now = now_ms.div_euclid(1000);
    let (option, value) = (body.option.as_str(), r.terms.value);
    let status = match r.ends_trial {
        true => TrialStatus::Expired,
        false => TrialStatus::Active,
    };
    let reply = Reply::json(
        200,
        &json!({
            "trial_id": trial.id.as_str(),
            "option": option,
            "value": value,
            "used_value": r.after,
            "remaining_value": value - r.after,
            "status": status.as_str(),
        }),
    );
    let write = UsageWrite {
        trial,
        option,
        value,
        before: r.before,
        quantity: body.quantity,
        ends_trial: r.ends_trial,
    };
    let store = &app.store;
    let tx = store
        .tx()
        .update(Slot::Trial, store.usage_update(&write, now)?);
    let mut tx = idempotency.complete(app, tx, &reply, now_ms)?;
    for event in limit_events(tenant, trial, body, r, now) {
        tx = tx.event(&event, now)?;
    }
    let ended = r.ends_trial.then(|| trial.plan.clone());
    Ok((tx, (reply, ended)))
}

/// `trial.limit_warning` / `trial.limit_reached` for the option (once per trial and option),
/// and `trial.expired` when the limit ends the trial.
fn limit_events(
    tenant: &Tenant,
    trial: &Trial,
    body: &UsageBody,
    r: &Recording<'_>,
    now: i64,
) -> Vec<DomainEvent> {
    let option = body.option.as_str();
    let detail = |threshold: i64| {
        json!({
            "project_id": tenant.project.as_str(),
            "option": option,
            "value": r.terms.value,
            "used_value": r.after,
            "threshold": threshold,
        })
    };
    let limit =
        |kind, threshold| DomainEvent::for_trial(kind, trial, now, Some(option), detail(threshold));
    let mut events = Vec::new();
    if r.warns {
        events.push(limit(
            EventKind::LimitWarning,
            warning_threshold(r.terms.value),
        ));
    }
    if r.reaches {
        events.push(limit(EventKind::LimitReached, r.terms.value));
    }
    if r.ends_trial {
        events.push(DomainEvent::for_trial(
            EventKind::Expired,
            trial,
            now,
            None,
            json!({
                "expires_at": rfc3339(now),
                "expiry_reason": EXPIRY_LIMIT_REACHED,
                "grace_period_ends_at": rfc3339(now + trial.terms.grace_secs),
            }),
        ));
    }
    events
}

fn invalid_option(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidOption, message.to_owned())
}
