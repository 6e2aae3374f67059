//! The plan catalog: which plans exist, which can be trialled, and on what terms (length,
//! grace, limits), as data rather than code.
//!
//! **Invariant.** A [`Catalog`] value is always valid: the only ways to get one parse and
//! validate the whole file, then apply the environment overrides, so code holding a `Catalog`
//! never re-checks a plan. A bad catalog is refused as a whole with one line naming the source,
//! the plan and the field ([`CatalogError`]); nothing half-loads.
//!
//! **Sources, in order** (see [`Catalog::load`]):
//! 1. the catalog: `PLANS_FILE` (a path) if set, else the built-in `shared/plans.json`, compiled
//!    in. The built-in one is today's behaviour: `starter`, `growth`, `pro`, 7-day trials, 3-day
//!    grace, no limits;
//! 2. `TRIAL_LENGTH` / `GRACE_PERIOD`, when set, replace **every** plan's trial length / grace
//!    period (local demos and tests shorten trials this way). A plan whose maximum total trial
//!    length would fall below the overridden length has it raised to that length, so an override
//!    that worked before the catalog existed still works;
//! 3. `STRIPE_PRICE_<PLAN>` (the plan id upper-cased, `-` read as `_`: `STRIPE_PRICE_PRO`),
//!    when set, replaces that plan's `stripe_price`. So the catalog file says which prices a plan
//!    has in general (the built-in one: the local stand-in's `price_starter`...), and each
//!    deployment points plans at its own Stripe account's prices without editing the file, as
//!    the SAM template already does. No price anywhere leaves `stripe_price` `None`: such a plan
//!    can be trialled but not bought through Checkout. Two plan ids that share a variable
//!    (`a-b`, `a_b`) are refused.
//!
//! **Snapshots.** A trial stores [`TrialTerms`] ([`PlanTerms::snapshot`]) when it starts, so
//! editing the catalog never changes a running trial. The Stripe price is not part of it: a
//! conversion buys the plan at its current price.
//!
//! **Ids.** Plan, product, unit, feature and option ids are lowercase slugs (`[a-z0-9][a-z0-9_-]*`)
//! because they end up in table attributes, event ids and environment variable names. Gcore's
//! ids are integers; ours are these strings.
//!
//! **Cost.** Parsing and validating runs once per cold start (microseconds for a handful of
//! plans); lookups scan a `Vec` of at most [`MAX_PLANS`] plans, cheaper than hashing at this
//! size. Apart from [`Catalog::load`] reading `PLANS_FILE`, everything here is pure.
//!
//! **Files.** This module holds the types and the lookups; [`parse`] reads the file format
//! (strict JSON), [`validate`] checks it into a [`Catalog`], [`terms`] is what a trial keeps
//! ([`TrialTerms`]) and the JSON views of terms.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::parse_duration_secs;

mod parse;
mod terms;
mod validate;

use parse::{is_slug, parse_file};
pub use terms::{end_behavior, options_view, plans_view, TrialTerms, END_DOWNGRADE, END_EXPIRE};
use validate::{check_price, validate};

/// The built-in catalog, as shipped.
pub const BUILTIN_JSON: &str = include_str!("../../../plans.json");
/// How the built-in catalog names itself in errors.
const BUILTIN_SOURCE: &str = "plans.json";

const DAY_SECS: i64 = 86_400;
const HOUR_SECS: i64 = 3_600;
/// Default ceiling on a trial's total length, extensions included (issue 16).
pub const DEFAULT_MAX_TOTAL_TRIAL_SECS: i64 = 90 * DAY_SECS;
/// Default longest pause before a paused trial resumes by itself.
pub const DEFAULT_PAUSE_MAX_SECS: i64 = 30 * DAY_SECS;

/// How long a trial that starts on activation waits for it when the plan names no
/// `activation_window`: 30 days (a month to come back to it, the pause maximum's length).
pub const DEFAULT_ACTIVATION_WINDOW_SECS: i64 = 30 * DAY_SECS;

