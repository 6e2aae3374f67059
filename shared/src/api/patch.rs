//! `PATCH /v1/trials/{id}`: an admin key changes an ACTIVE trial's `expires_at` and `notes`.
//!
//! Admin only (a standard key is 403 `forbidden`). The new `expires_at` is within the plan's
//! maximum from the trial's own terms (snapshot at start), as at start. Idempotent with `Idempotency-Key` and built
//! like cancel: the trial is read to check the new date and build the answer, then one
//! transaction writes the conditional update ([`crate::store::admin`]: still the org's, ACTIVE
//! and unexpired), the completed idempotency record and a `trial.updated` event; a new
//! `expires_at` also moves the current active range's end and the `due` entry, and re-arms the
//! reminder cursor for the new end, as an extension does. Two round trips.
use lambda_http::Request;
use serde_json::{json, Map, Value};

use super::admin::check_expiration;
use super::error::ApiError;
use super::idempotency::Idempotency;
use super::owned::load_owned;
use super::reply::Reply;
use super::request::{json_object, trial_id};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::applicant::{Applicant, Privilege};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::time::rfc3339;
use crate::domain::ErrorCode;
use crate::store::admin::AdminChange;
use crate::store::trials::rejected_trial;
use crate::store::{Outcome, Slot};
use crate::App;

const FIELDS: [&str; 2] = ["expires_at", "notes"];

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = trial_id(req)?;
    log.trial_id = Some(id.to_string());
    let idempotency = Idempotency::from_request(req, tenant, &format!("/v1/trials/{id}"))?;
    let change = parse_change(&json_object(req)?)?;
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let ttl = app.config.idempotency_ttl_secs;

    let trial = match load_owned(app, &id, tenant).await {
        Ok(trial) => trial,
        Err(err) => return idempotency.refuse(app, err, now_ms).await,
    };
    let policy = trial.policy();
    if let Err(err) = trial.lifecycle(policy).check_admin_change(now) {
        return idempotency.refuse(app, err.into(), now_ms).await;
    }
    let mut updated = trial.clone();
    if let Some(at) = change.expires_at {
        match check_expiration(at, now, trial.started_at, &trial.terms) {
            Ok(at) => updated = updated.ending_at(at),
            Err(err) => return idempotency.refuse(app, err, now_ms).await,
        }
    }
    if let Some(notes) = &change.notes {
        updated.notes = notes.clone();
    }
    let reply = Reply::json(200, &updated.view_at(now, policy));
    let mut extra =
        json!({ "project_id": tenant.project.as_str(), "expires_at": rfc3339(updated.expires_at) });
    if change.notes.is_some() {
        // The notes themselves stay on the trial (free text: kept out of events and logs).
        extra["notes_changed"] = true.into();
    }
    let discriminator = now_ms.to_string();
    let event =
        DomainEvent::for_trial(EventKind::Updated, &trial, now, Some(&discriminator), extra);
    let store = &app.store;
    let mut tx = store
        .tx()
        .update(
            Slot::Trial,
            store.admin_update(&trial, &updated, &change, now)?,
        )
        .answer(
            &idempotency.scope,
            &idempotency.fingerprint,
            &reply.stored(),
            now_ms,
            ttl,
        )?
        .event(&event, now)?;
    if change.expires_at.is_some() {
        let terms = app.config.lifecycle_terms(&updated);
        tx = tx.reminder(store.reminder_rearm(&updated, now, &terms, policy)?);
    }
    let outcome = tx.commit().await?;
    let rejection = match outcome {
        Outcome::Committed => return Ok(reply),
        Outcome::Rejected(rejection) => rejection,
    };
    if rejection.failed(Slot::Idempotency) {
        return idempotency
            .answer_conflict(app, rejection.old(Slot::Idempotency))
            .await;
    }
    if !rejection.failed(Slot::Trial) {
        // Only the event's condition: an update of this trial in the same millisecond.
        return Err(ApiError::unavailable());
    }
    let err = match rejected_trial(&rejection)? {
        Some(current) => match current.lifecycle(policy).check_admin_change(now) {
            Err(e) => e.into(),
            // Still changeable: a racing extension or PATCH moved its end (retryable).
            Ok(()) if current.org_id == trial.org_id => return Err(ApiError::unavailable()),
            Ok(()) => ApiError::trial_not_found(),
        },
        None => ApiError::trial_not_found(),
    };
    idempotency.refuse(app, err, now_ms).await
}

/// The body: `expires_at` (RFC 3339) and/or `notes` (`null` or `""` removes them), validated as
/// at start. Nothing else may be changed: any other field is `invalid_field`.
fn parse_change(body: &Map<String, Value>) -> Result<AdminChange, ApiError> {
    if let Some(other) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        // Names the field (the body's own key, at most what the client sent), never a value.
        let shown: String = other.chars().take(40).collect();
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{shown}: cannot be changed; only expires_at and notes can"),
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
