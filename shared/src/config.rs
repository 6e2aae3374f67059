//! Configuration from the environment, read once at init. Secrets are wrapped so they cannot
//! reach a log line through `Debug`.
use std::fmt;

use crate::domain::applicant_config::ApplicantConfig;
use crate::domain::catalog::Catalog;
use crate::domain::time::parse_duration_secs;

/// A secret value: `Debug` and `Display` print a placeholder, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `None`: no Stripe account configured (local run uses the stand-in).
    pub secret_key: Option<Secret>,
    pub api_base: String,
    pub success_url: String,
    pub cancel_url: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Several secrets while a rotation is under way.
    pub secrets: Vec<Secret>,
    pub tolerance_secs: i64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub dynamodb_endpoint: Option<String>,
    /// The plans, with `TRIAL_LENGTH` / `GRACE_PERIOD` / `STRIPE_PRICE_<PLAN>` applied. A trial
    /// keeps the terms it started with; this is read only to start one, to price a convert and
    /// to list plans.
    pub catalog: Catalog,
    pub idempotency_ttl_secs: i64,
    /// Lease for an in-flight request when the invocation has no usable deadline.
    pub idempotency_lease_secs: i64,
    pub due_shards: u32,
    pub api_key_cache_secs: i64,
    pub stripe: StripeConfig,
    pub webhook: WebhookConfig,
    /// Abuse signals and the post-start redirect ([`ApplicantConfig`]).
    pub applicant: ApplicantConfig,
}

pub const DEFAULT_TABLE: &str = "trials-local";

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let duration = |key: &str, default: &str| -> Result<i64, String> {
            let raw = get(key).unwrap_or_else(|| default.to_owned());
            parse_duration_secs(&raw).map_err(|e| format!("{key}: {e}"))
        };
        let text = |key: &str, default: &str| get(key).unwrap_or_else(|| default.to_owned());
        let due_shards = match get("DUE_SHARDS") {
            None => 4,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| format!("DUE_SHARDS: expected 1..=64, got {raw:?}"))?,
        };
        Ok(Config {
            table_name: text("TABLE_NAME", DEFAULT_TABLE),
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT"),
            catalog: Catalog::load(&get).map_err(|e| e.to_string())?,
            idempotency_ttl_secs: duration("IDEMPOTENCY_TTL", "24h")?,
            idempotency_lease_secs: duration("IDEMPOTENCY_LEASE", "30s")?,
            due_shards,
            api_key_cache_secs: duration("API_KEY_CACHE_TTL", "60s")?,
            stripe: StripeConfig {
                secret_key: get("STRIPE_SECRET_KEY").map(Secret::new),
                api_base: text("STRIPE_API_BASE", "https://api.stripe.com"),
                success_url: text(
                    "CHECKOUT_SUCCESS_URL",
                    "http://127.0.0.1:3000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
                ),
                cancel_url: text(
                    "CHECKOUT_CANCEL_URL",
                    "http://127.0.0.1:3000/checkout/cancel",
                ),
                timeout_ms: duration("STRIPE_TIMEOUT", "10s")? as u64 * 1000,
            },
            webhook: WebhookConfig {
                secrets: get("STRIPE_WEBHOOK_SECRET")
                    .map(|raw| {
                        raw.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(Secret::new)
                            .collect()
                    })
                    .unwrap_or_default(),
                tolerance_secs: duration("STRIPE_WEBHOOK_TOLERANCE", "300s")?,
            },
            applicant: ApplicantConfig::from_lookup(&get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_product_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.table_name, "trials-local");
        assert_eq!(c.catalog, Catalog::builtin());
        assert_eq!(c.idempotency_ttl_secs, 86_400);
        assert!(c.stripe.secret_key.is_none());
        assert!(c.webhook.secrets.is_empty());
    }

    #[test]
    fn durations_and_secret_lists_are_parsed() {
        let c = config(&[
            ("TRIAL_LENGTH", "90s"),
            ("GRACE_PERIOD", "72h"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"),
        ])
        .unwrap();
        for plan in c.catalog.plans() {
            assert_eq!(plan.trial_length_secs, 90);
            assert_eq!(plan.grace_secs, 259_200);
        }
        assert_eq!(c.webhook.secrets.len(), 2);
        assert_eq!(c.webhook.secrets[1].expose(), "whsec_b");
    }

    #[test]
    fn bad_values_are_named_and_secrets_never_printed() {
        let err = config(&[("TRIAL_LENGTH", "seven days")]).unwrap_err();
        assert!(err.starts_with("TRIAL_LENGTH"), "{err}");
        assert!(config(&[("DUE_SHARDS", "0")]).is_err());
        let err = config(&[("PLANS_FILE", "/nonexistent/plans.json")]).unwrap_err();
        assert!(err.contains("/nonexistent/plans.json"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        let c = config(&[("STRIPE_SECRET_KEY", "sk_test_supersecret")]).unwrap();
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
