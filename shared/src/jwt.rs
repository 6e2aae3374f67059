//! End users' JWTs (issue 27 item 4): what lets a SaaS's own web app call start, status and
//! `/current` for the signed-in user's org, on the `/v1/me/...` routes ([`crate::api::Auth::Jwt`]).
//!
//! **Who verifies.** In AWS, API Gateway's HTTP API JWT authorizer does (issuer and audience
//! are template parameters): the function reads the verified claims from the request context
//! (`requestContext.authorizer.jwt.claims`) and never sees an unverified token there. Locally,
//! `trials-local` verifies the same tokens itself, with the keys its configuration gives
//! ([`JwtConfig::keys`]: an HS256 secret `JWT_HS256_SECRET`, or a JWKS file `JWT_JWKS_FILE` of
//! RSA (RS256) and `oct` (HS256) keys), so the flow is tested end to end. A request with
//! neither verified claims nor a key to check them is 401. The token is read from
//! `Authorization: Bearer`; on Edge Impulse's `POST /api/user/trial` also from its
//! `x-jwt-token` header and `jwt` cookie ([`TokenSource`], [`super::Authenticator::key_or_jwt`]).
//!
//! **What a token grants.** The org its `JWT_ORG_CLAIM` claim names (default `org_id`), with a
//! standard key's rights on that org only, for every project: an `X-Org-Id` naming another org
//! is 403 `forbidden`; `X-Project-Id` is optional (default `default`).
//!
//! **Refusals**, each 401 with a stable code: a token that is missing, malformed, signed with
//! another key or another algorithm than HS256 / RS256 (`invalid_token`); expired or not yet
//! valid (`token_expired`, 60 s of clock leeway); another issuer (`invalid_token_issuer`) or
//! audience (`invalid_token_audience`) than configured; no usable org claim
//! (`token_missing_org`). Cost: one HMAC or one RSA verification, no I/O.
use std::collections::HashMap;

use lambda_http::Request;
use serde_json::{Map, Value};

use crate::crypto::{self, Secret};
use crate::domain::ErrorCode;

/// The claim naming the caller's org when `JWT_ORG_CLAIM` is not set.
pub const DEFAULT_ORG_CLAIM: &str = "org_id";
/// Clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;

/// How tokens are checked; read once at init ([`JwtConfig::from_lookup`]).
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// `iss` must be this, when set (`JWT_ISSUER`; API Gateway checks it in AWS).
    pub issuer: Option<String>,
    /// `aud` must be or contain this, when set (`JWT_AUDIENCE`).
    pub audience: Option<String>,
    /// The claim naming the org (`JWT_ORG_CLAIM`).
    pub org_claim: String,
    /// Keys to verify signatures with: empty in AWS (the authorizer verified the token).
    pub keys: Vec<VerifyKey>,
}

/// A key a token's signature may be checked with.
#[derive(Clone)]
pub enum VerifyKey {
    Hs256 {
        kid: Option<String>,
        secret: Secret,
    },
    Rs256 {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyKey::Hs256 { kid, .. } => write!(f, "Hs256({kid:?}, <redacted>)"),
            VerifyKey::Rs256 { kid, .. } => write!(f, "Rs256({kid:?})"),
        }
    }
}

/// Why a token is refused: each a 401 with its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    Invalid,
    Expired,
    Issuer,
    Audience,
    MissingOrg,
}

impl JwtError {
    pub fn code(self) -> ErrorCode {
        match self {
            JwtError::Invalid => ErrorCode::InvalidToken,
            JwtError::Expired => ErrorCode::TokenExpired,
            JwtError::Issuer => ErrorCode::InvalidTokenIssuer,
            JwtError::Audience => ErrorCode::InvalidTokenAudience,
            JwtError::MissingOrg => ErrorCode::TokenMissingOrg,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            JwtError::Invalid => "A valid bearer JWT is required",
            JwtError::Expired => "The JWT has expired or is not valid yet",
            JwtError::Issuer => "The JWT was issued by another issuer",
            JwtError::Audience => "The JWT is for another audience",
            JwtError::MissingOrg => "The JWT names no organization",
        }
    }
}

