//! Identifiers, validated once at the edge so the store can build keys from them safely.
use std::fmt;

/// `trial_` followed by 24 lowercase hex digits: 96 bits from the OS RNG, so ids cannot be guessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrialId(String);

const TRIAL_PREFIX: &str = "trial_";
const TRIAL_RANDOM_BYTES: usize = 12;

impl TrialId {
    /// A fresh id from the OS RNG.
    pub fn generate() -> TrialId {
        TrialId(format!(
            "{TRIAL_PREFIX}{}",
            crate::crypto::random_hex(TRIAL_RANDOM_BYTES)
        ))
    }

    /// `None` for anything we could not have issued: such an id names no trial.
    pub fn parse(s: &str) -> Option<TrialId> {
        let hex = s.strip_prefix(TRIAL_PREFIX)?;
        let well_formed = hex.len() == TRIAL_RANDOM_BYTES * 2
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| TrialId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trial's integer id, for clients whose ids are integers (Gcore's `id`): the first
    /// 52 of its random bits, so at most 2^52 - 1 (exact in a JSON number, even in JavaScript).
    /// Stable (a function of the id, nothing stored to read). Unique because every start puts
    /// a reservation item for it on condition that none exists (`store::trials`), in the
    /// start's own transaction: no shared counter on the start path.
    pub fn number(&self) -> i64 {
        let hex = &self.0[TRIAL_PREFIX.len()..TRIAL_PREFIX.len() + 13];
        i64::from_str_radix(hex, 16).unwrap_or(0)
    }
}

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tenant ids come from headers and end up inside table keys, so their alphabet is closed:
/// letters, digits and `_ - . :`, 1 to 128 characters (no `#`, the key separator).
fn is_tenant_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(s: &str) -> Option<OrgId> {
        is_tenant_id(s).then(|| OrgId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(s: &str) -> Option<ProjectId> {
        is_tenant_id(s).then(|| ProjectId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trials_number_is_its_first_52_random_bits() {
        let id = TrialId::parse("trial_fffffffffffff0123456789a").unwrap();
        assert_eq!(id.number(), (1_i64 << 52) - 1);
        let id = TrialId::parse("trial_0000000000001fffffffffff").unwrap();
        assert_eq!(id.number(), 1);
        let fresh = TrialId::generate();
        assert_eq!(fresh.number(), fresh.clone().number());
        assert!((0..1_i64 << 52).contains(&fresh.number()));
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = TrialId::generate();
        let b = TrialId::generate();
        assert_ne!(a, b);
        assert_eq!(TrialId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.as_str().len(), TRIAL_PREFIX.len() + 24);
    }

    #[test]
    fn rejects_ids_we_could_not_have_issued() {
        for bad in [
            "",
            "trial_",
            "trial_XYZ",
            "trial_0123456789abcdef0123456",
            "trial_0123456789ABCDEF01234567",
            "org_0123456789abcdef01234567",
            "trial_0123456789abcdef01234567/x",
        ] {
            assert_eq!(TrialId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tenant_ids_have_a_closed_alphabet() {
        assert!(OrgId::parse("org_abc-1.2:3").is_some());
        assert!(OrgId::parse("").is_none());
        assert!(OrgId::parse("org#1").is_none());
        assert!(OrgId::parse("org 1").is_none());
        assert!(OrgId::parse(&"a".repeat(129)).is_none());
        assert!(ProjectId::parse("proj_def456").is_some());
    }
}
