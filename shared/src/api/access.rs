//! `GET /v1/access?product=`: what the calling org may use now, from its trial: `{plan, source,
//! until, options: [{feature, value, used, remaining, allowed}]}` (decided by
//! [`crate::domain::access`]), for a product that asks on every request of its own.
//!
//! **One round trip** once the function knows the org's trial: the org guard names it and never
//! changes which (see [`crate::store::org_guard::KnownTrials`]), so a warm function reads the
//! trial alone, consistently; with no cached verdict on the API key, the key record and the
//! trial in one consistent `BatchGetItem`, as `GET /v1/trials/{id}` does (the trial is ignored,
//! unread by anyone, when the key fails). The first request of an org per function reads the
//! guard first (two, three with a cold key). The
//! answer carries an `ETag` (of the body) and `Cache-Control: private, max-age=5`; a request
//! whose `If-None-Match` names the current tag is answered 304 with no body (after the same
//! read: the tag is of the answer as of now).
//!
//! `product`, when given, must be a product of the catalog (400 `invalid_product`); a trial of
//! another product gives `source: "none"`. An unknown or repeated parameter is 400
//! `invalid_field`. A key limited to projects sees only its projects' trial (else `none`).
use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::request::unknown_field;
use super::stats::query_pairs;
use super::LogFields;
use crate::auth::{self, KeyCheck, Tenant};
use crate::domain::access::Access;
use crate::domain::{ErrorCode, Trial};
use crate::headers::org_id;
use crate::App;

/// How long a client may reuse an answer without asking again, in seconds.
pub const MAX_AGE_SECS: u32 = 5;

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let (tenant, read) = authenticate(app, req, log).await?;
    let product = product(req, app)?;
    let access = org_access(app, &tenant, product.as_deref(), read, log).await?;
    Ok(cached(req, Reply::json(200, &access.view())))
}

/// The org's trial as read with the API key's record on a cold cache (`None`: not read yet).
pub type Prefetched = Option<Option<Trial>>;

/// The request's tenant, as every keyed route's (see [`crate::auth`]). On a cold key cache, when
/// this function knows which trial the named org has, the key record and that trial are read in
/// one `BatchGetItem` (the org is the one the key must be for: another is refused before the
/// trial is looked at).
pub async fn authenticate(
    app: &App,
    req: &Request,
    log: &mut LogFields,
) -> Result<(Tenant, Prefetched), ApiError> {
    let keys = app.auth();
    let known = org_id(req).ok().and_then(|org| app.known_trials.get(&org));
    let (tenant, read) = match (keys.check(req)?, known) {
        (KeyCheck::NeedsRecord(key), Some(known)) => {
            let read = app
                .store
                .get_api_key_and_trial(key.key_id(), &known.trial_id);
            let (record, trial) = read.await?;
            (auth::tenant(req, keys.decide(&key, record))?, Some(trial))
        }
        _ => (keys.authenticate(req).await?, None),
    };
    log.tenant(&tenant);
    Ok((tenant, read))
}

/// The `product` parameter, checked against the catalog.
fn product(req: &Request, app: &App) -> Result<Option<String>, ApiError> {
    let pairs = query_pairs(req);
    if let Some((name, _)) = pairs
        .iter()
        .enumerate()
        .find(|(at, (name, _))| name != "product" || pairs[..*at].iter().any(|(n, _)| n == name))
        .map(|(_, pair)| pair)
    {
        return Err(unknown_field(name));
    }
    let Some((_, product)) = pairs.into_iter().next() else {
        return Ok(None);
    };
    if !app
        .config
        .catalog
        .plans()
        .iter()
        .any(|p| p.product.id == product)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidProduct,
            "product: the catalog has no plan of this product",
        ));
    }
    Ok(Some(product))
}

/// The org's access to `product` (any product when `None`) as of now: its trial found through
/// its guard (the one lookup, [`crate::store::Store::org_trial`]), settled, then decided.
pub async fn org_access(
    app: &App,
    tenant: &Tenant,
    product: Option<&str>,
    read: Prefetched,
    log: &mut LogFields,
) -> Result<Access, ApiError> {
    let Some(known) = app.store.org_trial(&tenant.org, &app.known_trials).await? else {
        return Ok(Access::none());
    };
    if !tenant.may_act_on(known.project_id.as_ref()) {
        return Ok(Access::none());
    }
    log.trial_id = Some(known.trial_id.to_string());
    // Missing: purged (the guard stays, marked), which leaves nothing to use.
    let found = match read {
        Some(found) => found,
        None => app.store.get_trial(&known.trial_id).await?,
    };
    let Some(trial) = found else {
        return Ok(Access::none());
    };
    if trial.org_id != tenant.org || product.is_some_and(|p| trial.terms.product.id != p) {
        return Ok(Access::none());
    }
    let now = app.now();
    let terms = app.config.lifecycle_terms(&trial);
    let policy = trial.policy();
    let trial = trial.settled_at(now, policy, &terms);
    Ok(Access::of(&trial, now))
}

/// `reply` with its `ETag` and `Cache-Control`, or 304 when `If-None-Match` names the tag.
pub fn cached(req: &Request, reply: Reply) -> Reply {
    let tag = format!(
        "\"{}\"",
        &crate::crypto::sha256_hex(reply.body.as_bytes())[..32]
    );
    let matches = crate::headers::header(req, "if-none-match").is_some_and(|sent| {
        sent.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    });
    let reply = if matches {
        Reply {
            status: 304,
            body: String::new(),
            ..reply
        }
    } else {
        reply
    };
    reply
        .with_header("etag", tag)
        .with_header("cache-control", format!("private, max-age={MAX_AGE_SECS}"))
}