impl JwtConfig {
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_ORG_CLAIM`, and the local run's keys:
    /// `JWT_HS256_SECRET` and `JWT_JWKS_FILE` (read here, once).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<JwtConfig, String> {
        let mut keys = Vec::new();
        if let Some(secret) = get("JWT_HS256_SECRET") {
            keys.push(VerifyKey::Hs256 {
                kid: None,
                secret: Secret::new(secret),
            });
        }
        if let Some(path) = get("JWT_JWKS_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("JWT_JWKS_FILE: cannot read {path}: {e}"))?;
            keys.extend(jwks_keys(&text).map_err(|e| format!("JWT_JWKS_FILE: {e}"))?);
        }
        Ok(JwtConfig {
            issuer: get("JWT_ISSUER"),
            audience: get("JWT_AUDIENCE"),
            org_claim: get("JWT_ORG_CLAIM").unwrap_or_else(|| DEFAULT_ORG_CLAIM.to_owned()),
            keys,
        })
    }

    /// The caller's verified claims: API Gateway's, else the token `source` reads, checked
    /// here. `now` in seconds.
    pub fn claims(
        &self,
        req: &Request,
        source: TokenSource,
        now: i64,
    ) -> Result<Map<String, Value>, JwtError> {
        let claims = match authorizer_claims(req) {
            Some(claims) => claims,
            None => {
                let token = source.token(req).ok_or(JwtError::Invalid)?;
                verify_signature(token, &self.keys)?
            }
        };
        self.check(&claims, now)?;
        Ok(claims)
    }

    /// The registered claims a verified token must still satisfy.
    fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<(), JwtError> {
        let number = |name: &str| match claims.get(name) {
            Some(Value::Number(n)) => n.as_f64().map(|f| f as i64),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        match number("exp") {
            Some(exp) if exp + LEEWAY_SECS > now => {}
            _ => return Err(JwtError::Expired),
        }
        if number("nbf").is_some_and(|nbf| nbf - LEEWAY_SECS > now) {
            return Err(JwtError::Expired);
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(JwtError::Issuer);
            }
        }
        if let Some(audience) = &self.audience {
            if !audiences(claims.get("aud")).any(|a| a == audience) {
                return Err(JwtError::Audience);
            }
        }
        Ok(())
    }

    /// The org the claims name ([`JwtConfig::org_claim`]).
    pub fn org<'c>(&self, claims: &'c Map<String, Value>) -> Result<&'c str, JwtError> {
        claims
            .get(&self.org_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(JwtError::MissingOrg)
    }
}

/// `aud` as a list: a JSON string or array, or API Gateway's flattened `[a b]` string.
fn audiences(aud: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match aud {
        Some(Value::String(s)) => Box::new(
            s.trim_matches(['[', ']'])
                .split([' ', ','])
                .filter(|a| !a.is_empty()),
        ),
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// The claims API Gateway's JWT authorizer verified, if the request went through one.
fn authorizer_claims(req: &Request) -> Option<Map<String, Value>> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return None;
    };
    let claims: &HashMap<String, String> = &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims;
    Some(
        claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Where a route reads the token from when API Gateway has not verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer` only (`/v1/me/...`: no cookie, so no cross-site request rides
    /// on a browser's cookies).
    Bearer,
    /// Edge Impulse's: `Authorization: Bearer`, else its `x-jwt-token` header, else its `jwt`
    /// cookie (`POST /api/user/trial`, as the seed defines it).
    EdgeImpulse,
}

impl TokenSource {
    fn token(self, req: &Request) -> Option<&str> {
        let token = match self {
            TokenSource::Bearer => bearer(req),
            TokenSource::EdgeImpulse => bearer(req)
                .or_else(|| crate::headers::header(req, "x-jwt-token").map(str::trim))
                .or_else(|| cookie(req, "jwt")),
        };
        token.filter(|t| !t.is_empty())
    }

