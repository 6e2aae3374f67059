//! Who is calling: the API key in `Authorization: Bearer <key>` (or `apikey <key>`, Gcore's
//! scheme), and the tenant (org, project) it lets the request act for.
//!
//! Checks, in order (the first failing one answers):
//! 1. `Authorization` carries a live key: missing, malformed, unknown, wrong secret or revoked
//!    are all **401** `unauthorized`, with the same body, so nothing tells them apart.
//! 2. `X-Org-Id`: missing or malformed 400; not the key's org **403** `forbidden`.
//! 3. `X-Project-Id`: missing or malformed 400; not allowed for the key **403** `forbidden`.
//!
//! The key is checked against its record (SHA-256 compared in constant time) or against the
//! warm function's [`KeyCache`]. On a cold cache the record costs one read, which a status
//! request shares with its trial read ([`KeyCheck::NeedsRecord`]).
//!
//! Authentication takes what it reads, an [`Authenticator`] (the cache, the store, the clock),
//! not the whole `App`: `app` builds on `auth`, never the other way round.
pub mod cache;
pub mod issue;

use lambda_http::Request;

use crate::clock::Clock;
use crate::crypto;
use crate::domain::api_key::{ApiKey, KeyInfo, Projects};
use crate::domain::applicant::Privilege;
use crate::domain::{OrgId, ProjectId};
use crate::headers::{header, org_id, project_id, HeaderError};
use crate::jwt;
use crate::store::api_keys::StoredKey;
use crate::store::{Store, StoreError};

pub use cache::{Cached, KeyCache};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub org: OrgId,
    pub project: ProjectId,
    /// The key the request came with (its id only: safe to log and record).
    pub key_id: String,
    /// Whether the key is an admin key ([`KeyInfo::admin`]).
    pub admin: bool,
    /// The projects the key may act for: the trials it may act on are theirs
    /// ([`Tenant::may_act_on`]).
    pub projects: Projects,
}

impl Tenant {
    /// Whether the request's key may act on a trial of its org started under `project`: a key
    /// for all projects acts on every trial of the org; a key limited to projects acts only on
    /// the trials started under one of them. A trial whose project is unknown (`None`, stored
    /// before projects were recorded) is for keys for all projects only.
    pub fn may_act_on(&self, project: Option<&ProjectId>) -> bool {
        match (&self.projects, project) {
            (Projects::All, _) => true,
            (Projects::Only(_), Some(project)) => self.projects.allows(project),
            (Projects::Only(_), None) => false,
        }
    }
    /// What the key may set and read of the admin-only fields (`expires_at`, `notes`).
    pub fn privilege(&self) -> Privilege {
        if self.admin {
            Privilege::Admin
        } else {
            Privilege::Standard
        }
    }
}

/// Why a request is not let through.
#[derive(Debug)]
pub enum AuthError {
    /// No live key: 401, whatever the reason.
    Unauthorized,
    /// A live key that does not cover the org or project named (`"organization"`, `"project"`).
    Forbidden(&'static str),
    Header(HeaderError),
    /// The key record could not be read: a store failure, never a verdict.
    Store(StoreError),
    /// An end user's JWT that does not verify (see [`jwt`]): 401 with its own code.
    Jwt(jwt::JwtError),
}

impl From<HeaderError> for AuthError {
    fn from(e: HeaderError) -> Self {
        AuthError::Header(e)
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

/// The key of a request before its record is read.
pub enum KeyCheck {
    /// The cache had a fresh verdict: a live key's info.
    Known(KeyInfo),
    /// The record must be read (and handed to [`Authenticator::decide`]).
    NeedsRecord(ApiKey),
}

/// What authentication reads: the warm function's verdicts, the key records and the time
/// (a verdict is cached for the TTL from the moment it is decided). Cheap to build per request
/// (three references; `App::auth` builds it).
#[derive(Clone, Copy)]
pub struct Authenticator<'a> {
    pub cache: &'a KeyCache,
    pub store: &'a Store,
    pub clock: &'a dyn Clock,
}

impl Authenticator<'_> {
    /// The first step: the bearer key, and the cache's verdict on it if it has one.
    pub fn check(&self, req: &Request) -> Result<KeyCheck, AuthError> {
        let key = bearer_key(req).ok_or(AuthError::Unauthorized)?;
        match self.cache.get(&key.hash(), self.clock.now_millis()) {
            Cached::Verified(info) => Ok(KeyCheck::Known(info)),
            Cached::Refused => Err(AuthError::Unauthorized),
            Cached::Unknown => Ok(KeyCheck::NeedsRecord(key)),
        }
    }

