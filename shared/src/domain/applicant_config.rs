//! Configuration of the applicant features: abuse signals and the post-start redirect. Read once
//! at init from a lookup function (the environment in production), so a bad value stops the
//! function from starting instead of failing requests later.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SIGNAL_SECRET` | unset: **abuse signals off** | HMAC key for every stored signal; at least 32 characters (`openssl rand -hex 32`). Changing it forgets every stored signal (see [`super::signals`]). Never logged: errors do not quote it and `Debug` hides it. Unset, only the email signal is derived, stored and checked (one trial per person), keyed by a fixed per-deployment value, the table name ([`super::signals::SignalSecret::fallback`]): anyone who reads the table can then test guessed emails against the stored hashes, so the deployed template always sets it. |
//! | `SIGNAL_POLICY` | `email=block,domain=flag,ip_range=flag,device=flag` | per kind `block`, `flag` or `ignore`; kinds left out keep their default ([`SignalPolicy::with_actions`]) |
//! | `SIGNAL_WINDOW` | `365d` | how long a use of a signal counts against other orgs: `<n>d`, `<n>h`, `<n>m` or `<n>s` |
//! | `PUBLIC_MAIL_DOMAINS` | the built-in list ([`BUILTIN_PUBLIC_MAIL_DOMAINS`]) | comma-separated domains or `name.*` families whose addresses give no domain signal; **replaces** the built-in list |
//! | `REDIRECT_ORIGINS` | empty (no redirect allowed) | comma-separated plain https origins a trial may redirect to ([`AllowedOrigins::parse`]) |
//! | `TRIAL_REDIRECT_PATH` | `/trial` | path on the origin before the trial id ([`TrialPath::parse`]) |
//!
//! Every error names its variable.
use super::redirect::{AllowedOrigins, TrialPath};
use super::signals::{
    PublicMailDomains, SignalPolicy, SignalSecret, BUILTIN_PUBLIC_MAIL_DOMAINS,
    DEFAULT_SIGNAL_POLICY,
};
use super::time::parse_duration_secs;

#[derive(Debug, Clone)]
pub struct ApplicantConfig {
    /// `None`: the email signal only, under the fallback key (see `SIGNAL_SECRET` above).
    pub signal_secret: Option<SignalSecret>,
    pub policy: SignalPolicy,
    pub public_domains: PublicMailDomains,
    pub redirect_origins: AllowedOrigins,
    pub redirect_path: TrialPath,
}

impl ApplicantConfig {
    /// `get` answers `None` for an unset variable (`Config::from_env` also maps blank to unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ApplicantConfig, String> {
        let signal_secret = match get("SIGNAL_SECRET") {
            None => None,
            Some(raw) => Some(SignalSecret::new(&raw).map_err(|e| format!("SIGNAL_SECRET: {e}"))?),
        };
        let window_secs = match get("SIGNAL_WINDOW") {
            None => SignalPolicy::default().window_secs,
            Some(raw) => parse_duration_secs(&raw).map_err(|e| format!("SIGNAL_WINDOW: {e}"))?,
        };
        let policy = SignalPolicy {
            window_secs,
            ..SignalPolicy::default()
        }
        .with_actions(
            get("SIGNAL_POLICY")
                .as_deref()
                .unwrap_or(DEFAULT_SIGNAL_POLICY),
        )
        .map_err(|e| format!("SIGNAL_POLICY: {e}"))?;
        let public_domains = PublicMailDomains::parse(
            get("PUBLIC_MAIL_DOMAINS")
                .as_deref()
                .unwrap_or(BUILTIN_PUBLIC_MAIL_DOMAINS),
        )
        .map_err(|e| format!("PUBLIC_MAIL_DOMAINS: {e}"))?;
        let redirect_origins = match get("REDIRECT_ORIGINS") {
            None => AllowedOrigins::default(),
            Some(raw) => {
                AllowedOrigins::parse(&raw).map_err(|e| format!("REDIRECT_ORIGINS: {e}"))?
            }
        };
        let redirect_path = match get("TRIAL_REDIRECT_PATH") {
            None => TrialPath::default(),
            Some(raw) => TrialPath::parse(&raw).map_err(|e| format!("TRIAL_REDIRECT_PATH: {e}"))?,
        };
        Ok(ApplicantConfig {
            signal_secret,
            policy,
            public_domains,
            redirect_origins,
            redirect_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::signals::SignalAction;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(vars: &[(&str, &str)]) -> Result<ApplicantConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ApplicantConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_need_nothing_and_signals_are_off_without_a_secret() {
        assert!(config(&[]).unwrap().signal_secret.is_none());
        let c = config(&[("SIGNAL_SECRET", SECRET)]).unwrap();
        assert!(c.signal_secret.is_some());
        assert_eq!(c.policy, SignalPolicy::default());
        assert_eq!(c.public_domains, PublicMailDomains::builtin());
        assert!(c.redirect_origins.origins().is_empty());
        assert_eq!(c.redirect_path.as_str(), "/trial");
        assert!(!format!("{c:?}").contains(SECRET));
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("SIGNAL_SECRET", SECRET),
            ("SIGNAL_POLICY", "email=flag,device=ignore"),
            ("SIGNAL_WINDOW", "30d"),
            ("PUBLIC_MAIL_DOMAINS", "example.com"),
            (
                "REDIRECT_ORIGINS",
                "https://studio.example.com, https://app.example.com:8443",
            ),
            ("TRIAL_REDIRECT_PATH", "/welcome/trial"),
        ])
        .unwrap();
        assert_eq!(c.policy.email, SignalAction::Flag);
        assert_eq!(c.policy.domain, SignalAction::Flag);
        assert_eq!(c.policy.device, SignalAction::Ignore);
        assert_eq!(c.policy.window_secs, 30 * 86_400);
        assert!(c.public_domains.is_public("example.com"));
        assert!(!c.public_domains.is_public("gmail.com"));
        assert_eq!(c.redirect_origins.origins().len(), 2);
        assert_eq!(c.redirect_path.as_str(), "/welcome/trial");
    }

    #[test]
    fn bad_values_name_their_variable_and_never_quote_the_secret() {
        for (var, value) in [
            ("SIGNAL_SECRET", "too-short-secret"),
            ("SIGNAL_POLICY", "email=deny"),
            ("SIGNAL_WINDOW", "a year"),
            ("PUBLIC_MAIL_DOMAINS", "gmail.com,,"),
            ("REDIRECT_ORIGINS", "http://insecure.example.com"),
            ("TRIAL_REDIRECT_PATH", "trial"),
        ] {
            let mut vars = vec![("SIGNAL_SECRET", SECRET)];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = config(&vars).unwrap_err();
            assert!(err.starts_with(&format!("{var}: ")), "{var}: {err}");
            assert!(!err.contains("too-short-secret"), "{err}");
        }
    }
}
