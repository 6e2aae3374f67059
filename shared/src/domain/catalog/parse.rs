//! The catalog file format: strict JSON (unknown fields refused), unlike the stored snapshot.
//! A parse error names the plan (by id when it can be read, else by position) and the field.
use serde::Deserialize;
use serde_json::Value;

use super::{CatalogError, PlanRef, PLAN_ID_MAX};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogFile {
    pub(super) plans: Vec<PlanFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanFile {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) product: ProductFile,
    pub(super) trial_length: String,
    pub(super) grace_period: String,
    #[serde(default = "yes")]
    pub(super) trialable: bool,
    #[serde(default)]
    pub(super) stripe_price: Option<String>,
    #[serde(default)]
    pub(super) max_total_trial_length: Option<String>,
    #[serde(default)]
    pub(super) pause_max: Option<String>,
    #[serde(default)]
    pub(super) reminder_offsets: Option<Vec<String>>,
    #[serde(default)]
    pub(super) options: Vec<OptionFile>,
    #[serde(default)]
    pub(super) starts: Option<String>,
    #[serde(default)]
    pub(super) activation_window: Option<String>,
    /// `"expire"` (the default) or `"downgrade"` (a reverse trial: with `downgrade_to`).
    #[serde(default)]
    pub(super) end_behavior: Option<String>,
    /// The free plan a `"downgrade"` trial ends on.
    #[serde(default)]
    pub(super) downgrade_to: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductFile {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) internal_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnitFile {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) internal_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeatureFile {
    pub(super) id: String,
    pub(super) name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OptionFile {
    pub(super) internal_name: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) unit: UnitFile,
    pub(super) value: i64,
    #[serde(default)]
    pub(super) is_limit: bool,
    pub(super) feature: FeatureFile,
    #[serde(default)]
    pub(super) ends_trial: bool,
}

/// serde with the path of the failing field, turned into one line naming the plan.
pub(super) fn parse_file(source: &str, text: &str) -> Result<CatalogFile, CatalogError> {
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

/// An id of lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most
/// `max` bytes: what plan, product and option ids are (read here, checked in validation).
pub(super) fn is_slug(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    (1..=max).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}