    /// The verdict on `key` given its record as read: live (exists, this secret, not revoked)
    /// or not. Either way it is cached.
    pub fn decide(&self, key: &ApiKey, record: Option<StoredKey>) -> Option<KeyInfo> {
        let hash = key.hash();
        let now_ms = self.clock.now_millis();
        let live = record
            .filter(|stored| crypto::constant_time_eq(stored.hash.as_bytes(), hash.as_bytes()))
            .map(|stored| stored.info)
            .filter(|info| !info.revoked());
        match &live {
            Some(info) => self.cache.put_verified(hash, info.clone(), now_ms),
            None => self.cache.put_refused(hash, now_ms),
        }
        live
    }

    /// All three steps, reading the key record on its own when the cache has no verdict.
    pub async fn authenticate(&self, req: &Request) -> Result<Tenant, AuthError> {
        let info = match self.check(req)? {
            KeyCheck::Known(info) => Some(info),
            KeyCheck::NeedsRecord(key) => {
                let record = self.store.get_api_key(key.key_id()).await?;
                self.decide(&key, record)
            }
        };
        tenant(req, info)
    }

    /// The live key a route read from its own header (`None`: no key of our form): 401
    /// `unauthorized` unless it is live ([`Authenticator::verify`]).
    pub async fn require(&self, key: Option<ApiKey>) -> Result<KeyInfo, AuthError> {
        let key = key.ok_or(AuthError::Unauthorized)?;
        self.verify(&key).await?.ok_or(AuthError::Unauthorized)
    }

    /// Edge Impulse's route: the tenant of an API key (`x-api-key` or `Authorization`, no
    /// tenant headers: [`tenant_for_org`] on the key's org), or, when no key of our form is
    /// sent but an end user's JWT is (`Authorization: Bearer`, `x-jwt-token`, the `jwt`
    /// cookie, or API Gateway's claims), the JWT's tenant ([`jwt_tenant`]: one verifier, a
    /// standard key's rights on the claim's org). Neither: 401 `unauthorized`.
    pub async fn key_or_jwt(
        &self,
        jwt: &jwt::JwtConfig,
        req: &Request,
    ) -> Result<Tenant, AuthError> {
        let key = api_key_header(req);
        let source = jwt::TokenSource::EdgeImpulse;
        if key.is_none() && header(req, "x-api-key").is_none() && source.presented(req) {
            return jwt_tenant(jwt, req, source, self.clock.now());
        }
        let info = self.require(key).await?;
        let org = info.org.clone();
        tenant_for_org(info, org)
    }

