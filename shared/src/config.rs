//! Configuration from the environment, read once at init. Secrets are wrapped so they cannot
//! reach a log line through `Debug`.

use crate::domain::active_ranges::LifecycleTerms;
use crate::domain::applicant_config::ApplicantConfig;
use crate::domain::catalog::{Catalog, MAX_DURATION_SECS};
use crate::domain::time::parse_duration_secs;
use crate::domain::trial::PENDING_MAX_AGE_SECS;

pub use crate::crypto::Secret;

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
    /// `GRACE_REMINDER` (24h): how long before an expired trial is purged its
    /// `trial.grace_ending` reminder goes out. The other lifecycle terms (pause maximum, maximum
    /// total trial length, reminder offsets) are the plan's, snapshotted on the trial: read
    /// them all through [`Config::lifecycle_terms`].
    pub grace_reminder_secs: i64,
    /// Abuse signals and the post-start redirect ([`ApplicantConfig`]).
    pub applicant: ApplicantConfig,
    /// `PENDING_PAYMENT_MAX_AGE` (21 days): how long a payment reported as on its way (a
    /// checkout completed `unpaid`, e.g. a bank debit) holds the trial. Stripe documents SEPA
    /// Direct Debit, the slowest of its delayed methods, as notifying success or failure within
    /// 14 business days (about 20 calendar days); after this age convert opens a new session,
    /// cancel is allowed and purge no longer waits for it (a payment that lands later still
    /// converts, or is recorded unmatched if the trial is gone).
    pub pending_payment_max_age_secs: i64,
    /// `EDGE_IMPULSE_PLAN` (`edge-impulse-enterprise`: 14 days and 30 days of grace in
    /// `examples/plans-enterprise.json`): the plan `POST /api/user/trial` starts.
    pub edge_impulse_plan: String,
    /// End users' JWTs (`JWT_*`; see [`crate::jwt`]).
    pub jwt: crate::jwt::JwtConfig,
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
            catalog: lifecycle_overrides(&get, Catalog::load(&get).map_err(|e| e.to_string())?)?,
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
            grace_reminder_secs: positive_duration(&get, "GRACE_REMINDER")?.unwrap_or(DAY_SECS),
            applicant: ApplicantConfig::from_lookup(&get)?,
            pending_payment_max_age_secs: positive_duration(&get, "PENDING_PAYMENT_MAX_AGE")?
                .unwrap_or(PENDING_MAX_AGE_SECS),
            edge_impulse_plan: text("EDGE_IMPULSE_PLAN", "edge-impulse-enterprise"),
            jwt: crate::jwt::JwtConfig::from_lookup(&get)?,
        })
    }
}

const DAY_SECS: i64 = 86_400;

impl Config {
    /// The lifecycle terms that apply to `trial`: its plan's pause maximum, maximum total
    /// length and reminder offsets as snapshotted when it started (the catalog's, defaulting to
    /// 30 days, 90 days and 72 h / 24 h), and the deployment's grace reminder lead.
    pub fn lifecycle_terms(&self, trial: &crate::domain::Trial) -> LifecycleTerms {
        LifecycleTerms {
            pause_max_secs: trial.terms.pause_max_secs,
            max_total_secs: trial.terms.max_total_trial_secs,
            reminder_offsets_secs: trial.terms.reminder_offsets_secs.clone(),
            grace_reminder_secs: self.grace_reminder_secs,
        }
    }
}

/// A positive duration of at most ten years from `key`, if set.
fn positive_duration(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
) -> Result<Option<i64>, String> {
    let Some(raw) = get(key) else { return Ok(None) };
    let secs = parse_duration_secs(&raw).map_err(|e| format!("{key}: {e}"))?;
    if secs <= 0 || secs > MAX_DURATION_SECS {
        return Err(format!(
            "{key}: expected more than 0s and at most 3650d, got {raw:?}"
        ));
    }
    Ok(Some(secs))
}