/// When a trial's clock starts: at its start (`on_start`, every trial before issue 28), or on
/// its activation (`on_activation`: PENDING until `activate` or its first usage call, and
/// lapsed unused after the activation window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Starts {
    #[default]
    OnStart,
    OnActivation,
}

impl Starts {
    pub fn as_str(self) -> &'static str {
        match self {
            Starts::OnStart => "on_start",
            Starts::OnActivation => "on_activation",
        }
    }

    pub fn parse(s: &str) -> Option<Starts> {
        [Starts::OnStart, Starts::OnActivation]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}
/// Default ending-soon reminders, before `expires_at`: 72 h and 24 h (Stripe sends 72 h).
pub const DEFAULT_REMINDER_OFFSETS_SECS: [i64; 2] = [72 * HOUR_SECS, 24 * HOUR_SECS];

/// Every duration is at most ten years: `now + length` can never overflow, and a typo such as
/// `7000d` is caught at init rather than granting a 19-year trial.
pub const MAX_DURATION_SECS: i64 = 3_650 * DAY_SECS;
pub const MAX_PLANS: usize = 64;
/// Options per plan: each limit becomes a counter on the trial item, which must stay small.
pub const MAX_OPTIONS: usize = 32;
pub const MAX_REMINDERS: usize = 8;
/// 2^53 - 1: option values and usage stay exact in every JSON client (JavaScript numbers).
pub const MAX_OPTION_VALUE: i64 = 9_007_199_254_740_991;
const PLAN_ID_MAX: usize = 32;
const SLUG_MAX: usize = 64;
const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;
const PRICE_MAX: usize = 255;

// ---------------------------------------------------------------------------------------------
// Domain types
// ---------------------------------------------------------------------------------------------

/// A plan id as the catalog and the API spell it: `^[a-z0-9][a-z0-9_-]{0,31}$`. A well-formed id
/// is not necessarily in the catalog: look it up with [`Catalog::get`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanId(String);

