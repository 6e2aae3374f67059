//! `Idempotency-Key` as the IETF draft (draft-ietf-httpapi-idempotency-key-header) and Stripe
//! describe it: scoped per org, fingerprinted, replayed byte for byte, never run twice at once.
//!
//! A stored answer is about a trial that only some of the org's keys may act on (see
//! [`super::owned`]), so the fingerprint also covers the projects the request's key is limited
//! to: an answer is replayed only to a request whose key may act on exactly the same trials;
//! any other gets `422 idempotency_key_reused`. A key for all projects adds nothing there.
//!
//! The request's project (`X-Project-Id`) is part of the fingerprint too (issue 26): the same
//! key and body under another project is another request, answered `422
//! idempotency_key_reused`, never a replay of the first project's trial.
//!
//! So is an admin key (issue 26): an admin's answer may carry the trial's `notes`, which only
//! admin keys read, so it is replayed to admin keys only; a standard key of the same org and
//! projects with the same key and body gets `422 idempotency_key_reused`, not the notes.
use lambda_http::Request;
use serde_json::Value;

use super::error::ApiError;
use super::reply::Reply;
use crate::auth::Tenant;
use crate::crypto::sha256_hex;
use crate::domain::api_key::Projects;
use crate::domain::ErrorCode;
use crate::domain::{Trial, TrialId};
use crate::headers::header;
use crate::services::transition::Attempt;
use crate::store::codec::Item;
use crate::store::idempotency::{Claim, IdemRecord, IdemScope, IdemState};
use crate::store::{StoreError, Tx};
use crate::App;

pub const MAX_KEY_LEN: usize = 255;

/// A mutation's key and the fingerprint of the request it was first used with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: IdemScope,
    pub fingerprint: String,
    /// The request's API key id: who made the change, in the trial's timeline.
    pub actor: String,
}

