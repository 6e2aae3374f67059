//! `POST /v1/trials/start`: one trial per organization and product, ever (the plan's product:
//! see [`crate::store::org_guard`]).
//!
//! The response is known before anything is written, so the trial, the org guard, the completed
//! idempotency record and the `trial.started` event go out in one transaction (the stream
//! publishes the event): no in-flight state, and no way to end up with half of them. Before it,
//! one consistent read of the org guard: an org that already had its trial is answered 409 from
//! it (the stored refusal is the only write), so a storm of refused starts for one org touches
//! no shared item and conflicts with nothing. Cost: a start is one `GetItem` (1 read unit) and
//! one `TransactWriteItems`; a refused one, one `GetItem` and one `PutItem`.
use lambda_http::Request;
use serde_json::{json, Map, Value};

use super::admin::check_expiration;
use super::applicant;
use super::error::ApiError;
use super::idempotency::Idempotency;
use super::reply::Reply;
use super::request::{json_object, known_fields};
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::applicant::{Applicant, FIELDS as APPLICANT_FIELDS};
use crate::domain::catalog::{PlanTerms, Product, ProductKey, Starts, TrialTerms};
use crate::domain::events::{DomainEvent, EventKind};
use crate::domain::redirect::redirect_url;
use crate::domain::signals::SignalKind;
use crate::domain::time::rfc3339;
use crate::domain::{ErrorCode, Trial, TrialId};
use crate::services::signals::{self, Next, SignalCheck};
use crate::services::transition::Rejected;
use crate::store::org_guard::Guard;
use crate::store::signals::Refusal;
use crate::store::{Outcome, Rejection, Slot, StoreError, Tx};
use crate::App;

pub const PATH: &str = "/v1/trials/start";

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let (idempotency, body) = (
        Idempotency::from_request(req, tenant, PATH)?,
        json_object(req)?,
    );
    // A field no route knows is refused by name, never dropped (issue 26).
    known_fields(&body, |name| {
        name == "plan" || name == "starts" || APPLICANT_FIELDS.contains(&name)
    })?;
    let plan = body.get("plan").and_then(Value::as_str);
    let plan = trialable_plan(app, plan)?;
    let window = activation_window(&body, plan)?;
    // A standard key's admin fields are ignored without being looked at (as the seed says).
    let applicant = Applicant::parse(&body, tenant.privilege())?;
    let now_ms = app.clock.now_millis();
    let started = (plan.snapshot(), window);
    let (trial, reply) = decide(app, tenant, &applicant, started, now_ms)?;
    // An org that had its trial is refused on a plain read of its guard: a guard never goes
    // away, so what the read sees holds. A storm of refused starts then costs a read and the
    // stored 409 each, and no transaction on the guard (they would conflict with each other).
    // The transaction's condition on the guard stays the invariant for the orgs without one.
    let product = app.config.catalog.product_key(&trial.terms.product.id);
    if let Some(guard) = app.store.get_product_guard(&tenant.org, &product).await? {
        log.trial_id = guard.trial_id.as_ref().map(ToString::to_string);
        let refusal = already_used(tenant, Some(&guard));
        return idempotency.refuse(app, refusal, now_ms).await;
    }
    log.trial_id = Some(trial.id.to_string());
    let mut check = SignalCheck::new(app, &applicant, product);
    let attempt = write(
        app,
        &idempotency,
        tenant,
        &trial,
        &reply,
        &mut check,
        now_ms,
    )
    .await?;
    let rejection = match attempt {
        Ok(()) => {
            crate::metrics::trial_started(&trial.plan);
            return Ok(reply);
        }
        Err(Refused::Blocked { kind, matched_org }) => {
            log.trial_id = None;
            return refuse_blocked(app, &idempotency, tenant, &trial, kind, matched_org).await;
        }
        Err(Refused::Rejected(rejection)) => rejection,
    };
    log.trial_id = None;
    if rejection.failed(Slot::Idempotency) {
        return idempotency
            .answer_conflict(app, rejection.old(Slot::Idempotency))
            .await;
    }
    if !rejection.failed(Slot::OrgGuard) {
        // A fresh trial id already taken (never, at 128 random bits): nothing was written.
        return Err(Rejected::unavailable("start", &rejection).into());
    }
    let used = used_guard(&rejection);
    log.trial_id = used
        .as_ref()
        .and_then(|g| g.trial_id.as_ref())
        .map(ToString::to_string);
    // A deterministic outcome: stored, so a retry with this key gets the same answer.
    let refusal = already_used(tenant, used.as_ref());
    idempotency.refuse(app, refusal, now_ms).await
}

/// How the table keys `trial`'s product (its guard, refusal and signals).
pub(super) fn product_of(app: &App, trial: &Trial) -> ProductKey {
    app.config.catalog.product_key(&trial.terms.product.id)
}

/// The product a request names (`product`, query or body): the catalog's, else 400
/// `invalid_product`; none named, the catalog's default product.
pub(super) fn product_named<'c>(app: &'c App, id: Option<&str>) -> Result<&'c Product, ApiError> {
    let catalog = &app.config.catalog;
    match id {
        None => Ok(catalog.default_product()),
        Some(id) => catalog
            .plans()
            .iter()
            .map(|p| &p.product)
            .find(|p| p.id == id)
            .ok_or_else(|| ApiError::invalid_product(catalog)),
    }
}

