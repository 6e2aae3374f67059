//! API keys: `trk_<key_id>_<secret>`, and what is known about a key. Pure: the store keeps
//! these, auth checks them, `trialctl` issues them.
//!
//! - `key_id`: 16 lowercase hex digits (64 random bits). Not secret: it names the key's record
//!   (`APIKEY#<key_id>`), so a lookup is one `GetItem`, and operators revoke by it.
//! - `secret`: 64 lowercase hex digits, 256 bits from the OS RNG.
//!
//! The table keeps only the SHA-256 of the whole key. The key itself exists in the caller's
//! hands and, for the length of one request, in memory; `Debug` never prints it.
use std::fmt;

use super::{OrgId, ProjectId};
use crate::crypto;

pub const PREFIX: &str = "trk_";
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// `trk_` + 16 + `_` + 64.
pub const KEY_LEN: usize = PREFIX.len() + KEY_ID_BYTES * 2 + 1 + SECRET_BYTES * 2;

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` is a key id we could have issued.
pub fn is_key_id(s: &str) -> bool {
    is_lower_hex(s, KEY_ID_BYTES * 2)
}

/// A whole API key, as shown once at creation and presented as `Authorization: Bearer <key>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key from the OS RNG.
    pub fn generate() -> ApiKey {
        ApiKey(format!(
            "{PREFIX}{}_{}",
            crypto::random_hex(KEY_ID_BYTES),
            crypto::random_hex(SECRET_BYTES)
        ))
    }

    /// `None` for anything we could not have issued (such a key authenticates nobody, and
    /// costs no read).
    pub fn parse(s: &str) -> Option<ApiKey> {
        let rest = s.strip_prefix(PREFIX)?;
        let (key_id, secret) = rest.split_once('_')?;
        (is_key_id(key_id) && is_lower_hex(secret, SECRET_BYTES * 2)).then(|| ApiKey(s.to_owned()))
    }

    pub fn key_id(&self) -> &str {
        &self.0[PREFIX.len()..PREFIX.len() + KEY_ID_BYTES * 2]
    }

    /// What the table stores: SHA-256 of the whole key, hex.
    pub fn hash(&self) -> String {
        crypto::sha256_hex(self.0.as_bytes())
    }

    /// The key itself: to show the operator once, or to send as a credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({PREFIX}{}_***)", self.key_id())
    }
}

/// The projects a key may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projects {
    All,
    /// Never empty.
    Only(Vec<ProjectId>),
}

impl Projects {
    /// `All` when `projects` is empty.
    pub fn from_list(mut projects: Vec<ProjectId>) -> Projects {
        projects.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        projects.dedup();
        if projects.is_empty() {
            Projects::All
        } else {
            Projects::Only(projects)
        }
    }

    pub fn allows(&self, project: &ProjectId) -> bool {
        match self {
            Projects::All => true,
            Projects::Only(list) => list.contains(project),
        }
    }
}

impl fmt::Display for Projects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Projects::All => f.write_str("all"),
            Projects::Only(list) => {
                let names: Vec<&str> = list.iter().map(ProjectId::as_str).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// What is known about a key besides its secret: safe to show and to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub org: OrgId,
    pub projects: Projects,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// An admin key (`trialctl keys create --admin`) may set a trial's `expires_at` and `notes`
    /// at start and `PATCH` them later. Records written before scopes existed are not admin.
    pub admin: bool,
}

impl KeyInfo {
    pub fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_form() {
        let key = ApiKey::generate();
        let s = key.expose();
        assert_eq!(s.len(), KEY_LEN);
        assert!(s.starts_with("trk_"));
        assert_eq!(&s[20..21], "_");
        assert_eq!(ApiKey::parse(s), Some(key.clone()));
        assert_eq!(key.key_id(), &s[4..20]);
        assert!(is_key_id(key.key_id()));
        assert_ne!(ApiKey::generate(), key);
        assert_eq!(key.hash(), crypto::sha256_hex(s.as_bytes()));
    }

    #[test]
    fn rejects_what_we_could_not_have_issued() {
        let good = ApiKey::generate().expose().to_owned();
        for bad in [
            String::new(),
            "trk_".into(),
            good.to_uppercase(),
            good.replacen("trk_", "trx_", 1),
            good[..good.len() - 1].into(),
            format!("{good}0"),
            format!(" {good}"),
            good.replacen('_', "-", 2),
            format!("trk_{}_{}", "g".repeat(16), "0".repeat(64)),
            format!("trk_{}_{}_", "0".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(ApiKey::parse(&bad), None, "{bad}");
        }
        assert!(!is_key_id("0123456789ABCDEF"));
        assert!(!is_key_id("0123456789abcde"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[21..]), "{shown}");
        assert!(shown.contains(key.key_id()), "{shown}");
    }

    #[test]
    fn projects_allow_what_they_list() {
        let p = |s: &str| ProjectId::parse(s).unwrap();
        assert_eq!(Projects::from_list(vec![]), Projects::All);
        let only = Projects::from_list(vec![p("b"), p("a"), p("b")]);
        assert_eq!(only, Projects::Only(vec![p("a"), p("b")]));
        assert!(only.allows(&p("a")));
        assert!(!only.allows(&p("c")));
        assert!(Projects::All.allows(&p("c")));
        assert_eq!(only.to_string(), "a,b");
        assert_eq!(Projects::All.to_string(), "all");
    }
}
