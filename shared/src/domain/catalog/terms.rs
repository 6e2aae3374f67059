//! What a trial keeps of its plan ([`TrialTerms`], a snapshot stored on the trial item) and the
//! JSON views of terms: a trial's `options` with their usage, and `GET /v1/plans`.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{
    Catalog, PlanId, PlanOption, Product, DAY_SECS, DEFAULT_MAX_TOTAL_TRIAL_SECS,
    DEFAULT_PAUSE_MAX_SECS, DEFAULT_REMINDER_OFFSETS_SECS,
};

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
    /// A reverse trial: the free plan's terms (options, limits) it takes at its end, snapshotted
    /// with the trialled plan's; absent (`None`) for a trial that expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_to: Option<Box<TrialTerms>>,
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
                "starts": p.starts.as_str(),
                "activation_window_days": ceil_days(p.activation_window_secs),
                "options": options,
                // How the trial ends: it expires, or (a reverse trial) drops to a free plan.
                "end_behavior": end_behavior(p.downgrade_to.as_deref()),
                "downgrade_to": p.downgrade_to.as_ref().map(|to| to.plan.as_str()),
            })
        })
        .collect();
    json!({ "plans": plans })
}

/// A plan's `end_behavior` as the catalog file and `GET /v1/plans` spell it.
pub fn end_behavior(downgrade_to: Option<&TrialTerms>) -> &'static str {
    match downgrade_to {
        Some(_) => END_DOWNGRADE,
        None => END_EXPIRE,
    }
}

/// `end_behavior` of a plan whose trials expire (the default).
pub const END_EXPIRE: &str = "expire";
/// `end_behavior` of a reverse trial's plan: its trials drop to `downgrade_to`.
pub const END_DOWNGRADE: &str = "downgrade";

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::super::validate::tests::{base, parse};
    use super::*;

    const EXAMPLE_JSON: &str = include_str!("../../../../examples/plans-enterprise.json");

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
                "starts": "on_start",
                "activation_window_days": 30,
                "options": [],
                "end_behavior": "expire",
                "downgrade_to": null
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
        // The reverse trial's plan names its free plan, which is not listed (not trialable).
        let reverse = &view["plans"][5];
        assert_eq!(
            (
                &reverse["id"],
                &reverse["end_behavior"],
                &reverse["downgrade_to"]
            ),
            (&json!("pro-reverse"), &json!("downgrade"), &json!("free"))
        );
        assert_eq!(view["plans"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn a_reverse_trials_terms_carry_its_free_plans_and_round_trip() {
        let catalog = Catalog::from_json(EXAMPLE_JSON).unwrap();
        let terms = catalog.get("pro-reverse").unwrap().snapshot();
        let free = terms
            .downgrade_to
            .as_deref()
            .expect("the free plan's terms");
        assert_eq!(free, &catalog.get("free").unwrap().snapshot());
        assert_eq!(free.option("api_calls").map(|o| o.value), Some(100));
        assert_eq!(TrialTerms::from_json(&terms.to_json()).unwrap(), terms);
        // A plan that expires stores no `downgrade_to` at all (older readers see the old shape).
        let expiring = catalog.get("enterprise").unwrap().snapshot().to_json();
        assert!(!expiring.contains("downgrade_to"), "{expiring}");
    }
}
