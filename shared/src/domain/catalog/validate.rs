//! Validation: from the parsed file to a [`Catalog`] every plan of which is known good (ids,
//! texts, prices, durations, reminders, options), or the first error, naming its plan and field.
use std::collections::{HashMap, HashSet};

use super::parse::{is_slug, CatalogFile, OptionFile, PlanFile, ProductFile};
use super::terms::{END_DOWNGRADE, END_EXPIRE};
use super::{
    Catalog, CatalogError, Feature, PlanId, PlanOption, PlanRef, PlanTerms, Product, Starts,
    TrialTerms, Unit, DEFAULT_ACTIVATION_WINDOW_SECS, DEFAULT_MAX_TOTAL_TRIAL_SECS,
    DEFAULT_PAUSE_MAX_SECS, DEFAULT_REMINDER_OFFSETS_SECS, DESCRIPTION_MAX, MAX_DURATION_SECS,
    MAX_OPTIONS, MAX_OPTION_VALUE, MAX_PLANS, MAX_REMINDERS, NAME_MAX, PLAN_ID_MAX, PRICE_MAX,
    SLUG_MAX,
};
use crate::domain::time::parse_duration_secs;

/// `^[a-z0-9][a-z0-9_-]{0,max-1}$`
pub(super) fn check_slug(s: &str, max: usize) -> Result<(), String> {
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
pub(super) fn check_price(s: &str) -> Result<(), String> {
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

pub(super) fn validate(source: &str, file: CatalogFile) -> Result<Catalog, CatalogError> {
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
    // Each plan's `downgrade_to` id, resolved once every plan is read (it may name a later one).
    let mut ends: Vec<Option<String>> = Vec::with_capacity(file.plans.len());
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
        let (starts, activation_window_secs) = check_starts(&c, &raw)?;
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
            starts,
            activation_window_secs,
            downgrade_to: None,
        });
        ends.push(check_end(
            &c,
            raw.end_behavior,
            raw.downgrade_to,
            raw.trialable,
        )?);
    }
    if !plans.iter().any(|p| p.trialable) {
        return Err(catalog_err("no plan is trialable"));
    }
    for (index, end) in ends.into_iter().enumerate() {
        let Some(to) = end else { continue };
        let c = PlanCheck {
            source,
            plan: PlanRef::Id(plans[index].id.as_str().to_owned()),
        };
        let free = resolve_downgrade(&c, &plans, index, &to)?;
        plans[index].downgrade_to = Some(Box::new(free));
    }
    Ok(Catalog {
        source: source.to_owned(),
        plans,
    })
}

/// `starts` (`on_start`, the default, or `on_activation`) and `activation_window` (a duration:
/// required with `on_activation`, else the window of a start that asks for activation;
/// default [`DEFAULT_ACTIVATION_WINDOW_SECS`]).
fn check_starts(c: &PlanCheck, raw: &PlanFile) -> Result<(Starts, i64), CatalogError> {
    let starts = match raw.starts.as_deref() {
        None => Starts::OnStart,
        Some(s) => Starts::parse(s).ok_or_else(|| {
            c.err(
                "starts",
                format!(
                    "{:?} must be \"on_start\" or \"on_activation\"",
                    truncate(s)
                ),
            )
        })?,
    };
    let window = match &raw.activation_window {
        Some(raw_window) => c.at("activation_window", check_duration(raw_window, false))?,
        None if starts == Starts::OnActivation => {
            return Err(c.err(
                "activation_window",
                "required when starts is \"on_activation\"",
            ))
        }
        None => DEFAULT_ACTIVATION_WINDOW_SECS,
    };
    Ok((starts, window))
}