    /// Whether the request carries an end user's JWT where this source reads one, or API
    /// Gateway's verified claims.
    pub fn presented(self, req: &Request) -> bool {
        authorizer_claims(req).is_some() || self.token(req).is_some()
    }
}

/// The value of cookie `name`, from any `Cookie` header.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(req: &Request) -> Option<&str> {
    let value = crate::headers::header(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The claims of `token` if one of `keys` signed it (HS256 or RS256 only: never `none`).
pub fn verify_signature(token: &str, keys: &[VerifyKey]) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Invalid);
    };
    let json = |part: &str| -> Result<Map<String, Value>, JwtError> {
        let bytes = b64url(part).ok_or(JwtError::Invalid)?;
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Invalid)
    };
    let header = json(head)?;
    let signature = b64url(sig).ok_or(JwtError::Invalid)?;
    let signed = &token.as_bytes()[..head.len() + 1 + body.len()];
    let kid = header.get("kid").and_then(Value::as_str);
    let alg = header.get("alg").and_then(Value::as_str);
    let fits =
        |key_kid: &Option<String>| kid.is_none() || key_kid.is_none() || key_kid.as_deref() == kid;
    let verified = keys.iter().any(|key| match (key, alg) {
        (VerifyKey::Hs256 { kid: k, secret }, Some("HS256")) if fits(k) => {
            let mac = crypto::hmac_sha256(secret.expose().as_bytes(), signed);
            crypto::constant_time_eq(&mac, &signature)
        }
        (VerifyKey::Rs256 { kid: k, n, e }, Some("RS256")) if fits(k) => {
            let public = ring::signature::RsaPublicKeyComponents { n, e };
            public
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    signed,
                    &signature,
                )
                .is_ok()
        }
        _ => false,
    });
    if !verified {
        return Err(JwtError::Invalid);
    }
    json(body)
}

/// The keys of a JWKS document: RSA keys (`n`, `e`) for RS256, `oct` keys (`k`) for HS256.
pub fn jwks_keys(json: &str) -> Result<Vec<VerifyKey>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc["keys"].as_array().ok_or("no \"keys\" array")?;
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let kid = key["kid"].as_str().map(str::to_owned);
            let field = |name: &str| {
                key[name]
                    .as_str()
                    .and_then(b64url)
                    .ok_or_else(|| format!("key {i}: no base64url {name:?}"))
            };
            match key["kty"].as_str() {
                Some("RSA") => Ok(VerifyKey::Rs256 {
                    kid,
                    n: field("n")?,
                    e: field("e")?,
                }),
                Some("oct") => {
                    let secret = String::from_utf8(field("k")?)
                        .map_err(|_| format!("key {i}: \"k\" is not UTF-8"))?;
                    Ok(VerifyKey::Hs256 {
                        kid,
                        secret: Secret::new(secret),
                    })
                }
                other => Err(format!("key {i}: unsupported kty {other:?}")),
            }
        })
        .collect()
}

/// Base64url without padding (RFC 7515), as JWTs and JWKs write it.
pub fn b64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_with_and_without_padding() {
        assert_eq!(b64url("aGk").unwrap(), b"hi");
        assert_eq!(b64url("aGk=").unwrap(), b"hi");
        assert_eq!(b64url("-_8").unwrap(), [0xfb, 0xff]);
        assert!(b64url("a+b").is_none());
    }

    #[test]
    fn a_jwks_names_its_keys_and_refuses_what_it_cannot_use() {
        let keys = jwks_keys(r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"},{"kty":"RSA","kid":"b","n":"AQAB","e":"AQAB"}]}"#).unwrap();
        assert!(
            matches!(&keys[0], VerifyKey::Hs256 { kid: Some(k), secret } if k == "a" && secret.expose() == "secret")
        );
        assert!(matches!(&keys[1], VerifyKey::Rs256 { kid: Some(k), .. } if k == "b"));
        assert!(jwks_keys(r#"{"keys":[{"kty":"EC"}]}"#).is_err());
        assert!(jwks_keys("[]").is_err());
    }

    #[test]
    fn the_none_algorithm_and_malformed_tokens_are_invalid() {
        let keys = [VerifyKey::Hs256 {
            kid: None,
            secret: Secret::new("s".to_owned()),
        }];
        // {"alg":"none"} . {"exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIn0.eyJleHAiOjk5OTk5OTk5OTl9.";
        assert_eq!(verify_signature(none, &keys), Err(JwtError::Invalid));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.e30"] {
            assert_eq!(
                verify_signature(bad, &keys),
                Err(JwtError::Invalid),
                "{bad}"
            );
        }
    }
}
