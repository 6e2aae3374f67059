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
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::time::parse_duration_secs;

/// The built-in catalog, as shipped.
pub const BUILTIN_JSON: &str = include_str!("../../plans.json");
/// How the built-in catalog names itself in errors.
const BUILTIN_SOURCE: &str = "plans.json";

const DAY_SECS: i64 = 86_400;
const HOUR_SECS: i64 = 3_600;
/// Default ceiling on a trial's total length, extensions included (issue 16).
pub const DEFAULT_MAX_TOTAL_TRIAL_SECS: i64 = 90 * DAY_SECS;
/// Default longest pause before a paused trial resumes by itself.
pub const DEFAULT_PAUSE_MAX_SECS: i64 = 30 * DAY_SECS;
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
        }
    }
}

/// The terms a trial started with, stored on the trial item as a JSON string. Fields added
/// after the first release default when missing, so older items still read; unknown fields are
/// ignored, so an item written by a newer version still reads during a rolling deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialTerms {
    pub plan: PlanId,
    pub name: String,
    pub product: Product,
    pub trial_length_secs: i64,
    pub grace_secs: i64,
    #[serde(default = "default_max_total")]
    pub max_total_trial_secs: i64,
    #[serde(default = "default_pause_max")]
    pub pause_max_secs: i64,
    #[serde(default = "default_reminders")]
    pub reminder_offsets_secs: Vec<i64>,
    #[serde(default)]
    pub options: Vec<PlanOption>,
}

fn default_max_total() -> i64 {
    DEFAULT_MAX_TOTAL_TRIAL_SECS
}
fn default_pause_max() -> i64 {
    DEFAULT_PAUSE_MAX_SECS
}
fn default_reminders() -> Vec<i64> {
    DEFAULT_REMINDER_OFFSETS_SECS.to_vec()
}

impl TrialTerms {
    /// The attribute value to store.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys and integers: serde_json cannot fail on them.
        serde_json::to_string(self).expect("TrialTerms serialises to JSON")
    }

    /// Reads a stored snapshot. An error means a corrupt item, not bad input.
    pub fn from_json(s: &str) -> Result<TrialTerms, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Gcore's `days_limit`: the trial length in whole days, rounded up (a 90 s demo trial is 1).
    pub fn days_limit(&self) -> i64 {
        ceil_days(self.trial_length_secs)
    }

    pub fn option(&self, internal_name: &str) -> Option<&PlanOption> {
        self.options
            .iter()
            .find(|o| o.internal_name == internal_name)
    }
}