/// `end_behavior` and `downgrade_to` together: `"expire"` (or nothing) without a
/// `downgrade_to`, `"downgrade"` with one, and only on a trialable plan (the free plan itself
/// never ends). Returns the id to resolve.
fn check_end(
    c: &PlanCheck,
    end: Option<String>,
    downgrade_to: Option<String>,
    trialable: bool,
) -> Result<Option<String>, CatalogError> {
    match (end.as_deref(), downgrade_to) {
        (None | Some(END_EXPIRE), None) => Ok(None),
        (None | Some(END_EXPIRE), Some(_)) => Err(c.err(
            "downgrade_to",
            "only a plan with end_behavior \"downgrade\" names a plan to downgrade to",
        )),
        (Some(END_DOWNGRADE), None) => Err(c.err(
            "downgrade_to",
            "end_behavior \"downgrade\" needs downgrade_to, the free plan the trial ends on",
        )),
        (Some(END_DOWNGRADE), Some(_)) if !trialable => Err(c.err(
            "end_behavior",
            "only a trialable plan ends; a plan that is not trialable has no end behavior",
        )),
        (Some(END_DOWNGRADE), Some(to)) => Ok(Some(to)),
        (Some(other), _) => Err(c.err(
            "end_behavior",
            format!("{:?} must be \"expire\" or \"downgrade\"", truncate(other)),
        )),
    }
}

/// The free plan `to` that plan `index` downgrades to: a plan of the catalog, of the same
/// product, and free (not trialable; it needs no Stripe price). Its terms are snapshotted.
fn resolve_downgrade(
    c: &PlanCheck,
    plans: &[PlanTerms],
    index: usize,
    to: &str,
) -> Result<TrialTerms, CatalogError> {
    let from = &plans[index];
    let Some(free) = plans.iter().find(|p| p.id.as_str() == to) else {
        return Err(c.err(
            "downgrade_to",
            format!("{:?} is not a plan of the catalog", truncate(to)),
        ));
    };
    if free.product.id != from.product.id {
        return Err(c.err(
            "downgrade_to",
            format!(
                "plan {to:?} is of product {:?}, not {:?}: a trial downgrades within its product",
                free.product.id, from.product.id
            ),
        ));
    }
    if free.trialable {
        return Err(c.err(
            "downgrade_to",
            format!(
                "plan {to:?} is trialable: a trial downgrades to a free plan (trialable: false)"
            ),
        ));
    }
    Ok(free.snapshot())
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
pub(super) mod tests {
    use serde_json::{json, Value};

    use super::super::{plans_view, HOUR_SECS};
    use super::*;

    /// A valid two-plan catalog to break one field at a time.
    pub(in crate::domain::catalog) fn base() -> Value {
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

    pub(in crate::domain::catalog) fn parse(v: &Value) -> Result<Catalog, CatalogError> {
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
            (
                |v| v["plans"][1]["starts"] = json!("later"),
                pro(),
                "starts",
                "\"later\" must be \"on_start\" or \"on_activation\"",
            ),
            (
                |v| v["plans"][1]["starts"] = json!("on_activation"),
                pro(),
                "activation_window",
                "required when starts is \"on_activation\"",
            ),
            (
                |v| v["plans"][1]["activation_window"] = json!("soon"),
                pro(),
                "activation_window",
                "",
            ),
            (
                |v| v["plans"][1]["starts"] = json!(1),
                pro(),
                "starts",
                "invalid type",
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
    fn a_plan_starts_on_start_unless_it_says_on_activation_with_a_window() {
        let catalog = parse(&base()).unwrap();
        let pro = catalog.get("pro").unwrap();
        assert_eq!(pro.starts, Starts::OnStart);
        assert_eq!(pro.activation_window_secs, DEFAULT_ACTIVATION_WINDOW_SECS);
        let mut v = base();
        v["plans"][1]["starts"] = json!("on_activation");
        v["plans"][1]["activation_window"] = json!("14d");
        let pro = parse(&v).unwrap().get("pro").unwrap().clone();
        assert_eq!(pro.starts, Starts::OnActivation);
        assert_eq!(pro.activation_window_secs, 14 * 86_400);
        let view = plans_view(&parse(&v).unwrap());
        assert_eq!(view["plans"][1]["starts"], "on_activation");
        assert_eq!(view["plans"][1]["activation_window_days"], 14);
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
}
