//! `POST /v1/trials/{id}/usage`: records usage of a limited option of an ACTIVE trial (the
//! first usage of a PENDING trial activates it, in the same transaction: `store::usage`).
//!
//! The trial and the key's idempotency record are read (concurrently), the step decided
//! ([`crate::domain::usage::step`]), then one conditional `UpdateItem` on the trial item counts
//! the usage and records the request's key in the item (issue 25 item 3: no transaction holds
//! a busy trial's item, so concurrent recordings do not cancel each other; see
//! `store::usage`). A recording that crosses the warning threshold or the limit is instead one
//! transaction with its limit events (deterministic ids: `<trial>.limit_warning.<option>`,
//! conditioned on the exact usage read, so exactly one recording writes them, atomically with
//! its count: a crash cannot split them). When the condition fails (another caller moved the
//! usage, the trial moved, or this key was recorded meanwhile: a lost response retried),
//! DynamoDB returns the item (`ALL_OLD`) and the request decides again on it: its key there
//! answers the recording again, never counting it twice. Nothing is recorded past the limit
//! (429 `trial_limit_exceeded`, stored under the key as an ordinary refusal, so it replays).
//! The answer is then stored as the key's idempotency record (see `domain::usage`).
//! An option with `ends_trial` ends the trial (EXPIRED, `limit_reached`) in the same
//! transaction that reaches its limit; a reverse trial's (its plan downgrades) ends its time
//! there (`expires_at` = now), and it downgrades as at its end. A reverse trial whose end has
//! come is written DOWNGRADED first (`services::downgrade`): its usage counts against the free
//! plan's limits, whose `ends_trial` ends nothing. The body is `{option, quantity}` and nothing else (any
//! other field is 400 `invalid_field`). Cost: two reads, one update (or transaction) per
//! attempt, one idempotency put.
use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::{load_owned, purged_or_not_found};
use super::reply::Reply;
use super::request::typed_body;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::PlanOption;
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::state_machine::Phase;
use crate::domain::time::rfc3339;
use crate::domain::trial::EXPIRY_LIMIT_REACHED;
use crate::domain::usage::{key_id, step, warning_threshold, UsageStep, MAX_QUANTITY};
use crate::domain::{ErrorCode, Trial, TrialStatus};
use crate::services::downgrade;
use crate::store::trials::trial_from_item;
use crate::store::tx::conflict_backoff;
use crate::store::usage::{same_request, Recorded, UsageWrite};
use crate::store::StoreError;
use crate::App;

/// Lost races tolerated before answering 503 (retryable): each loss means another caller
/// recorded usage, so this only bites under sustained contention near a threshold.
const ATTEMPTS: usize = 64;

/// Crossing transactions cancelled for a conflict before answering 503: each is followed by a
/// pause (10–20, 20–40, then 40–80 ms, `store::tx::conflict_backoff`) and a fresh read, so the
/// others crossing the same threshold are not met again with the same stale decision. Worst
/// case 6 pauses, under 400 ms, inside the function's timeout.
const CONFLICTS: u32 = 6;

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
    plan: crate::domain::Plan,
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
    // The key's record is read beside the trial (no added latency): a key already answered
    // (a stored refusal, another request's answer) answers as it did before anything is
    // decided or counted.
    let (found, record) = tokio::join!(
        load_owned(app, &id, tenant),
        app.store.idempotency_get(&idempotency.scope)
    );
    if let Some(record) = record? {
        return Ok(idempotency.answer(record));
    }
    let mut trial = match found {
        Ok(trial) => trial,
        Err(err) => return idempotency.refuse(app, err, now_ms).await,
    };
    let key_id = key_id(&idempotency.scope.key);
    let mut conflicts = 0;
    for _ in 0..ATTEMPTS {
        if let Some(replay) = recorded(&trial, &key_id, &idempotency, &body) {
            return Ok(replay);
        }
        let now_ms = app.clock.now_millis();
        if ending(&trial, now_ms.div_euclid(1000)) {
            match settle_end(app, tenant, &idempotency, &trial, now_ms).await? {
                Ok(downgraded) => trial = downgraded,
                Err(gone) => return Ok(gone),
            }
            continue;
        }
        let recording = match decide(&trial, &body, now_ms.div_euclid(1000)) {
            Ok(recording) => recording,
            Err(refusal) => return idempotency.refuse(app, refusal, now_ms).await,
        };
        let key = (key_id.as_str(), idempotency.fingerprint.as_str());
        match write(app, tenant, &trial, &body, &recording, key, now_ms).await? {
            Recorded::Done { after } => {
                let reply = usage_reply(&trial, &body.option, recording.terms, after);
                return Ok(answered(app, &idempotency, reply, &recording, now_ms).await);
            }
            // The trial moved since the read (usage by another caller, a transition, the key
            // recorded by a lost response's retry): decide again on it as it is now.
            Recorded::Refused(Some(old)) => match trial_from_item(&old)? {
                moved if moved.org_id == tenant.org => trial = moved,
                _ => {
                    return idempotency
                        .refuse(app, ApiError::trial_not_found(), now_ms)
                        .await
                }
            },
            Recorded::Refused(None) => {
                let gone = purged_or_not_found(app, &id, tenant).await;
                return idempotency.refuse(app, gone, now_ms).await;
            }
            Recorded::Conflict if conflicts < CONFLICTS => {
                conflicts += 1;
                tokio::time::sleep(conflict_backoff(conflicts.min(3))).await;
                match app.store.get_trial(&id).await? {
                    Some(now) if now.org_id == tenant.org => trial = now,
                    _ => {
                        return idempotency
                            .refuse(app, ApiError::trial_not_found(), now_ms)
                            .await
                    }
                }
            }
            Recorded::Conflict => break,
        }
    }
    Err(StoreError::Unavailable("usage: kept racing other writes".into()).into())
}