impl Idempotency {
    /// `canonical_path` is the route's path with the trial id, so a REST API stage prefix or a
    /// trailing slash cannot change the fingerprint.
    pub fn from_request(
        req: &Request,
        tenant: &Tenant,
        canonical_path: &str,
    ) -> Result<Idempotency, ApiError> {
        let raw = header(req, "idempotency-key").ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingIdempotencyKey,
                "Mutation request missing Idempotency-Key header",
            )
        });
        // A header that is present but not visible ASCII is reported as invalid, not missing.
        let raw = match raw {
            Ok(raw) => raw,
            Err(_) if req.headers().contains_key("idempotency-key") => return Err(invalid_key()),
            Err(missing) => return Err(missing),
        };
        let key = parse_key(raw)?;
        let mut fingerprint = fingerprint_for(
            &tenant.projects,
            tenant.project.as_str(),
            req.method().as_str(),
            canonical_path,
            req.body().as_ref(),
        );
        if tenant.admin {
            // An admin key's answer may carry `notes`, which only admin keys read: it is
            // replayed to admin keys only (a standard key gets `idempotency_key_reused`).
            fingerprint = sha256_hex(format!("admin\n{fingerprint}").as_bytes());
        }
        Ok(Idempotency {
            scope: IdemScope {
                org: tenant.org.clone(),
                key,
            },
            fingerprint,
            actor: tenant.key_id.clone(),
        })
    }

    /// The key of a request on the trial of its path (`/v1/trials/{id}` and `suffix`, e.g.
    /// `/cancel`), with that trial's id (recorded in the log line).
    pub fn for_trial(
        req: &Request,
        tenant: &Tenant,
        log: &mut super::LogFields,
        suffix: &str,
    ) -> Result<(TrialId, Idempotency), ApiError> {
        let id = super::request::logged_trial_id(req, log)?;
        let idempotency =
            Idempotency::from_request(req, tenant, &format!("/v1/trials/{id}{suffix}"))?;
        Ok((id, idempotency))
    }

    /// The answer for a key someone already holds.
    pub fn answer(&self, record: IdemRecord) -> Reply {
        if record.fingerprint != self.fingerprint {
            return ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was already used with a different request",
            )
            .into();
        }
        match record.state {
            IdemState::Completed(stored) => Reply::replay(stored),
            IdemState::InFlight { .. } => ApiError::new(
                ErrorCode::IdempotencyKeyInUse,
                "A request with this Idempotency-Key is still being processed; retry later",
            )
            .retryable()
            .into(),
        }
    }

    /// The answer when a conditional write found the key taken: from the old item DynamoDB
    /// returned, or read back if it did not.
    pub async fn answer_conflict(&self, app: &App, old: Option<&Item>) -> Result<Reply, ApiError> {
        let record = match old {
            Some(item) => Some(IdemRecord::from_item(item)?),
            None => app.store.idempotency_get(&self.scope).await?,
        };
        match record {
            Some(record) => Ok(self.answer(record)),
            // Gone between the write and the read (expired and swept): the client may retry.
            None => Err(ApiError::unavailable()),
        }
    }

    /// Takes the lease on the key for a request with an effect outside the table (a Stripe
    /// call): never two executions at once. `Err(reply)` answers for a key someone already
    /// holds (the stored answer, or `idempotency_key_in_use`). One conditional write.
    pub async fn lease(
        &self,
        app: &App,
        req: &Request,
        now_ms: i64,
    ) -> Result<Result<Lease, Reply>, ApiError> {
        let token = crate::crypto::random_hex(16);
        let deadline_ms = super::request::deadline_ms(req, now_ms);
        let until = lease_until(deadline_ms, now_ms, app.config.idempotency_lease_secs);
        let claim = app
            .store
            .idempotency_acquire(
                &self.scope,
                &self.fingerprint,
                &token,
                until,
                now_ms,
                app.config.idempotency_ttl_secs,
            )
            .await?;
        Ok(match claim {
            Claim::Held(existing) => Err(self.answer(existing)),
            Claim::Taken => Ok(Lease { token, deadline_ms }),
        })
    }

    /// Adds this request's completed answer `reply` to `tx` (the `Idempotency` slot): it
    /// commits with the effect it answers for, or fails if the key was claimed meanwhile.
    pub fn complete<'a>(
        &self,
        app: &App,
        tx: Tx<'a>,
        reply: &Reply,
        now_ms: i64,
    ) -> Result<Tx<'a>, StoreError> {
        let ttl = app.config.idempotency_ttl_secs;
        tx.by(&self.actor)
            .answer(&self.scope, &self.fingerprint, &reply.stored(), now_ms, ttl)
    }

    /// The org's trial `id` for a request that holds no lease: `Err(reply)` is the refusal,
    /// stored under the key, when it is not there (see [`super::owned`]).
    pub async fn load_owned(
        &self,
        app: &App,
        id: &TrialId,
        tenant: &Tenant,
        now_ms: i64,
    ) -> Result<Result<Trial, Reply>, ApiError> {
        match super::owned::load_owned(app, id, tenant).await {
            Ok(trial) => Ok(Ok(trial)),
            Err(err) => self.refuse(app, err, now_ms).await.map(Err),
        }
    }

    /// The answer for a transition written by [`crate::services::transition::retry_on_moved`]
    /// for a request that holds no lease: `Ok(Ok(value))` when it committed; otherwise the
    /// answer (`Ok(Err(reply))`) or the error. A refusal is stored under the key (4xx), a key
    /// taken meanwhile answers with its record, a trial gone answers `gone` (stored), and a
    /// trial that kept moving, or another slot that failed, is 503 (`what` names the move in
    /// the log).
    pub async fn settle<T>(
        &self,
        app: &App,
        attempt: Attempt<T, ApiError>,
        now_ms: i64,
        gone: impl std::future::Future<Output = ApiError>,
        what: &str,
    ) -> Result<Result<T, Reply>, ApiError> {
        let err = match attempt {
            Attempt::Committed(value) => return Ok(Ok(value)),
            Attempt::Conflict(old) => {
                return self.answer_conflict(app, old.as_ref()).await.map(Err)
            }
            Attempt::Refused(err) => err,
            Attempt::Gone => gone.await,
            Attempt::Other(rejection) => {
                let cause = crate::services::transition::Rejected::unavailable(what, &rejection);
                return Err(cause.into());
            }
            Attempt::Exhausted(_) => {
                return Err(
                    StoreError::Unavailable(format!("{what} kept racing other writes")).into(),
                )
            }
        };
        self.refuse(app, err, now_ms).await.map(Err)
    }

    /// Ends a request that holds no lease with a refusal. One the same request would meet
    /// again (4xx) is stored, so the key replays it; a failure of ours (5xx) is not, so a retry
    /// runs afresh.
    pub async fn refuse(&self, app: &App, err: ApiError, now_ms: i64) -> Result<Reply, ApiError> {
        if err.status() >= 500 {
            return Err(err);
        }
        let refusal = Reply::error(&err);
        let claim = app
            .store
            .idempotency_record(
                &self.scope,
                &self.fingerprint,
                &refusal.stored(),
                now_ms,
                app.config.idempotency_ttl_secs,
            )
            .await?;
        Ok(match claim {
            Claim::Taken => refusal,
            Claim::Held(existing) => self.answer(existing),
        })
    }

    /// Ends a request that holds the lease `token` with a refusal: stored if deterministic
    /// (4xx), released otherwise so the retry runs.
    pub async fn refuse_leased(
        &self,
        app: &App,
        token: &str,
        err: ApiError,
        now_ms: i64,
    ) -> Result<Reply, ApiError> {
        if err.status() >= 500 {
            if let Err(e) = app.store.idempotency_release(&self.scope, token).await {
                // The lease still ends at its deadline; the retry waits until then.
                tracing::warn!(error = %e, "idempotency lease not released");
            }
            return Err(err);
        }
        let refusal = Reply::error(&err);
        let put = app.store.idempotency_put_owned(
            &self.scope,
            token,
            &self.fingerprint,
            &refusal.stored(),
            now_ms,
            app.config.idempotency_ttl_secs,
        )?;
        // Losing the lease meanwhile (it ran out and a retry took over) changes nothing for
        // this answer: the retry stores its own.
        app.store.idempotency_complete(put).await?;
        Ok(refusal)
    }
}