impl PlanId {
    pub fn parse(s: &str) -> Option<PlanId> {
        is_slug(s, PLAN_ID_MAX).then(|| PlanId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The variable that overrides this plan's Stripe price: `STRIPE_PRICE_PRO`.
    pub fn price_var(&self) -> String {
        format!(
            "STRIPE_PRICE_{}",
            self.0.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl TryFrom<String> for PlanId {
    type Error = String;
    fn try_from(s: String) -> Result<PlanId, String> {
        PlanId::parse(&s).ok_or_else(|| format!("invalid plan id {s:?}"))
    }
}

impl From<PlanId> for String {
    fn from(id: PlanId) -> String {
        id.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is being trialled, as Gcore shows it (`id` is an integer there, a slug here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub internal_name: String,
}

/// The integer id of a catalog slug (a product, plan, unit or feature id) for clients whose ids
/// are integers (Gcore's): FNV-1a (64-bit) of the slug, kept to 31 bits, so a positive
/// `int32`. Stable across builds, catalogs and file order (a function of the slug alone);
/// nothing is stored.
pub fn numeric_id(slug: &str) -> i64 {
    // Pinned by `numeric_ids_are_stable` (README and openapi.yaml quote `app`'s).
    let hash = slug.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash & 0x7fff_ffff) as i64
}

/// Which product an org's one trial (its guard, refusal and abuse signals) is keyed by. The
/// catalog's default product ([`Catalog::default_product`]) is `Default`: its keys are exactly
/// the ones written before products (`ORG#<org>`/`GUARD`, `SIGNAL#<kind>#<hmac>`), so nothing
/// stored earlier needs migrating. Any other product appends `#<product id>` to them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProductKey {
    Default,
    Other(String),
}

impl ProductKey {
    /// What the product adds to a key: nothing for the default product, `#<id>` otherwise.
    pub fn suffix(&self) -> String {
        match self {
            ProductKey::Default => String::new(),
            ProductKey::Other(id) => format!("#{id}"),
        }
    }
}

/// The unit an option is counted in (`GB`, `calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub id: String,
    pub name: String,
    pub internal_name: String,
}

/// The feature an option belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub id: String,
    pub name: String,
}

/// One option of a plan: informational (`is_limit: false`: `value` is just shown) or a limit
/// that usage counts against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOption {
    pub internal_name: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub unit: Unit,
    /// For a limit, at least 1; otherwise at least 0. At most [`MAX_OPTION_VALUE`].
    pub value: i64,
    #[serde(default)]
    pub is_limit: bool,
    pub feature: Feature,
    /// The trial ends (EXPIRED, `limit_reached`) when this limit is reached. Only on a limit.
    #[serde(default)]
    pub ends_trial: bool,
}

/// One plan of the catalog, after validation and environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTerms {
    pub id: PlanId,
    pub name: String,
    pub product: Product,
    pub trial_length_secs: i64,
    /// 0 allowed: the trial is purged as soon as it expires.
    pub grace_secs: i64,
    pub trialable: bool,
    /// `None`: no price in the catalog nor in `STRIPE_PRICE_<PLAN>`; the plan cannot be bought.
    pub stripe_price: Option<String>,
    /// Ceiling on the trial's total length, extensions included; at least `trial_length_secs`.
    pub max_total_trial_secs: i64,
    pub pause_max_secs: i64,
    /// Distinct, positive, longest first.
    pub reminder_offsets_secs: Vec<i64>,
    pub options: Vec<PlanOption>,
    /// When its trials' clock starts (a start request may ask for `on_activation` anyway).
    pub starts: Starts,
    /// How long a PENDING trial of the plan waits for its activation.
    pub activation_window_secs: i64,
    /// `end_behavior: "downgrade"`: the free plan's terms (resolved from `downgrade_to` at
    /// validation) the trial takes at its end. `None`: the trial expires (`"expire"`).
    pub downgrade_to: Option<Box<TrialTerms>>,
}

impl PlanTerms {
    /// The terms a trial of this plan keeps for its whole life.
    pub fn snapshot(&self) -> TrialTerms {
        TrialTerms {
            plan: self.id.clone(),
            name: self.name.clone(),
            product: self.product.clone(),
            trial_length_secs: self.trial_length_secs,
            grace_secs: self.grace_secs,
            max_total_trial_secs: self.max_total_trial_secs,
            pause_max_secs: self.pause_max_secs,
            reminder_offsets_secs: self.reminder_offsets_secs.clone(),
            options: self.options.clone(),
            downgrade_to: self.downgrade_to.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------------

/// The validated set of plans, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    source: String,
    plans: Vec<PlanTerms>,
}

impl Catalog {
    /// The compiled-in catalog, without environment overrides.
    pub fn builtin() -> Catalog {
        // The shipped file is checked by `builtin_catalog_is_todays_behaviour`.
        Catalog::from_json_named(BUILTIN_SOURCE, BUILTIN_JSON)
            .expect("the built-in plans.json is valid")
    }

    /// Parses and validates a catalog; errors name it `plans.json`.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_json_named(BUILTIN_SOURCE, text)
    }

    /// Parses and validates a catalog; errors start with `source` (a path, say).
    /// This is the whole check `trialctl plans check FILE` needs.
    pub fn from_json_named(source: &str, text: &str) -> Result<Catalog, CatalogError> {
        let file = parse_file(source, text)?;
        validate(source, file)
    }

    /// The catalog in force: `PLANS_FILE` or the built-in one, then `TRIAL_LENGTH`,
    /// `GRACE_PERIOD` and `STRIPE_PRICE_<PLAN>` (module doc). Blank variables count as unset.
    /// Reads the file with `std::fs`, once, at init.
    pub fn load(lookup: impl Fn(&str) -> Option<String>) -> Result<Catalog, CatalogError> {
        Catalog::load_with(lookup, |path| std::fs::read_to_string(path))
    }

    /// [`Catalog::load`] with the file read injected (tests).
    pub fn load_with(
        lookup: impl Fn(&str) -> Option<String>,
        read: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Catalog, CatalogError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let mut catalog = match get("PLANS_FILE") {
            None => Catalog::builtin(),
            Some(path) => {
                let text = read(&path).map_err(|e| CatalogError::Unreadable {
                    source: path.clone(),
                    reason: e.to_string(),
                })?;
                Catalog::from_json_named(&path, &text)?
            }
        };
        let env_duration = |key: &str| -> Result<Option<i64>, CatalogError> {
            let Some(raw) = get(key) else { return Ok(None) };
            let secs = parse_duration_secs(&raw).map_err(|reason| CatalogError::Env {
                var: key.to_owned(),
                reason,
            })?;
            if secs > MAX_DURATION_SECS {
                return Err(CatalogError::Env {
                    var: key.to_owned(),
                    reason: format!("{raw:?} is longer than 3650d"),
                });
            }
            Ok(Some(secs))
        };
        let length = env_duration("TRIAL_LENGTH")?;
        let grace = env_duration("GRACE_PERIOD")?;
        catalog.override_lengths(length, grace);
        for plan in &mut catalog.plans {
            let var = plan.id.price_var();
            if let Some(price) = get(&var) {
                let price = price.trim().to_owned();
                check_price(&price).map_err(|reason| CatalogError::Env { var, reason })?;
                plan.stripe_price = Some(price);
            }
        }
        Ok(catalog)
    }

    /// What `TRIAL_LENGTH` / `GRACE_PERIOD` do: replace every plan's length / grace (a
    /// plan's maximum total length is raised to the length if it would fall below it). Tests
    /// shorten trials with it, as local demos do with the variables.
    pub fn override_lengths(&mut self, length: Option<i64>, grace: Option<i64>) {
        for plan in &mut self.plans {
            if let Some(length) = length {
                plan.trial_length_secs = length;
                plan.max_total_trial_secs = plan.max_total_trial_secs.max(length);
            }
            if let Some(grace) = grace {
                plan.grace_secs = grace;
            }
        }
    }

    /// What `PAUSE_MAX` / `MAX_TRIAL_TOTAL` / `REMINDER_OFFSETS` do (see `Config`): replace
    /// every plan's pause maximum, maximum total trial length (never below its trial length)
    /// and reminder offsets (kept distinct and longest first, as the catalog checks them).
    pub fn override_lifecycle(
        &mut self,
        pause_max: Option<i64>,
        max_total: Option<i64>,
        reminders: Option<Vec<i64>>,
    ) {
        let reminders = reminders.map(|mut list| {
            list.sort_unstable_by(|a, b| b.cmp(a));
            list.dedup();
            list.truncate(MAX_REMINDERS);
            list
        });
        for plan in &mut self.plans {
            if let Some(pause_max) = pause_max {
                plan.pause_max_secs = pause_max;
            }
            if let Some(max_total) = max_total {
                plan.max_total_trial_secs = max_total.max(plan.trial_length_secs);
            }
            if let Some(list) = &reminders {
                plan.reminder_offsets_secs = list.clone();
            }
        }
    }

    /// Where the plans came from: `plans.json` (built-in) or the `PLANS_FILE` path.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Any plan, trialable or not.
    pub fn get(&self, id: &str) -> Option<&PlanTerms> {
        self.plans.iter().find(|p| p.id.as_str() == id)
    }

    /// The plan a `POST /v1/trials/start` may name: in the catalog and trialable.
    pub fn get_trialable(&self, id: &str) -> Option<&PlanTerms> {
        self.get(id).filter(|p| p.trialable)
    }

    /// Every plan, in file order.
    pub fn plans(&self) -> &[PlanTerms] {
        &self.plans
    }

    /// The default product: the product of the catalog's first plan, in file order. Its trials,
    /// org guards, refusals and signals keep the table keys written before products existed
    /// ([`ProductKey::Default`]), so those items read as its own without a migration. An
    /// operator who adds a product appends its plans; putting another product's plan first
    /// would make that product the default (and the old keys its own).
    pub fn default_product(&self) -> &Product {
        &self.plans[0].product
    }

    /// Every product's key, each once, the default product's first.
    pub fn product_keys(&self) -> Vec<ProductKey> {
        let mut keys: Vec<ProductKey> = Vec::new();
        for plan in &self.plans {
            let key = self.product_key(&plan.product.id);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// How the table keys product `id`'s one trial per org (see [`ProductKey`]).
    pub fn product_key(&self, id: &str) -> ProductKey {
        if self.default_product().id == id {
            ProductKey::Default
        } else {
            ProductKey::Other(id.to_owned())
        }
    }

    /// The plans that can be trialled, in file order (never empty).
    pub fn trialable(&self) -> impl Iterator<Item = &PlanTerms> {
        self.plans.iter().filter(|p| p.trialable)
    }

    /// "starter, growth, pro": the trialable ids, for `invalid_plan`'s message.
    pub fn list(&self) -> String {
        self.trialable()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Terms for a trial stored before trials kept a snapshot: the plan's name and product
    /// from this catalog (or, if an operator's catalog dropped the plan, from the built-in one,
    /// which holds every plan such a trial can have) with its current length and grace, and no
    /// options, since no limit applied when that trial started. `None`: a plan no catalog knows.
    pub fn legacy_terms(&self, plan: &str) -> Option<TrialTerms> {
        let terms = match self.get(plan) {
            Some(p) => p.snapshot(),
            None => Catalog::builtin().get(plan)?.snapshot(),
        };
        Some(TrialTerms {
            options: Vec::new(),
            ..terms
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Which plan an error is about: by id once the id is known and well-formed, else by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRef {
    Id(String),
    Index(usize),
}

impl fmt::Display for PlanRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanRef::Id(id) => write!(f, "plan {id:?}"),
            PlanRef::Index(i) => write!(f, "plans[{i}]"),
        }
    }
}

/// Why a catalog was refused. `Display` is the one line to print at init or from
/// `trialctl plans check`: `plans.json: plan "pro": options[1].value: must be ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    /// `PLANS_FILE` names a file that cannot be read.
    Unreadable { source: String, reason: String },
    /// Not JSON, or not the catalog's shape outside any plan (`plans` missing, unknown key).
    Syntax { source: String, reason: String },
    /// A plan is malformed or breaks a rule. `field` is its path inside the plan
    /// (`options[1].value`); empty when the plan as a whole is at fault (a missing field).
    Plan {
        source: String,
        plan: PlanRef,
        field: String,
        reason: String,
    },
    /// A rule about the set of plans (none, too many, none trialable).
    Catalog { source: String, reason: String },
    /// An environment override (`TRIAL_LENGTH`, `STRIPE_PRICE_PRO`...) is malformed.
    Env { var: String, reason: String },
}

impl CatalogError {
    /// The plan and field at fault, for tests and tools.
    pub fn plan_field(&self) -> Option<(&PlanRef, &str)> {
        match self {
            CatalogError::Plan { plan, field, .. } => Some((plan, field)),
            _ => None,
        }
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::Unreadable { source, reason } => {
                write!(f, "PLANS_FILE {source}: cannot be read: {reason}")
            }
            CatalogError::Syntax { source, reason } => write!(f, "{source}: {reason}"),
            CatalogError::Plan {
                source,
                plan,
                field,
                reason,
            } if field.is_empty() => write!(f, "{source}: {plan}: {reason}"),
            CatalogError::Plan {
                source,
                plan,
                field,
                reason,
            } => write!(f, "{source}: {plan}: {field}: {reason}"),
            CatalogError::Catalog { source, reason } => write!(f, "{source}: plans: {reason}"),
            CatalogError::Env { var, reason } => write!(f, "{var}: {reason}"),
        }
    }
}

impl std::error::Error for CatalogError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    #[test]
    fn numeric_ids_are_stable() {
        assert_eq!(numeric_id("app"), 90_866_572);
        assert_ne!(numeric_id("app"), numeric_id("cdn"));
        assert!((0..=i32::MAX.into()).contains(&numeric_id("a-very-long-product-slug")));
    }

    #[test]
    fn the_default_product_is_the_first_plans_and_keeps_the_old_keys() {
        let mut json: serde_json::Value = serde_json::from_str(BUILTIN_JSON).unwrap();
        json["plans"][2]["product"] =
            serde_json::json!({ "id": "cdn", "name": "CDN", "internal_name": "cdn" });
        let catalog = Catalog::from_json(&json.to_string()).unwrap();
        assert_eq!(catalog.default_product().id, "app");
        assert_eq!(catalog.product_key("app"), ProductKey::Default);
        assert_eq!(catalog.product_key("cdn").suffix(), "#cdn");
        assert_eq!(ProductKey::Default.suffix(), "");
        assert_eq!(
            catalog.product_keys(),
            [ProductKey::Default, ProductKey::Other("cdn".into())]
        );
        assert_eq!(Catalog::builtin().product_keys(), [ProductKey::Default]);
    }

    const EXAMPLE_JSON: &str = include_str!("../../../../examples/plans-enterprise.json");

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    /// `load_with` whose only readable file is the example catalog at `examples/plans.json`.
    pub(super) fn load(vars: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
        Catalog::load_with(env(vars), |path| {
            if path == "examples/plans.json" {
                Ok(EXAMPLE_JSON.to_owned())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "No such file or directory",
                ))
            }
        })
    }