    /// What `key` may do if it is live: the cache's fresh verdict, else one read of its
    /// record. A failing store is an error, never a verdict.
    pub async fn verify(&self, key: &ApiKey) -> Result<Option<KeyInfo>, StoreError> {
        match self.cache.get(&key.hash(), self.clock.now_millis()) {
            Cached::Verified(info) => Ok(Some(info)),
            Cached::Refused => Ok(None),
            Cached::Unknown => {
                let record = self.store.get_api_key(key.key_id()).await?;
                Ok(self.decide(key, record))
            }
        }
    }
}

/// The tenant the request names, if `info` (a live key) covers it.
pub fn tenant(req: &Request, info: Option<KeyInfo>) -> Result<Tenant, AuthError> {
    let info = info.ok_or(AuthError::Unauthorized)?;
    let org = org_id(req)?;
    if org != info.org {
        return Err(AuthError::Forbidden("organization"));
    }
    let project = project_id(req)?;
    if !info.projects.allows(&project) {
        return Err(AuthError::Forbidden("project"));
    }
    Ok(acting(info, org, project))
}

/// The tenant `info`'s key acts as, once its org and project are checked.
fn acting(info: KeyInfo, org: OrgId, project: ProjectId) -> Tenant {
    Tenant {
        org,
        project,
        key_id: info.key_id,
        projects: info.projects,
        admin: info.admin,
    }
}

/// The key of `Authorization: Bearer <key>`, or `Authorization: apikey <key>` as Gcore's
/// clients send it (scheme case-insensitive), if it has our form.
pub fn bearer_key(req: &Request) -> Option<ApiKey> {
    let value = header(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("apikey") {
        return None;
    }
    ApiKey::parse(token.trim())
}

/// The key of `x-api-key: <key>` (Edge Impulse's header), else of `Authorization`
/// ([`bearer_key`]).
pub fn api_key_header(req: &Request) -> Option<ApiKey> {
    match header(req, "x-api-key") {
        Some(value) => ApiKey::parse(value.trim()),
        None => bearer_key(req),
    }
}

/// The tenant a live key acts for when the org comes from the request's own parameters rather
/// than `X-Org-Id` (Gcore's `client_id`) and no project is named: the key's org only (403
/// `forbidden` otherwise), under its first project (a key for all projects: [`ALL_PROJECTS`]);
/// the trials it may read are still its projects' ([`Tenant::may_act_on`]).
pub fn tenant_for_org(info: KeyInfo, org: OrgId) -> Result<Tenant, AuthError> {
    if org != info.org {
        return Err(AuthError::Forbidden("organization"));
    }
    let project = match &info.projects {
        Projects::Only(projects) => projects.first().cloned(),
        Projects::All => None,
    };
    let project = project
        .or_else(|| ProjectId::parse(ALL_PROJECTS))
        .ok_or(AuthError::Forbidden("project"))?;
    Ok(acting(info, org, project))
}

/// The project a tenant without `X-Project-Id` names when its key is for all projects.
pub const ALL_PROJECTS: &str = "all";

/// What the log line and the idempotency record name as the "key" of a JWT caller (never the
/// token or its subject: personal data stays out of logs).
pub const JWT_KEY_ID: &str = "jwt";

/// The project of a JWT caller's request without `X-Project-Id`.
pub const JWT_DEFAULT_PROJECT: &str = "default";

/// The tenant of an end user's JWT ([`jwt`]): the org its claim names, with a standard key's
/// rights there, for every project. An `X-Org-Id` naming another org is 403; `X-Project-Id`,
/// when sent, must be well formed. `source`: where the token is read ([`jwt::TokenSource`]).
/// `now` in seconds.
pub fn jwt_tenant(
    config: &jwt::JwtConfig,
    req: &Request,
    source: jwt::TokenSource,
    now: i64,
) -> Result<Tenant, AuthError> {
    let claims = config.claims(req, source, now).map_err(AuthError::Jwt)?;
    let org = config.org(&claims).map_err(AuthError::Jwt)?;
    let org = OrgId::parse(org).ok_or(AuthError::Jwt(jwt::JwtError::MissingOrg))?;
    if header(req, "x-org-id").is_some() && org_id(req)? != org {
        return Err(AuthError::Forbidden("organization"));
    }
    let project = match header(req, "x-project-id") {
        Some(_) => project_id(req)?,
        None => ProjectId::parse(JWT_DEFAULT_PROJECT).ok_or(AuthError::Unauthorized)?,
    };
    Ok(Tenant {
        org,
        project,
        key_id: JWT_KEY_ID.to_owned(),
        admin: false,
        projects: Projects::All,
    })
}