/// The body's `plan`, if the catalog offers it for trial; else 400 `invalid_plan`.
pub(super) fn trialable_plan<'c>(
    app: &'c App,
    plan: Option<&str>,
) -> Result<&'c PlanTerms, ApiError> {
    let catalog = &app.config.catalog;
    plan.and_then(|id| catalog.get_trialable(id))
        .ok_or_else(|| ApiError::invalid_plan(catalog))
}

/// A new trial of `terms` for the key's org and project, started at `now`.
pub(super) fn new_trial(tenant: &Tenant, now: i64, terms: TrialTerms) -> Trial {
    Trial::start(TrialId::generate(), tenant.org.clone(), now, terms)
        .in_project(tenant.project.clone())
}

/// The org guard as a rejection on it found it: the trial the org already used, and its project.
pub(super) fn used_guard(rejection: &Rejection) -> Option<Guard> {
    rejection.old(Slot::OrgGuard).map(Guard::from_item)
}

/// 409 `trial_already_exists`, naming the org's trial when the guard knows it and the key may
/// read it (issue 26): a key limited to other projects would get 404 for every read of that
/// id, so it is not told the id either.
pub(super) fn already_used(tenant: &Tenant, used: Option<&Guard>) -> ApiError {
    let readable = used.filter(|guard| tenant.may_act_on(guard.project_id.as_ref()));
    let message = match readable.and_then(|guard| guard.trial_id.as_ref()) {
        Some(id) => format!("This organization has already used its trial ({id})"),
        None => "This organization has already used its trial".to_owned(),
    };
    ApiError::new(ErrorCode::TrialAlreadyExists, message)
}

/// The activation window of a trial that starts on activation (`None`: it starts now): the
/// body's `starts` (`on_start` or `on_activation`), else the plan's; 400 `invalid_field` for
/// any other value.
fn activation_window(body: &Map<String, Value>, plan: &PlanTerms) -> Result<Option<i64>, ApiError> {
    let starts = match body.get("starts") {
        None | Some(Value::Null) => plan.starts,
        Some(value) => value.as_str().and_then(Starts::parse).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidField,
                "starts must be \"on_start\" or \"on_activation\"",
            )
        })?,
    };
    Ok((starts == Starts::OnActivation).then_some(plan.activation_window_secs))
}

/// The trial the applicant starts (`window`: PENDING for that long, waiting for its
/// activation), and the 201 that answers it.
fn decide(
    app: &App,
    tenant: &Tenant,
    applicant: &Applicant,
    (terms, window): (TrialTerms, Option<i64>),
    now_ms: i64,
) -> Result<(Trial, Reply), ApiError> {
    let now = now_ms.div_euclid(1000);
    let mut trial = match window {
        None => new_trial(tenant, now, terms),
        Some(window) => {
            Trial::start_pending(TrialId::generate(), tenant.org.clone(), now, terms, window)
                .in_project(tenant.project.clone())
        }
    };
    if let (Some(_), Some(_)) = (applicant.admin.expires_at, window) {
        return Err(ApiError::new(
            ErrorCode::InvalidExpiration,
            "A trial that starts on activation has no end before it is activated",
        ));
    }
    if let Some(at) = applicant.admin.expires_at {
        let at = check_expiration(at, now, trial.started_at, &trial.terms)?;
        trial = trial.ending_at(at);
    }
    trial.notes = applicant.admin.notes.clone();
    let redirect = redirect_for(app, applicant, &trial.id)?;
    trial.applicant = applicant::stored(applicant);
    let mut view = trial.started_view(tenant.privilege());
    if let Some(url) = redirect {
        view["redirect_url"] = url.into();
    }
    Ok((trial, Reply::json(201, &view)))
}

/// Why a start's write did not commit.
enum Refused {
    /// A reused signal of a blocking kind.
    Blocked {
        kind: SignalKind,
        matched_org: Option<String>,
    },
    /// The key or the org guard (or, never, the fresh trial id).
    Rejected(Rejection),
}

/// The start's transaction, tried again as the signal check decides (see
/// [`crate::services::signals`]).
async fn write(
    app: &App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    trial: &Trial,
    reply: &Reply,
    check: &mut SignalCheck,
    now_ms: i64,
) -> Result<Result<(), Refused>, ApiError> {
    for attempt in 1.. {
        let tx = start_tx(app, idempotency, tenant, trial, reply, check, now_ms)?;
        let rejection = match tx.commit().await? {
            Outcome::Committed => return Ok(Ok(())),
            Outcome::Rejected(rejection) => rejection,
        };
        // The guard and the idempotency key answer first; signals only matter for an org that
        // could otherwise start.
        if rejection.failed(Slot::Idempotency)
            || rejection.failed(Slot::OrgGuard)
            || !SignalCheck::involved(&rejection)
        {
            return Ok(Err(Refused::Rejected(rejection)));
        }
        match check.after(app, &tenant.org, &rejection).await? {
            Next::Retry if attempt < signals::ATTEMPTS => continue,
            Next::Retry => break,
            Next::Blocked { kind, matched_org } => {
                return Ok(Err(Refused::Blocked { kind, matched_org }))
            }
        }
    }
    Err(StoreError::Unavailable("start: signal conditions kept changing".into()).into())
}

