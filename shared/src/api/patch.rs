//! `PATCH /v1/trials/{id}`: an admin key changes an ACTIVE trial's `expires_at` and `notes`.
//!
//! Admin only (a standard key is 403 `forbidden`). The new `expires_at` is within the plan's
//! maximum from the trial's own terms (snapshot at start), as at start. Idempotent with `Idempotency-Key` and built
//! like cancel: the trial is read to check the new date and build the answer, then one
//! transaction writes the conditional update ([`crate::store::admin`]: still the org's, ACTIVE
//! and unexpired), the completed idempotency record and a `trial.updated` event; a new
//! `expires_at` also moves the current active range's end and the `due` entry, and re-arms the
//! reminder cursor for the new end, as an extension does. Two round trips.
use std::future::ready;

use lambda_http::Request;
use serde_json::{json, Map, Value};

use super::admin::check_expiration;
use super::error::ApiError;
use super::idempotency::Idempotency;
use super::reply::Reply;
use super::request::json_object;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::applicant::{snake_case_hint, Applicant, Privilege};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::{ErrorCode, Trial};
use crate::services::transition::{retry_on_moved, Attempt};
use crate::store::admin::AdminChange;
use crate::store::{Slot, Tx};
use crate::App;

const FIELDS: [&str; 2] = ["expires_at", "notes"];

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let (id, idempotency) = Idempotency::for_trial(req, tenant, log, "")?;
    let change = parse_change(&json_object(req)?)?;
    let now_ms = app.clock.now_millis();
    let trial = match idempotency.load_owned(app, &id, tenant, now_ms).await? {
        Ok(trial) => trial,
        Err(refused) => return Ok(refused),
    };
    // One attempt: a trial that moved on meanwhile is answered for, never changed again.
    let attempt = retry_on_moved(&tenant.org, trial, 1, |trial| {
        decide(app, &idempotency, tenant, &change, trial, now_ms)
    })
    .await?;
    let attempt = match attempt {
        Attempt::Exhausted(current) => {
            let now = now_ms.div_euclid(1000);
            match current.lifecycle(current.policy()).check_admin_change(now) {
                Err(e) => Attempt::Refused(e.into()),
                // Still changeable: a racing extension or PATCH moved its end (retryable).
                Ok(()) => return Err(ApiError::unavailable()),
            }
        }
        // Only the event's condition: an update of this trial in the same millisecond.
        Attempt::Other(_) => return Err(ApiError::unavailable()),
        attempt => attempt,
    };
    let not_found = ready(ApiError::trial_not_found());
    let settled = idempotency.settle(app, attempt, now_ms, not_found, "patch");
    Ok(settled.await?.unwrap_or_else(|answered| answered))
}

/// `change` on `trial` as it is: refused (not ACTIVE, a date out of the plan's bounds), or its
/// transaction (the conditional update, the answer, `trial.updated`, the reminder cursor).
fn decide<'a>(
    app: &'a App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    change: &AdminChange,
    trial: &Trial,
    now_ms: i64,
) -> Result<(Tx<'a>, Reply), ApiError> {
    let now = now_ms.div_euclid(1000);
    let policy = trial.policy();
    trial.lifecycle(policy).check_admin_change(now)?;
    let mut updated = trial.clone();
    if let Some(at) = change.expires_at {
        updated = updated.ending_at(check_expiration(at, now, trial.started_at, &trial.terms)?);
    }
    if let Some(notes) = &change.notes {
        updated.notes = notes.clone();
    }
    let reply = Reply::json(200, &updated.view_at(now, policy, tenant.privilege()));
    let mut extra =
        json!({ "project_id": tenant.project.as_str(), "expires_at": rfc3339(updated.expires_at) });
    if change.notes.is_some() {
        // The notes themselves stay on the trial (free text: kept out of events and logs).
        extra["notes_changed"] = true.into();
    }
    let discriminator = now_ms.to_string();
    let event = DomainEvent::for_trial(EventKind::Updated, trial, now, Some(&discriminator), extra);
    let store = &app.store;
    let update = store.admin_update(trial, &updated, change, now)?;
    let tx = store.tx().update(Slot::Trial, update);
    let mut tx = idempotency
        .complete(app, tx, &reply, now_ms)?
        .event(&event, now)?;
    if change.expires_at.is_some() {
        let terms = app.config.lifecycle_terms(&updated);
        tx = tx.reminder(store.reminder_rearm(&updated, now, &terms, policy)?);
    }
    Ok((tx, reply))
}

/// The body: `expires_at` (RFC 3339) and/or `notes` (`null` or `""` removes them), validated as
/// at start. Nothing else may be changed: any other field is `invalid_field`.
fn parse_change(body: &Map<String, Value>) -> Result<AdminChange, ApiError> {
    if let Some(other) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        // Names the field (the body's own key, at most what the client sent), never a value.
        let shown: String = other.chars().take(40).collect();
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "{shown}: cannot be changed; only expires_at and notes can{}",
                snake_case_hint(other)
            ),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "expires_at, notes: give at least one",
        ));
    }
    let admin = Applicant::parse(body, Privilege::Admin)?.admin;
    let change = AdminChange {
        expires_at: admin.expires_at,
        notes: body.contains_key("notes").then_some(admin.notes),
    };
    if change == AdminChange::default() {
        // Only `"expires_at": null`: a trial always has an end.
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "expires_at: must be a date-time (it cannot be removed)",
        ));
    }
    Ok(change)
}