/// Whether `trial` is a reverse trial whose end has come, not yet written DOWNGRADED.
fn ending(trial: &Trial, now: i64) -> bool {
    trial.lifecycle(trial.policy()).phase(now) == Phase::Ending
}

/// A reverse trial whose end has come, written DOWNGRADED first (the expire job's write,
/// `services::downgrade`; a lost race with the job changes nothing) and read again: its usage
/// then counts against the free plan. `Err`: the trial is gone, answered (and stored).
async fn settle_end(
    app: &App,
    tenant: &Tenant,
    idempotency: &Idempotency,
    trial: &Trial,
    now_ms: i64,
) -> Result<Result<Trial, Reply>, ApiError> {
    downgrade::commit(&app.store, trial, now_ms.div_euclid(1000)).await?;
    match app.store.get_trial(&trial.id).await? {
        Some(now) if now.org_id == tenant.org => Ok(Ok(now)),
        _ => {
            let gone = purged_or_not_found(app, &trial.id, tenant).await;
            Ok(Err(idempotency.refuse(app, gone, now_ms).await?))
        }
    }
}

/// The answer for a key the trial item has recorded: the recording's answer again, or
/// `idempotency_key_reused` for another body under the same key.
fn recorded(
    trial: &Trial,
    key_id: &str,
    idempotency: &Idempotency,
    body: &UsageBody,
) -> Option<Reply> {
    let recorded = trial.usage_keys.as_ref()?.get(key_id)?;
    if !same_request(recorded, &idempotency.fingerprint) {
        return Some(Reply::error(&ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was already used with a different request",
        )));
    }
    let terms = trial.terms.option(&body.option)?;
    let reply = usage_reply(trial, &body.option, terms, recorded.after);
    Some(Reply::replay(reply.stored()))
}

/// The answer of a recording that reached `after` (EXPIRED when it reached a limit that ends
/// the trial, DOWNGRADED for a reverse trial's): the same for the first answer and every
/// replay.
fn usage_reply(trial: &Trial, option: &str, terms: &PlanOption, after: i64) -> Reply {
    let value = terms.value;
    let ended = after >= value && terms.ends_trial;
    let status = match (trial.status, ended) {
        (TrialStatus::Downgraded, _) => TrialStatus::Downgraded,
        (_, true) if trial.terms.downgrade_to.is_some() => TrialStatus::Downgraded,
        (_, true) => TrialStatus::Expired,
        (_, false) => TrialStatus::Active,
    };
    Reply::json(
        200,
        &json!({
            "trial_id": trial.id.as_str(),
            "option": option,
            "value": value,
            "used_value": after,
            "remaining_value": value - after,
            "status": status.as_str(),
        }),
    )
}

/// Stores the answer as the key's idempotency record (the trial item keeps the key only for a
/// while: see [`crate::domain::usage`]). The usage is counted whatever happens here: a failure
/// is logged, and a retry finds the key on the trial meanwhile.
async fn answered(
    app: &App,
    idempotency: &Idempotency,
    reply: Reply,
    r: &Recording<'_>,
    now_ms: i64,
) -> Reply {
    let stored = app
        .store
        .idempotency_record(
            &idempotency.scope,
            &idempotency.fingerprint,
            &reply.stored(),
            now_ms,
            app.config.idempotency_ttl_secs,
        )
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "usage answer not stored under its key");
    }
    if r.ends_trial {
        crate::metrics::trial_expired(&r.plan);
    }
    reply
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
            // A DOWNGRADED trial has nothing left to end: its free plan's limits only refuse.
            ends_trial: reaches && terms.ends_trial && trial.status != TrialStatus::Downgraded,
            plan: trial.plan.clone(),
        }),
    }
}

/// The recording's write: the conditional usage update with the request's key, and the limit
/// events it crosses (with them, one transaction).
async fn write(
    app: &App,
    tenant: &Tenant,
    trial: &Trial,
    body: &UsageBody,
    r: &Recording<'_>,
    (key_id, fingerprint): (&str, &str),
    now_ms: i64,
) -> Result<Recorded, ApiError> {
    let now = now_ms.div_euclid(1000);
    let write = UsageWrite {
        trial,
        option: &body.option,
        value: r.terms.value,
        before: r.before,
        quantity: body.quantity,
        ends_trial: r.ends_trial,
        key_id,
        fingerprint,
    };
    let mut events = limit_events(tenant, trial, body, r, now);
    let mut reminder = None;
    // The first usage of a PENDING trial starts its clock, in the same write.
    if let Ok(mut activated) = trial.activate(now, trial.policy()) {
        if r.ends_trial {
            // The same write ends it at once (the limit): its event says the end written.
            activated.expires_at = now;
        }
        let extra = json!({ "project_id": tenant.project.as_str() });
        events.insert(0, DomainEvent::activated(&activated, now, "usage", extra));
        if !r.ends_trial {
            let (policy, terms) = (activated.policy(), app.config.lifecycle_terms(&activated));
            reminder = Some(app.store.reminder_rearm(&activated, now, &terms, policy)?);
        }
    }
    let actor = &tenant.key_id;
    let written = (events.as_slice(), reminder);
    Ok(app.store.record_usage(&write, written, actor, now).await?)
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
    // A reverse trial's limit ends its time only: the expire job writes its downgrade, with
    // `trial.downgraded`.
    if r.ends_trial && trial.terms.downgrade_to.is_none() {
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