/// One attempt's transaction: the guard, the trial, the answer, `trial.started`,
/// the reminder cursor and the signal items.
fn start_tx<'a>(
    app: &'a App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    trial: &Trial,
    reply: &Reply,
    check: &SignalCheck,
    now_ms: i64,
) -> Result<Tx<'a>, StoreError> {
    let now = now_ms.div_euclid(1000);
    let store = &app.store;
    let policy = trial.policy();
    let mut extra =
        json!({ "project_id": tenant.project.as_str(), "expires_at": rfc3339(trial.expires_at) });
    if let Some(at) = trial.activate_by {
        // Not started yet: no end, a deadline to activate by.
        extra["expires_at"] = Value::Null;
        extra["starts"] = Starts::OnActivation.as_str().into();
        extra["activate_by"] = rfc3339(at).into();
    }
    if let Some(applicant) = &trial.applicant {
        extra["applicant"] = applicant.to_json();
    }
    check.event_fields(&mut extra);
    let event = DomainEvent::for_trial(EventKind::Started, trial, now, None, extra);
    let tx = store
        .tx()
        .put(
            Slot::OrgGuard,
            store.guard_put(trial, &product_of(app, trial))?,
        )
        .put(Slot::Trial, store.trial_put(trial, policy)?)
        .put(Slot::TrialNumber, store.trial_number_put(trial)?);
    let terms = app.config.lifecycle_terms(trial);
    let tx = idempotency
        .complete(app, tx, reply, now_ms)?
        .event(&event, now)?
        // The reminder cursor, at the first reminder not already past (see store::reminders).
        .reminder(store.reminder_rearm(trial, now, &terms, policy)?);
    check.add_to(app, tx, store, &tenant.org, now)
}

/// The 201's `redirect_url`, when the applicant asked for one: only to an allowed origin.
fn redirect_for(
    app: &App,
    applicant: &Applicant,
    id: &TrialId,
) -> Result<Option<String>, ApiError> {
    let Some(origin) = applicant.redirect_url_origin.as_deref() else {
        return Ok(None);
    };
    let config = &app.config.applicant;
    Ok(Some(redirect_url(
        origin,
        &config.redirect_origins,
        &config.redirect_path,
        id,
        applicant.redirect_url_query_params.as_deref(),
    )?))
}

/// A start refused for a reused signal of a blocking kind: `403 trial_not_eligible` with
/// `reason: "signal_reused"`, stored for the idempotency key in one transaction with the
/// `trial.blocked` event and the org's refusal record (`trialctl trials why`). The message
/// does not say which signal matched (that would tell an abuser what to change); the event and
/// the record do.
async fn refuse_blocked(
    app: &App,
    idempotency: &Idempotency,
    tenant: &Tenant,
    trial: &Trial,
    kind: SignalKind,
    matched_org: Option<String>,
) -> Result<Reply, ApiError> {
    let now_ms = app.clock.now_millis();
    let now = now_ms.div_euclid(1000);
    let body = json!({ "error": {
        "code": ErrorCode::TrialNotEligible.as_str(),
        "message": "This organization is not eligible for a free trial",
        "reason": "signal_reused",
    }});
    let mut reply = Reply::json(ErrorCode::TrialNotEligible.status(), &body);
    reply.code = Some(ErrorCode::TrialNotEligible);
    let event = DomainEvent::for_org(
        EventKind::Blocked,
        &tenant.org,
        (&trial.plan, &trial.terms.product.id),
        now,
        trial.id.as_str(),
        json!({
            "project_id": tenant.project.as_str(),
            "reason": "signal_reused",
            "signal_kind": kind.as_str(),
            "matched_org_id": matched_org,
        }),
    );
    let refusal = Refusal {
        reason: "signal_reused".into(),
        signal_kind: Some(kind),
        at: now,
    };
    let store = &app.store;
    let outcome = store
        .tx()
        .answer(
            &idempotency.scope,
            &idempotency.fingerprint,
            &reply.stored(),
            now_ms,
            app.config.idempotency_ttl_secs,
        )?
        .put(
            Slot::Refusal,
            store.refusal_put(&tenant.org, &product_of(app, trial), &refusal)?,
        )
        .event(&event, now)?
        .commit()
        .await?;
    match outcome {
        Outcome::Committed => Ok(reply),
        Outcome::Rejected(r) if r.failed(Slot::Idempotency) => {
            idempotency
                .answer_conflict(app, r.old(Slot::Idempotency))
                .await
        }
        Outcome::Rejected(r) => Err(StoreError::Unavailable(format!(
            "refusal rejected on {:?}",
            r.slots().collect::<Vec<_>>()
        ))
        .into()),
    }
}