/// A lease held on the key: its token, and the invocation's deadline it ends at (if any).
#[derive(Debug, Clone)]
pub struct Lease {
    pub token: String,
    pub deadline_ms: Option<i64>,
}

/// When an in-flight lease ends: at the Lambda invocation's deadline, after which the request
/// cannot still be running; or `fallback_secs` from now when there is no deadline or it has
/// already passed. A lease always has an end (Powertools for AWS Lambda issues #53, #4759: a
/// remaining time of 0 must not mean "for ever", nor "already over").
pub fn lease_until(deadline_ms: Option<i64>, now_ms: i64, fallback_secs: i64) -> i64 {
    match deadline_ms {
        Some(deadline) if deadline > now_ms => deadline,
        _ => now_ms + fallback_secs.max(1) * 1000,
    }
}

fn invalid_key() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidIdempotencyKey,
        format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters, optionally as a quoted string"),
    )
}

/// Accepts a Structured Field string (`"abc"`, with `\"` and `\\` escapes) or a bare token.
pub fn parse_key(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let key = match raw.strip_prefix('"') {
        Some(rest) => {
            let inner = rest.strip_suffix('"').ok_or_else(invalid_key)?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(escaped @ ('"' | '\\')) => out.push(escaped),
                        _ => return Err(invalid_key()),
                    },
                    '"' => return Err(invalid_key()),
                    c => out.push(c),
                }
            }
            out
        }
        None => raw.to_owned(),
    };
    // Visible ASCII, as the README says: no space, no control character.
    let visible = key.chars().all(|c| ('!'..='~').contains(&c));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
        return Err(invalid_key());
    }
    Ok(key)
}

/// SHA-256 over the method, the canonical path and the body's canonical form (JSON with keys
/// sorted and no insignificant whitespace; other bodies as bytes): the fingerprint of a request
/// made with a key for all projects.
pub fn fingerprint(project: &str, method: &str, canonical_path: &str, body: &[u8]) -> String {
    fingerprint_for(&Projects::All, project, method, canonical_path, body)
}