    #[test]
    fn builtin_catalog_is_todays_behaviour() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.source(), "plans.json");
        let ids: Vec<&str> = catalog.plans().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["starter", "growth", "pro"]);
        assert_eq!(catalog.list(), "starter, growth, pro");
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.catalog, catalog);
        for plan in ["starter", "growth", "pro"] {
            let terms = catalog.get_trialable(plan).unwrap();
            assert_eq!(terms.trial_length_secs, 7 * DAY_SECS);
            assert_eq!(terms.grace_secs, 3 * DAY_SECS);
            assert_eq!(
                terms.stripe_price.as_deref(),
                Some(format!("price_{plan}").as_str())
            );
            assert!(terms.options.is_empty());
            assert_eq!(terms.max_total_trial_secs, 90 * DAY_SECS);
            assert_eq!(terms.pause_max_secs, 30 * DAY_SECS);
            assert_eq!(
                terms.reminder_offsets_secs,
                [72 * HOUR_SECS, 24 * HOUR_SECS]
            );
        }
        let names: Vec<&str> = catalog.plans().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Starter", "Growth", "Pro"]);
        assert_eq!(catalog.get("enterprise"), None);
        assert_eq!(catalog.get("Pro"), None);
        // With no variable set, loading is the built-in catalog itself.
        assert_eq!(load(&[]).unwrap(), catalog);
    }

    #[test]
    fn env_overrides_lengths_and_prices_like_config_does() {
        let vars = [
            ("TRIAL_LENGTH", "90s"),
            ("GRACE_PERIOD", "60s"),
            ("STRIPE_PRICE_PRO", "price_1PzLive"),
            ("STRIPE_PRICE_GROWTH", "  "),
        ];
        let catalog = load(&vars).unwrap();
        let config = Config::from_lookup(env(&vars)).unwrap();
        assert_eq!(config.catalog, catalog);
        for plan in catalog.plans() {
            assert_eq!(plan.max_total_trial_secs, 90 * DAY_SECS);
        }
        assert_eq!(catalog.plans()[0].trial_length_secs, 90);
        assert_eq!(catalog.plans()[0].grace_secs, 60);
        let price = |id: &str| catalog.get(id).unwrap().stripe_price.clone();
        assert_eq!(price("pro").as_deref(), Some("price_1PzLive"));
        // A blank variable is unset, as Config::from_env treats it.
        assert_eq!(price("growth").as_deref(), Some("price_growth"));
        assert_eq!(price("starter").as_deref(), Some("price_starter"));
    }

    #[test]
    fn a_trial_length_override_beyond_the_maximum_raises_the_maximum() {
        let catalog = load(&[("TRIAL_LENGTH", "100d")]).unwrap();
        for plan in catalog.plans() {
            assert_eq!(plan.trial_length_secs, 100 * DAY_SECS);
            assert_eq!(plan.max_total_trial_secs, 100 * DAY_SECS);
        }
    }

    #[test]
    fn bad_overrides_name_the_variable() {
        let cases = [
            (
                "TRIAL_LENGTH",
                "seven days",
                "TRIAL_LENGTH: invalid duration",
            ),
            ("GRACE_PERIOD", "0d", "GRACE_PERIOD: invalid duration"),
            (
                "TRIAL_LENGTH",
                "4000d",
                "TRIAL_LENGTH: \"4000d\" is longer than 3650d",
            ),
            (
                "STRIPE_PRICE_PRO",
                "prod_123",
                "STRIPE_PRICE_PRO: \"prod_123\" is not a Stripe price id",
            ),
        ];
        for (var, value, expected) in cases {
            let err = load(&[(var, value)]).unwrap_err();
            assert!(
                matches!(&err, CatalogError::Env { var: v, .. } if v == var),
                "{err:?}"
            );
            assert!(err.to_string().starts_with(expected), "{err}");
        }
    }

    #[test]
    fn plans_file_replaces_the_builtin_catalog_and_overrides_still_apply() {
        let catalog = load(&[("PLANS_FILE", "examples/plans.json")]).unwrap();
        assert_eq!(catalog.source(), "examples/plans.json");
        assert_eq!(
            catalog.list(),
            "starter, growth, pro, enterprise, edge-impulse-enterprise, pro-reverse"
        );
        let enterprise = catalog.get_trialable("enterprise").unwrap();
        assert_eq!(enterprise.trial_length_secs, 14 * DAY_SECS);
        assert_eq!(enterprise.max_total_trial_secs, 60 * DAY_SECS);
        assert_eq!(enterprise.pause_max_secs, 14 * DAY_SECS);
        assert_eq!(
            enterprise.reminder_offsets_secs,
            [7 * DAY_SECS, 72 * HOUR_SECS, 24 * HOUR_SECS]
        );
        assert_eq!(enterprise.stripe_price.as_deref(), Some("price_enterprise"));
        let limit = |name: &str| {
            let o = enterprise
                .options
                .iter()
                .find(|o| o.internal_name == name)
                .unwrap();
            (o.value, o.is_limit, o.ends_trial)
        };
        assert_eq!(limit("api_calls"), (100, true, false));
        assert_eq!(limit("exports"), (3, true, true));
        assert_eq!(limit("storage_gb"), (50, false, false));

        let short = load(&[
            ("PLANS_FILE", "examples/plans.json"),
            ("TRIAL_LENGTH", "2m"),
            ("STRIPE_PRICE_ENTERPRISE", "price_ent2"),
        ])
        .unwrap();
        let enterprise = short.get("enterprise").unwrap();
        assert_eq!(enterprise.trial_length_secs, 120);
        assert_eq!(enterprise.max_total_trial_secs, 60 * DAY_SECS);
        assert_eq!(enterprise.stripe_price.as_deref(), Some("price_ent2"));
    }

    #[test]
    fn an_unreadable_plans_file_is_named() {
        let err = load(&[("PLANS_FILE", "/nowhere/plans.json")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PLANS_FILE /nowhere/plans.json: cannot be read: No such file or directory"
        );
    }

    #[test]
    fn plan_ids_and_their_price_variables() {
        assert_eq!(
            PlanId::parse("pro").unwrap().price_var(),
            "STRIPE_PRICE_PRO"
        );
        assert_eq!(
            PlanId::parse("team-2024").unwrap().price_var(),
            "STRIPE_PRICE_TEAM_2024"
        );
        for bad in [
            "",
            "Pro",
            "-pro",
            "_pro",
            "pro plan",
            "pro#1",
            &"a".repeat(33),
        ] {
            assert_eq!(PlanId::parse(bad), None, "{bad}");
        }
        assert!(PlanId::parse(&"a".repeat(32)).is_some());
    }
}