fn ceil_days(secs: i64) -> i64 {
    (secs + DAY_SECS - 1).div_euclid(DAY_SECS)
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
// Views
// ---------------------------------------------------------------------------------------------

/// An option's terms in Gcore's names, without usage.
fn option_terms_view(o: &PlanOption) -> Map<String, Value> {
    let view = json!({
        "internal_name": o.internal_name,
        "name": o.name,
        "description": o.description,
        "unit": { "id": o.unit.id, "name": o.unit.name, "internal_name": o.unit.internal_name },
        "value": o.value,
        "is_limit": o.is_limit,
        "feature": { "id": o.feature.id, "name": o.feature.name },
    });
    match view {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Gcore's `options` array for a trial: each option with `used_value` (0 when `used` has no
/// entry) and `remaining_value` (`value - used`, never below 0; for an informational option it
/// is computed the same way, so the JSON types never vary).
pub fn options_view(terms: &TrialTerms, used: &HashMap<String, i64>) -> Value {
    terms
        .options
        .iter()
        .map(|o| {
            let used_value = used.get(&o.internal_name).copied().unwrap_or(0).max(0);
            let mut view = option_terms_view(o);
            view.insert("used_value".into(), used_value.into());
            view.insert(
                "remaining_value".into(),
                o.value.saturating_sub(used_value).max(0).into(),
            );
            Value::Object(view)
        })
        .collect::<Vec<_>>()
        .into()
}

/// The body of `GET /v1/plans`: each trialable plan with its terms, for a pricing page's
/// "Start free trial" buttons. Days are rounded up, like `days_remaining`; options add
/// `ends_trial` to Gcore's fields, since a buyer should know a limit ends the trial.
pub fn plans_view(catalog: &Catalog) -> Value {
    let plans: Vec<Value> = catalog
        .trialable()
        .map(|p| {
            let options: Vec<Value> = p
                .options
                .iter()
                .map(|o| {
                    let mut view = option_terms_view(o);
                    view.insert("ends_trial".into(), o.ends_trial.into());
                    Value::Object(view)
                })
                .collect();
            json!({
                "id": p.id.as_str(),
                "name": p.name,
                "product": {
                    "id": p.product.id,
                    "name": p.product.name,
                    "internal_name": p.product.internal_name,
                },
                "trial_days": ceil_days(p.trial_length_secs),
                "grace_days": ceil_days(p.grace_secs),
                "options": options,
            })
        })
        .collect();
    json!({ "plans": plans })
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

// ---------------------------------------------------------------------------------------------
// The file format (private: strict, unlike the stored snapshot)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    plans: Vec<PlanFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    id: String,
    name: String,
    product: ProductFile,
    trial_length: String,
    grace_period: String,
    #[serde(default = "yes")]
    trialable: bool,
    #[serde(default)]
    stripe_price: Option<String>,
    #[serde(default)]
    max_total_trial_length: Option<String>,
    #[serde(default)]
    pause_max: Option<String>,
    #[serde(default)]
    reminder_offsets: Option<Vec<String>>,
    #[serde(default)]
    options: Vec<OptionFile>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    id: String,
    name: String,
    internal_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitFile {
    id: String,
    name: String,
    internal_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureFile {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionFile {
    internal_name: String,
    name: String,
    #[serde(default)]
    description: String,
    unit: UnitFile,
    value: i64,
    #[serde(default)]
    is_limit: bool,
    feature: FeatureFile,
    #[serde(default)]
    ends_trial: bool,
}

/// serde with the path of the failing field, turned into one line naming the plan.
fn parse_file(source: &str, text: &str) -> Result<CatalogFile, CatalogError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let err = match serde_path_to_error::deserialize::<_, CatalogFile>(&mut de) {
        Ok(file) => {
            // Trailing characters after the catalog's object.
            return de.end().map(|()| file).map_err(|e| CatalogError::Syntax {
                source: source.to_owned(),
                reason: e.to_string(),
            });
        }
        Err(err) => err,
    };
    let reason = err.inner().to_string();
    let mut segments = err.path().iter();
    let index = match (segments.next(), segments.next()) {
        (
            Some(serde_path_to_error::Segment::Map { key }),
            Some(serde_path_to_error::Segment::Seq { index }),
        ) if key == "plans" => *index,
        _ => {
            return Err(CatalogError::Syntax {
                source: source.to_owned(),
                reason,
            })
        }
    };
    let mut field = String::new();
    for segment in segments {
        match segment {
            serde_path_to_error::Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            _ => {}
        }
    }
    // The failing plan's id, if the JSON is well-formed enough to find it.
    let id = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["plans"][index]["id"].as_str().map(str::to_owned))
        .filter(|id| is_slug(id, PLAN_ID_MAX));
    Err(CatalogError::Plan {
        source: source.to_owned(),
        plan: id.map_or(PlanRef::Index(index), PlanRef::Id),
        field,
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// `^[a-z0-9][a-z0-9_-]{0,max-1}$`
fn is_slug(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    (1..=max).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn check_slug(s: &str, max: usize) -> Result<(), String> {
    if is_slug(s, max) {
        Ok(())
    } else {
        Err(slug_error(s, max))
    }
}

fn slug_error(s: &str, max: usize) -> String {
    format!(
        "{:?} must match ^[a-z0-9][a-z0-9_-]{{0,{}}}$",
        truncate(s),
        max - 1
    )
}

/// A display text: not blank, no control characters, at most `max` characters.
fn check_text(s: &str, max: usize, may_be_empty: bool) -> Result<(), String> {
    if s.trim().is_empty() && !may_be_empty {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// `price_` and letters, digits or `_`, as Stripe and the local stand-in spell price ids.
fn check_price(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("price_").unwrap_or("");
    if !rest.is_empty()
        && s.len() <= PRICE_MAX
        && rest.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a Stripe price id (price_ then letters, digits or _)",
            truncate(s)
        ))
    }
}

/// Echoes of bad input stay short.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn check_duration(raw: &str, zero_ok: bool) -> Result<i64, String> {
    let secs = match parse_duration_secs(raw) {
        Ok(secs) => secs,
        Err(_) if zero_ok && is_zero_duration(raw) => 0,
        Err(e) if zero_ok => return Err(format!("{e}, or 0")),
        Err(e) => return Err(e),
    };
    if secs > MAX_DURATION_SECS {
        return Err(format!("{raw:?} is longer than 3650d"));
    }
    Ok(secs)
}

/// `0`, `0s`, `0m`, `0h`, `0d`: the time helper refuses zero, which only a grace period allows.
fn is_zero_duration(raw: &str) -> bool {
    let s = raw.trim();
    let digits = s.strip_suffix(['d', 'h', 'm', 's']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

/// One plan's check: every error carries the field's path inside the plan.
struct PlanCheck<'a> {
    source: &'a str,
    plan: PlanRef,
}

impl PlanCheck<'_> {
    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> CatalogError {
        CatalogError::Plan {
            source: self.source.to_owned(),
            plan: self.plan.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn at<T>(&self, field: &str, r: Result<T, String>) -> Result<T, CatalogError> {
        r.map_err(|reason| self.err(field, reason))
    }
}

fn validate(source: &str, file: CatalogFile) -> Result<Catalog, CatalogError> {
    let catalog_err = |reason: &str| CatalogError::Catalog {
        source: source.to_owned(),
        reason: reason.to_owned(),
    };
    if file.plans.is_empty() {
        return Err(catalog_err("the catalog has no plan"));
    }
    if file.plans.len() > MAX_PLANS {
        return Err(catalog_err(&format!("at most {MAX_PLANS} plans")));
    }
    let mut plans: Vec<PlanTerms> = Vec::with_capacity(file.plans.len());
    // Product id -> the plan that first described it, so every plan agrees on its name.
    let mut products: HashMap<String, usize> = HashMap::new();
    for (index, raw) in file.plans.into_iter().enumerate() {
        let id = PlanId::parse(&raw.id).ok_or_else(|| {
            PlanCheck {
                source,
                plan: PlanRef::Index(index),
            }
            .err("id", slug_error(&raw.id, PLAN_ID_MAX))
        })?;
        let c = PlanCheck {
            source,
            plan: PlanRef::Id(id.as_str().to_owned()),
        };
        if let Some(first) = plans.iter().position(|p| p.id == id) {
            return Err(PlanCheck {
                source,
                plan: PlanRef::Index(index),
            }
            .err(
                "id",
                format!("{:?} is already the id of plans[{first}]", id.as_str()),
            ));
        }
        if let Some(other) = plans.iter().find(|p| p.id.price_var() == id.price_var()) {
            return Err(c.err(
                "id",
                format!(
                    "its price variable {} is also that of plan {:?}",
                    id.price_var(),
                    other.id.as_str()
                ),
            ));
        }
        c.at("name", check_text(&raw.name, NAME_MAX, false))?;
        let product = check_product(&c, raw.product)?;
        if let Some(&first) = products.get(&product.id) {
            let other = &plans[first];
            if other.product != product {
                return Err(c.err(
                    "product",
                    format!(
                        "product {:?} is described differently by plan {:?}",
                        product.id,
                        other.id.as_str()
                    ),
                ));
            }
        } else {
            products.insert(product.id.clone(), index);
        }
        let trial_length_secs = c.at("trial_length", check_duration(&raw.trial_length, false))?;
        let grace_secs = c.at("grace_period", check_duration(&raw.grace_period, true))?;
        let max_total_trial_secs = match &raw.max_total_trial_length {
            None => DEFAULT_MAX_TOTAL_TRIAL_SECS.max(trial_length_secs),
            Some(raw_max) => {
                let max = c.at("max_total_trial_length", check_duration(raw_max, false))?;
                if max < trial_length_secs {
                    return Err(c.err(
                        "max_total_trial_length",
                        format!(
                            "{raw_max:?} is shorter than trial_length {:?}",
                            raw.trial_length
                        ),
                    ));
                }
                max
            }
        };
        let pause_max_secs = match &raw.pause_max {
            None => DEFAULT_PAUSE_MAX_SECS,
            Some(raw_pause) => c.at("pause_max", check_duration(raw_pause, false))?,
        };
        let reminder_offsets_secs = match &raw.reminder_offsets {
            None => DEFAULT_REMINDER_OFFSETS_SECS.to_vec(),
            Some(list) => check_reminders(&c, list)?,
        };
        let stripe_price = match raw.stripe_price {
            None => None,
            Some(price) => {
                c.at("stripe_price", check_price(&price))?;
                Some(price)
            }
        };
        if raw.options.len() > MAX_OPTIONS {
            return Err(c.err("options", format!("at most {MAX_OPTIONS} options")));
        }
        let mut options: Vec<PlanOption> = Vec::with_capacity(raw.options.len());
        for (i, option) in raw.options.into_iter().enumerate() {
            let option = check_option(&c, i, option)?;
            if options
                .iter()
                .any(|o| o.internal_name == option.internal_name)
            {
                return Err(c.err(
                    format!("options[{i}].internal_name"),
                    format!("duplicate {:?}", option.internal_name),
                ));
            }
            options.push(option);
        }
        plans.push(PlanTerms {
            id,
            name: raw.name,
            product,
            trial_length_secs,
            grace_secs,
            trialable: raw.trialable,
            stripe_price,
            max_total_trial_secs,
            pause_max_secs,
            reminder_offsets_secs,
            options,
        });
    }
    if !plans.iter().any(|p| p.trialable) {
        return Err(catalog_err("no plan is trialable"));
    }
    Ok(Catalog {
        source: source.to_owned(),
        plans,
    })
}

fn check_product(c: &PlanCheck, p: ProductFile) -> Result<Product, CatalogError> {
    c.at("product.id", check_slug(&p.id, SLUG_MAX))?;
    c.at("product.name", check_text(&p.name, NAME_MAX, false))?;
    c.at(
        "product.internal_name",
        check_slug(&p.internal_name, SLUG_MAX),
    )?;
    Ok(Product {
        id: p.id,
        name: p.name,
        internal_name: p.internal_name,
    })
}

/// Distinct positive offsets, returned longest first (the order reminders fire in).
fn check_reminders(c: &PlanCheck, list: &[String]) -> Result<Vec<i64>, CatalogError> {
    if list.len() > MAX_REMINDERS {
        return Err(c.err(
            "reminder_offsets",
            format!("at most {MAX_REMINDERS} reminders"),
        ));
    }
    let mut seen = HashSet::new();
    let mut offsets = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let field = format!("reminder_offsets[{i}]");
        let secs = c.at(&field, check_duration(raw, false))?;
        if !seen.insert(secs) {
            return Err(c.err(field, format!("{raw:?} repeats an earlier offset")));
        }
        offsets.push(secs);
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

fn check_option(c: &PlanCheck, i: usize, o: OptionFile) -> Result<PlanOption, CatalogError> {
    let f = |name: &str| format!("options[{i}].{name}");
    c.at(&f("internal_name"), check_slug(&o.internal_name, SLUG_MAX))?;
    c.at(&f("name"), check_text(&o.name, NAME_MAX, false))?;
    c.at(
        &f("description"),
        check_text(&o.description, DESCRIPTION_MAX, true),
    )?;
    c.at(&f("unit.id"), check_slug(&o.unit.id, SLUG_MAX))?;
    c.at(&f("unit.name"), check_text(&o.unit.name, NAME_MAX, false))?;
    c.at(
        &f("unit.internal_name"),
        check_slug(&o.unit.internal_name, SLUG_MAX),
    )?;
    c.at(&f("feature.id"), check_slug(&o.feature.id, SLUG_MAX))?;
    c.at(
        &f("feature.name"),
        check_text(&o.feature.name, NAME_MAX, false),
    )?;
    if o.is_limit && !(1..=MAX_OPTION_VALUE).contains(&o.value) {
        return Err(c.err(
            f("value"),
            format!("must be a positive integer for a limit (1 to {MAX_OPTION_VALUE})"),
        ));
    }
    if !o.is_limit && !(0..=MAX_OPTION_VALUE).contains(&o.value) {
        return Err(c.err(
            f("value"),
            format!("must be an integer from 0 to {MAX_OPTION_VALUE}"),
        ));
    }
    if o.ends_trial && !o.is_limit {
        return Err(c.err(
            f("ends_trial"),
            "only a limit can end the trial (set is_limit: true)",
        ));
    }
    Ok(PlanOption {
        internal_name: o.internal_name,
        name: o.name,
        description: o.description,
        unit: Unit {
            id: o.unit.id,
            name: o.unit.name,
            internal_name: o.unit.internal_name,
        },
        value: o.value,
        is_limit: o.is_limit,
        feature: Feature {
            id: o.feature.id,
            name: o.feature.name,
        },
        ends_trial: o.ends_trial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const EXAMPLE_JSON: &str = include_str!("../../../examples/plans-enterprise.json");

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    /// `load_with` whose only readable file is the example catalog at `examples/plans.json`.
    fn load(vars: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
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
        assert_eq!(catalog.list(), "starter, growth, pro, enterprise");
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

    /// A valid two-plan catalog to break one field at a time.
    fn base() -> Value {
        let option = |name: &str| {
            json!({
                "internal_name": name,
                "name": "API calls",
                "description": "Calls to the API.",
                "unit": { "id": "call", "name": "Calls", "internal_name": "call" },
                "value": 100,
                "is_limit": true,
                "feature": { "id": "api", "name": "API" },
                "ends_trial": false
            })
        };
        json!({ "plans": [
            {
                "id": "starter",
                "name": "Starter",
                "product": { "id": "app", "name": "App", "internal_name": "app" },
                "trial_length": "7d",
                "grace_period": "3d",
                "stripe_price": "price_starter"
            },
            {
                "id": "pro",
                "name": "Pro",
                "product": { "id": "app", "name": "App", "internal_name": "app" },
                "trial_length": "14d",
                "grace_period": "0s",
                "max_total_trial_length": "30d",
                "pause_max": "7d",
                "reminder_offsets": ["24h", "72h"],
                "options": [option("api_calls"), option("exports")]
            }
        ]})
    }

    fn parse(v: &Value) -> Result<Catalog, CatalogError> {
        Catalog::from_json(&v.to_string())
    }

    #[test]
    fn the_base_of_the_error_table_is_valid() {
        let catalog = parse(&base()).unwrap();
        let pro = catalog.get("pro").unwrap();
        assert_eq!(pro.grace_secs, 0);
        assert_eq!(pro.stripe_price, None);
        assert_eq!(pro.reminder_offsets_secs, [72 * HOUR_SECS, 24 * HOUR_SECS]);
        assert!(pro.trialable);
    }

    #[test]
    fn each_invalid_field_is_named_with_its_plan() {
        type Edit = fn(&mut Value);
        let pro = || PlanRef::Id("pro".into());
        let cases: &[(Edit, PlanRef, &str, &str)] = &[
            (
                |v| v["plans"][1]["id"] = json!("Pro"),
                PlanRef::Index(1),
                "id",
                "must match ^[a-z0-9][a-z0-9_-]{0,31}$",
            ),
            (
                |v| v["plans"][1]["id"] = json!("a".repeat(33)),
                PlanRef::Index(1),
                "id",
                "must match",
            ),
            (
                |v| v["plans"][1]["id"] = json!("starter"),
                PlanRef::Index(1),
                "id",
                "\"starter\" is already the id of plans[0]",
            ),
            (
                |v| {
                    v["plans"][0]["id"] = json!("a-b");
                    v["plans"][1]["id"] = json!("a_b");
                },
                PlanRef::Id("a_b".into()),
                "id",
                "its price variable STRIPE_PRICE_A_B is also that of plan \"a-b\"",
            ),
            (
                |v| v["plans"][1]["name"] = json!(" "),
                pro(),
                "name",
                "must not be empty",
            ),
            (
                |v| v["plans"][1]["name"] = json!("P".repeat(101)),
                pro(),
                "name",
                "at most 100 characters",
            ),
            (
                |v| v["plans"][1]["product"]["id"] = json!("My App"),
                pro(),
                "product.id",
                "must match",
            ),
            (
                |v| v["plans"][1]["product"]["internal_name"] = json!(""),
                pro(),
                "product.internal_name",
                "must match",
            ),
            (
                |v| v["plans"][1]["product"]["name"] = json!("Other"),
                pro(),
                "product",
                "described differently by plan \"starter\"",
            ),
            (
                |v| v["plans"][1]["trial_length"] = json!("7"),
                pro(),
                "trial_length",
                "invalid duration \"7\"",
            ),
            (
                |v| v["plans"][1]["trial_length"] = json!("0d"),
                pro(),
                "trial_length",
                "invalid duration",
            ),
            (
                |v| v["plans"][1]["trial_length"] = json!("3651d"),
                pro(),
                "trial_length",
                "longer than 3650d",
            ),
            (
                |v| v["plans"][1]["trial_length"] = json!(7),
                pro(),
                "trial_length",
                "invalid type: integer `7`, expected a string",
            ),
            (
                |v| v["plans"][1]["grace_period"] = json!("-1d"),
                pro(),
                "grace_period",
                "invalid duration",
            ),
            (
                |v| v["plans"][1]["max_total_trial_length"] = json!("13d"),
                pro(),
                "max_total_trial_length",
                "\"13d\" is shorter than trial_length \"14d\"",
            ),
            (
                |v| v["plans"][1]["pause_max"] = json!("0h"),
                pro(),
                "pause_max",
                "invalid duration",
            ),
            (
                |v| v["plans"][1]["reminder_offsets"] = json!(["72h", "3d"]),
                pro(),
                "reminder_offsets[1]",
                "repeats an earlier offset",
            ),
            (
                |v| v["plans"][1]["reminder_offsets"] = json!(["1h", "x"]),
                pro(),
                "reminder_offsets[1]",
                "invalid duration",
            ),
            (
                |v| v["plans"][1]["reminder_offsets"] = json!(vec!["1h"; 9]),
                pro(),
                "reminder_offsets",
                "at most 8 reminders",
            ),
            (
                |v| v["plans"][1]["stripe_price"] = json!("prod_123"),
                pro(),
                "stripe_price",
                "not a Stripe price id",
            ),
            (
                |v| v["plans"][1]["stripe_price"] = json!("price_"),
                pro(),
                "stripe_price",
                "not a Stripe price id",
            ),
            (
                |v| v["plans"][1]["trialable"] = json!("yes"),
                pro(),
                "trialable",
                "invalid type: string \"yes\", expected a boolean",
            ),
            (
                |v| v["plans"][1]["colour"] = json!("blue"),
                pro(),
                "colour",
                "unknown field `colour`",
            ),
            (
                |v| {
                    v["plans"][1]
                        .as_object_mut()
                        .unwrap()
                        .remove("grace_period");
                },
                pro(),
                "",
                "missing field `grace_period`",
            ),
            (
                |v| v["plans"][1]["options"][1]["value"] = json!(0),
                pro(),
                "options[1].value",
                "must be a positive integer for a limit",
            ),
            (
                |v| v["plans"][1]["options"][1]["value"] = json!(MAX_OPTION_VALUE + 1),
                pro(),
                "options[1].value",
                "must be a positive integer for a limit",
            ),
            (
                |v| v["plans"][1]["options"][1]["value"] = json!(1.5),
                pro(),
                "options[1].value",
                "invalid type: floating point `1.5`, expected i64",
            ),
            (
                |v| v["plans"][1]["options"][1]["value"] = json!("100"),
                pro(),
                "options[1].value",
                "invalid type: string \"100\", expected i64",
            ),
            (
                |v| {
                    v["plans"][1]["options"][1]["is_limit"] = json!(false);
                    v["plans"][1]["options"][1]["value"] = json!(-1);
                },
                pro(),
                "options[1].value",
                "must be an integer from 0",
            ),
            (
                |v| {
                    v["plans"][1]["options"][0]["is_limit"] = json!(false);
                    v["plans"][1]["options"][0]["ends_trial"] = json!(true);
                },
                pro(),
                "options[0].ends_trial",
                "only a limit can end the trial",
            ),
            (
                |v| v["plans"][1]["options"][1]["internal_name"] = json!("api_calls"),
                pro(),
                "options[1].internal_name",
                "duplicate \"api_calls\"",
            ),
            (
                |v| v["plans"][1]["options"][0]["internal_name"] = json!("API calls"),
                pro(),
                "options[0].internal_name",
                "must match ^[a-z0-9][a-z0-9_-]{0,63}$",
            ),
            (
                |v| v["plans"][1]["options"][0]["name"] = json!(""),
                pro(),
                "options[0].name",
                "must not be empty",
            ),
            (
                |v| v["plans"][1]["options"][0]["description"] = json!("bell\u{7}"),
                pro(),
                "options[0].description",
                "control characters",
            ),
            (
                |v| v["plans"][1]["options"][0]["unit"]["id"] = json!("Calls"),
                pro(),
                "options[0].unit.id",
                "must match",
            ),
            (
                |v| v["plans"][1]["options"][0]["unit"]["internal_name"] = json!("-call"),
                pro(),
                "options[0].unit.internal_name",
                "must match",
            ),
            (
                |v| v["plans"][1]["options"][0]["unit"]["name"] = json!(""),
                pro(),
                "options[0].unit.name",
                "must not be empty",
            ),
            (
                |v| v["plans"][1]["options"][0]["feature"]["id"] = json!(""),
                pro(),
                "options[0].feature.id",
                "must match",
            ),
            (
                |v| v["plans"][1]["options"][0]["feature"]["name"] = json!(""),
                pro(),
                "options[0].feature.name",
                "must not be empty",
            ),
            (
                |v| v["plans"][1]["options"][0]["feature"]["rank"] = json!(1),
                pro(),
                "options[0].feature.rank",
                "unknown field `rank`",
            ),
            (
                |v| {
                    v["plans"][1]["options"] =
                        Value::Array(vec![base()["plans"][1]["options"][0].clone(); 33])
                },
                pro(),
                "options",
                "at most 32 options",
            ),
        ];
        for (edit, plan, field, reason) in cases {
            let mut v = base();
            edit(&mut v);
            let err = parse(&v).unwrap_err();
            assert_eq!(err.plan_field(), Some((plan, *field)), "{err}");
            let line = err.to_string();
            let prefix = if field.is_empty() {
                format!("plans.json: {plan}: ")
            } else {
                format!("plans.json: {plan}: {field}: ")
            };
            assert!(line.starts_with(&prefix), "{line}");
            assert!(line.contains(reason), "{line} should contain {reason}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    #[test]
    fn the_error_line_reads_as_documented() {
        let mut v = base();
        v["plans"][1]["options"][1]["value"] = json!(-5);
        assert_eq!(
            parse(&v).unwrap_err().to_string(),
            "plans.json: plan \"pro\": options[1].value: must be a positive integer for a limit \
             (1 to 9007199254740991)"
        );
        let err = Catalog::from_json_named("/etc/trials/plans.json", "{\"plans\": [{\"id\": 1}]}")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/trials/plans.json: plans[0]: id: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn catalog_wide_errors_are_named() {
        let mut none_trialable = base();
        none_trialable["plans"][0]["trialable"] = json!(false);
        none_trialable["plans"][1]["trialable"] = json!(false);
        let mut too_many = json!({ "plans": [] });
        for i in 0..=MAX_PLANS {
            let mut plan = base()["plans"][0].clone();
            plan["id"] = json!(format!("p{i}"));
            too_many["plans"].as_array_mut().unwrap().push(plan);
        }
        let cases = [
            (
                json!({ "plans": [] }).to_string(),
                "plans.json: plans: the catalog has no plan",
            ),
            (
                none_trialable.to_string(),
                "plans.json: plans: no plan is trialable",
            ),
            (too_many.to_string(), "plans.json: plans: at most 64 plans"),
            (
                "{\"plans\": [], \"version\": 2}".into(),
                "plans.json: unknown field `version`",
            ),
            ("{}".into(), "plans.json: missing field `plans`"),
            ("not json".into(), "plans.json: expected ident"),
            (
                format!("{} {{}}", base()),
                "plans.json: trailing characters",
            ),
        ];
        for (text, expected) in cases {
            let err = Catalog::from_json(&text).unwrap_err();
            assert!(err.plan_field().is_none(), "{err:?}");
            assert!(err.to_string().starts_with(expected), "{err} / {expected}");
        }
    }

    #[test]
    fn non_trialable_plans_are_known_but_not_offered() {
        let mut v = base();
        v["plans"][0]["trialable"] = json!(false);
        let catalog = parse(&v).unwrap();
        assert!(catalog.get("starter").is_some());
        assert!(catalog.get_trialable("starter").is_none());
        assert_eq!(catalog.list(), "pro");
        assert_eq!(plans_view(&catalog)["plans"].as_array().unwrap().len(), 1);
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

    fn enterprise_terms() -> TrialTerms {
        Catalog::from_json(EXAMPLE_JSON)
            .unwrap()
            .get("enterprise")
            .unwrap()
            .snapshot()
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let terms = enterprise_terms();
        assert_eq!(terms.plan.as_str(), "enterprise");
        assert_eq!(terms.days_limit(), 14);
        assert_eq!(terms.options.len(), 3);
        assert_eq!(terms.option("exports").map(|o| o.ends_trial), Some(true));
        assert_eq!(terms.option("nope"), None);
        let stored = terms.to_json();
        assert_eq!(TrialTerms::from_json(&stored).unwrap(), terms);
    }

    #[test]
    fn snapshot_of_an_older_item_defaults_what_it_lacks() {
        let stored = r#"{
            "plan": "pro", "name": "Pro",
            "product": {"id": "app", "name": "App", "internal_name": "app"},
            "trial_length_secs": 604800, "grace_secs": 259200,
            "written_by_a_newer_version": true
        }"#;
        let terms = TrialTerms::from_json(stored).unwrap();
        assert_eq!(terms, Catalog::builtin().get("pro").unwrap().snapshot());
        assert_eq!(terms.max_total_trial_secs, DEFAULT_MAX_TOTAL_TRIAL_SECS);
        assert_eq!(terms.pause_max_secs, DEFAULT_PAUSE_MAX_SECS);
        assert_eq!(terms.reminder_offsets_secs, DEFAULT_REMINDER_OFFSETS_SECS);
        assert!(terms.options.is_empty());

        let option = r#"{"internal_name": "api_calls", "name": "API calls",
            "unit": {"id": "call", "name": "Calls", "internal_name": "call"},
            "value": 5, "feature": {"id": "api", "name": "API"}}"#;
        let with_option = stored.replace(
            "\"written_by_a_newer_version\": true",
            &format!("\"options\": [{option}]"),
        );
        let o = &TrialTerms::from_json(&with_option).unwrap().options[0];
        assert_eq!(
            (o.description.as_str(), o.is_limit, o.ends_trial),
            ("", false, false)
        );

        for corrupt in [
            stored.replace("\"plan\": \"pro\", ", ""),
            stored.replace("\"pro\"", "\"Not A Plan\""),
            stored.replace("604800", "\"7d\""),
        ] {
            assert!(TrialTerms::from_json(&corrupt).is_err(), "{corrupt}");
        }
    }

    #[test]
    fn legacy_trials_get_their_plan_without_limits() {
        let example = Catalog::from_json(EXAMPLE_JSON).unwrap();
        let terms = example.legacy_terms("enterprise").unwrap();
        assert!(terms.options.is_empty());
        assert_eq!(terms.trial_length_secs, 14 * DAY_SECS);

        let mut v = base();
        v["plans"][0]["id"] = json!("growth-2");
        let without_growth = parse(&v).unwrap();
        let growth = without_growth.legacy_terms("growth").unwrap();
        assert_eq!((growth.name.as_str(), growth.days_limit()), ("Growth", 7));
        assert_eq!(without_growth.legacy_terms("platinum"), None);
    }

    #[test]
    fn options_view_has_gcores_fields_and_usage() {
        let terms = enterprise_terms();
        let used = HashMap::from([("api_calls".to_owned(), 30), ("exports".to_owned(), 5)]);
        let view = options_view(&terms, &used);
        let options = view.as_array().unwrap();
        assert_eq!(options.len(), 3);
        assert_eq!(
            options[0],
            json!({
                "internal_name": "api_calls",
                "name": "API calls",
                "description": "Calls to the public API during the trial.",
                "unit": { "id": "call", "name": "Calls", "internal_name": "call" },
                "value": 100,
                "used_value": 30,
                "remaining_value": 70,
                "is_limit": true,
                "feature": { "id": "api", "name": "API" }
            })
        );
        // Over-use (never recorded, but a corrupt counter must not show a negative remainder).
        assert_eq!(options[1]["used_value"], 5);
        assert_eq!(options[1]["remaining_value"], 0);
        // No usage recorded yet.
        assert_eq!(options[2]["used_value"], 0);
        assert_eq!(options[2]["remaining_value"], 50);
        assert_eq!(
            options_view(&Catalog::builtin().get("pro").unwrap().snapshot(), &used),
            json!([])
        );
    }

    #[test]
    fn plans_view_lists_trialable_plans_with_their_terms() {
        let view = plans_view(&Catalog::builtin());
        assert_eq!(
            view["plans"][2],
            json!({
                "id": "pro",
                "name": "Pro",
                "product": { "id": "app", "name": "App", "internal_name": "app" },
                "trial_days": 7,
                "grace_days": 3,
                "options": []
            })
        );
        assert_eq!(view["plans"].as_array().unwrap().len(), 3);

        let example = load(&[
            ("PLANS_FILE", "examples/plans.json"),
            ("TRIAL_LENGTH", "90s"),
        ])
        .unwrap();
        let view = plans_view(&example);
        let enterprise = &view["plans"][3];
        assert_eq!(enterprise["id"], "enterprise");
        assert_eq!(enterprise["trial_days"], 1, "90 s rounds up to a day");
        assert_eq!(enterprise["options"][1]["ends_trial"], true);
        assert_eq!(enterprise["options"][1]["is_limit"], true);
        assert!(enterprise["options"][1].get("used_value").is_none());
    }
}