/// The fingerprint of a request under `project` whose key may act for `projects`: a key
/// limited to projects puts the list first (`projects=a,b`, a line no method can be), then
/// comes the request's project (`project=p`, another such line).
pub fn fingerprint_for(
    projects: &Projects,
    project: &str,
    method: &str,
    canonical_path: &str,
    body: &[u8],
) -> String {
    let canonical_body = match serde_json::from_slice::<Value>(body) {
        Ok(value) => canonical_json(&value).into_bytes(),
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => Vec::new(),
        Err(_) => body.to_vec(),
    };
    let mut input = Vec::with_capacity(canonical_body.len() + canonical_path.len() + 16);
    if let Projects::Only(_) = projects {
        input.extend_from_slice(format!("projects={projects}\n").as_bytes());
    }
    input.extend_from_slice(format!("project={project}\n").as_bytes());
    input.extend_from_slice(method.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(canonical_path.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(&canonical_body);
    sha256_hex(&input)
}

fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_is_fingerprinted_as_sent_and_whitespace_as_none() {
        let of = |body: &[u8]| fingerprint("p", "POST", "/v1/trials/t/pause", body);
        assert_eq!(of(b""), of(b" \r\n\t"), "whitespace is no body");
        assert_ne!(of(b""), of(b"not json"));
        assert_ne!(of(b"not json"), of(b"not json either"));
        // JSON is compared as data: formatting and key order do not count.
        assert_eq!(of(br#"{"a":1,"b":2}"#), of(b"{ \"b\" : 2, \"a\" : 1 }"));
    }

    #[test]
    fn a_lease_ends_at_the_deadline_or_after_the_fallback_never_never() {
        assert_eq!(lease_until(Some(5_000), 1_000, 30), 5_000);
        // No deadline, a deadline of 0, or one already passed: the fallback, still finite.
        assert_eq!(lease_until(None, 1_000, 30), 31_000);
        assert_eq!(lease_until(Some(0), 1_000, 30), 31_000);
        assert_eq!(lease_until(Some(1_000), 1_000, 30), 31_000);
        assert_eq!(lease_until(None, 1_000, 0), 2_000);
    }

    #[test]
    fn keys_may_be_quoted_or_bare() {
        assert_eq!(parse_key("abc-123").unwrap(), "abc-123");
        assert_eq!(parse_key("\"8e03978e-40d5\"").unwrap(), "8e03978e-40d5");
        assert_eq!(parse_key(r#""a\"b\\c""#).unwrap(), r#"a"b\c"#);
        assert_eq!(parse_key(&"k".repeat(255)).unwrap().len(), 255);
    }

    #[test]
    fn empty_long_or_malformed_keys_are_invalid() {
        for bad in [
            "",
            "\"\"",
            "   ",
            "\"unterminated",
            "\"bad\\escape\"",
            "\"in\"side\"",
            "a b",
            "\"a b\"",
            "tab\there",
        ] {
            let err = parse_key(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidIdempotencyKey, "{bad:?}");
        }
        assert_eq!(parse_key(&"k".repeat(256)).unwrap_err().status(), 400);
    }

    #[test]
    fn fingerprint_ignores_json_formatting_but_not_content() {
        let a = fingerprint(
            "p",
            "POST",
            "/v1/trials/start",
            br#"{"plan":"pro","x":[1,2]}"#,
        );
        let b = fingerprint(
            "p",
            "POST",
            "/v1/trials/start",
            b"{ \"x\": [1, 2],\n \"plan\": \"pro\" }",
        );
        let c = fingerprint(
            "p",
            "POST",
            "/v1/trials/start",
            br#"{"plan":"growth","x":[1,2]}"#,
        );
        let d = fingerprint(
            "p",
            "POST",
            "/v1/trials/other",
            br#"{"plan":"pro","x":[1,2]}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(
            fingerprint("p", "POST", "/p", b""),
            fingerprint("p", "POST", "/p", b"  ")
        );
    }

    #[test]
    fn a_key_limited_to_projects_has_fingerprints_of_its_own() {
        use crate::domain::ProjectId;
        let only = |names: &[&str]| {
            Projects::from_list(names.iter().map(|n| ProjectId::parse(n).unwrap()).collect())
        };
        let all = fingerprint("p", "POST", "/p", b"{}");
        assert_eq!(
            fingerprint_for(&Projects::All, "p", "POST", "/p", b"{}"),
            all
        );
        let ab = fingerprint_for(&only(&["a", "b"]), "p", "POST", "/p", b"{}");
        assert_ne!(ab, all);
        assert_ne!(ab, fingerprint_for(&only(&["a"]), "p", "POST", "/p", b"{}"));
        // The same grant, however listed: the same fingerprint.
        assert_eq!(
            ab,
            fingerprint_for(&only(&["b", "a"]), "p", "POST", "/p", b"{}")
        );
    }

    #[test]
    fn the_requests_project_is_part_of_the_fingerprint() {
        let a = fingerprint("proj_a", "POST", "/v1/trials/start", b"{}");
        assert_ne!(a, fingerprint("proj_b", "POST", "/v1/trials/start", b"{}"));
        assert_eq!(a, fingerprint("proj_a", "POST", "/v1/trials/start", b"{}"));
    }
}