/// `PAUSE_MAX`, `MAX_TRIAL_TOTAL` and `REMINDER_OFFSETS` (`30s,10s`; `none`: no ending-soon
/// reminders), when set, replace every plan's pause maximum, maximum total trial length and
/// reminder offsets, as `TRIAL_LENGTH` replaces its length: short values let a local session
/// show a reminder, a pause and an extension within a minute. Trials snapshot the result.
fn lifecycle_overrides(
    get: &impl Fn(&str) -> Option<String>,
    mut catalog: Catalog,
) -> Result<Catalog, String> {
    let reminders = match get("REMINDER_OFFSETS") {
        None => None,
        Some(raw) if raw.trim().eq_ignore_ascii_case("none") => Some(Vec::new()),
        Some(raw) => Some(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match parse_duration_secs(s) {
                    Ok(secs) if secs > 0 && secs <= MAX_DURATION_SECS => Ok(secs),
                    Ok(_) => Err(format!("REMINDER_OFFSETS: {s:?} is out of range")),
                    Err(e) => Err(format!("REMINDER_OFFSETS: {e}")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    catalog.override_lifecycle(
        positive_duration(get, "PAUSE_MAX")?,
        positive_duration(get, "MAX_TRIAL_TOTAL")?,
        reminders,
    );
    Ok(catalog)
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
        assert_eq!(
            c.grace_reminder_secs,
            LifecycleTerms::default().grace_reminder_secs
        );
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

    #[test]
    fn a_payment_on_its_way_holds_a_trial_for_21_days_unless_configured() {
        assert_eq!(
            config(&[]).unwrap().pending_payment_max_age_secs,
            21 * 86_400
        );
        let c = config(&[("PENDING_PAYMENT_MAX_AGE", "30d")]).unwrap();
        assert_eq!(c.pending_payment_max_age_secs, 30 * 86_400);
        for bad in ["0s", "soon"] {
            let err = config(&[("PENDING_PAYMENT_MAX_AGE", bad)]).unwrap_err();
            assert!(err.starts_with("PENDING_PAYMENT_MAX_AGE"), "{err}");
        }
    }

    #[test]
    fn lifecycle_terms_can_be_shortened_for_a_local_session() {
        let c = config(&[
            ("TRIAL_LENGTH", "20m"),
            ("PAUSE_MAX", "40s"),
            ("MAX_TRIAL_TOTAL", "10m"),
            ("REMINDER_OFFSETS", "10s, 30s, 10s"),
            ("GRACE_REMINDER", "5s"),
        ])
        .unwrap();
        for plan in c.catalog.plans() {
            assert_eq!(plan.pause_max_secs, 40);
            // Never below the trial length, as with TRIAL_LENGTH alone.
            assert_eq!(plan.max_total_trial_secs, 1200);
            assert_eq!(plan.reminder_offsets_secs, vec![30, 10]);
        }
        assert_eq!(c.grace_reminder_secs, 5);
        let plan = c.catalog.get("pro").unwrap();
        let trial = crate::domain::Trial::start(
            crate::domain::TrialId::generate(),
            crate::domain::OrgId::parse("org_1").unwrap(),
            0,
            plan.snapshot(),
        );
        assert_eq!(
            c.lifecycle_terms(&trial),
            LifecycleTerms {
                pause_max_secs: 40,
                max_total_secs: 1200,
                reminder_offsets_secs: vec![30, 10],
                grace_reminder_secs: 5,
            }
        );
        let none = config(&[("REMINDER_OFFSETS", "none")]).unwrap();
        assert!(none
            .catalog
            .plans()
            .iter()
            .all(|p| p.reminder_offsets_secs.is_empty()));
        let err = config(&[("REMINDER_OFFSETS", "72h,soon")]).unwrap_err();
        assert!(err.starts_with("REMINDER_OFFSETS"), "{err}");
        let err = config(&[("PAUSE_MAX", "0s")]).unwrap_err();
        assert!(err.starts_with("PAUSE_MAX"), "{err}");
    }
}
