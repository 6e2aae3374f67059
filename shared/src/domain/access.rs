//! What an org may use now, from its trial: the answer of `GET /v1/access` and
//! `GET /v1/access/{feature}`. Pure: the caller reads the trial (settled at `now`) and this
//! module decides.
//!
//! **Where access comes from** ([`Source::of`], the one mapping from a trial's state to a
//! source): an ACTIVE trial gives its plan's options with their trial limits (`trial`, until its
//! end); a CONVERTED trial gives the plan it converted to (`subscription`, until the
//! subscription's `current_period_end` once Stripe said it: the paid plan's limits are the
//! billing system's, so options are allowed with no trial limit left to count) while its Stripe
//! subscription has not ended (a `canceled` or `incomplete_expired` subscription, or a lapsed
//! conversion, gives `none`); a DOWNGRADED trial (a reverse trial past its end) gives its free
//! plan's options with the use carried over (`free`, no `until`); a PAUSED, EXPIRED or CANCELED trial, or none, gives nothing
//! (`none`). A paused trial's clock
//! and usage are frozen (usage answers `trial_not_active`), so its features are not in use
//! either. A PENDING trial gives its options as an ACTIVE one does (`trial`, `until` null: its
//! clock starts with the first usage). Cost: none beyond the read of the trial.
use serde_json::{json, Value};

use super::state_machine::{self, TrialStatus};
use super::time::rfc3339;
use super::trial::{Trial, TrialPolicy};

/// Where an org's access comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Trial,
    Subscription,
    Free,
    None,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Trial => "trial",
            Source::Subscription => "subscription",
            Source::Free => "free",
            Source::None => "none",
        }
    }

    /// **The mapping**: what `trial` gives at `now`. A CONVERTED trial follows its Stripe
    /// subscription (as the webhook stores it): it gives access until the subscription ends or
    /// the conversion lapses. Before any subscription event arrived, the conversion itself
    /// (a completed, paid or card-only checkout) gives it.
    pub fn of(trial: &Trial, now: i64, policy: TrialPolicy) -> Source {
        match trial.lifecycle(policy).status_at(now) {
            // A PENDING trial's features are the trial's: the first usage starts its clock.
            TrialStatus::Active | TrialStatus::Pending => Source::Trial,
            TrialStatus::Converted if subscription_ended(trial) => Source::None,
            TrialStatus::Converted => Source::Subscription,
            // A reverse trial past its end: its free plan, with its limits, for good.
            TrialStatus::Downgraded => Source::Free,
            TrialStatus::Paused | TrialStatus::Expired | TrialStatus::Canceled => Source::None,
        }
    }

    /// Whether this source lets the org use its plan's features at all.
    fn grants(self) -> bool {
        !matches!(self, Source::None)
    }

    /// Whether the trial's limits still count under this source (a paid plan's do not).
    fn limits_count(self) -> bool {
        matches!(self, Source::Trial | Source::Free)
    }
}

/// Whether the trial's subscription ended or its conversion lapsed.
fn subscription_ended(trial: &Trial) -> bool {
    trial.subscription.as_ref().is_some_and(|s| {
        s.lapsed_at.is_some()
            || s.status
                .as_deref()
                .is_some_and(state_machine::subscription_ended)
    })
}

/// One option of the plan, as the org may use it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureAccess {
    pub feature: String,
    pub value: i64,
    pub used: i64,
    /// What is left of a counted limit; `None` for an option that is not a limit, or whose
    /// limit no longer counts (a subscription).
    pub remaining: Option<i64>,
    pub allowed: bool,
}

/// The org's access to one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub plan: Option<String>,
    pub source: Source,
    pub until: Option<i64>,
    pub options: Vec<FeatureAccess>,
}

impl Access {
    /// No trial (or none the caller may see, or of another product).
    pub fn none() -> Access {
        Access {
            plan: None,
            source: Source::None,
            until: None,
            options: Vec::new(),
        }
    }

    /// What `trial` gives at `now` (settle the trial first: `Trial::settled_at`).
    pub fn of(trial: &Trial, now: i64) -> Access {
        let policy = trial.policy();
        let source = Source::of(trial, now, policy);
        if !source.grants() {
            return Access::none();
        }
        let options = trial
            .terms
            .options
            .iter()
            .map(|o| {
                let used = trial
                    .used
                    .get(&o.internal_name)
                    .copied()
                    .unwrap_or(0)
                    .max(0);
                let remaining = (o.is_limit && source.limits_count())
                    .then(|| o.value.saturating_sub(used).max(0));
                FeatureAccess {
                    feature: o.feature.id.clone(),
                    value: o.value,
                    used,
                    remaining,
                    allowed: remaining.is_none_or(|left| left > 0),
                }
            })
            .collect();
        Access {
            plan: Some(trial.plan.as_str().to_owned()),
            source,
            until: match source {
                // Not activated: no end yet (its `expires_at` is the activation deadline).
                Source::Trial => Some(trial.expires_at).filter(|_| trial.activate_by.is_none()),
                Source::Free => None,
                _ => trial
                    .subscription
                    .as_ref()
                    .and_then(|s| s.current_period_end),
            },
            options,
        }
    }

    /// The body of `GET /v1/access`.
    pub fn view(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .map(|o| {
                json!({
                    "feature": o.feature,
                    "value": o.value,
                    "used": o.used,
                    "remaining": o.remaining,
                    "allowed": o.allowed,
                })
            })
            .collect();
        json!({
            "plan": self.plan,
            "source": self.source.as_str(),
            "until": self.until.map(rfc3339),
            "options": options,
        })
    }

    /// The body of `GET /v1/access/{feature}`: allowed when the plan has the feature and every
    /// option of it is allowed; `remaining` the least of their counted limits (`null` when none
    /// counts). A feature the plan does not have is not allowed.
    pub fn feature_view(&self, feature: &str) -> Value {
        let options: Vec<&FeatureAccess> = self
            .options
            .iter()
            .filter(|o| o.feature == feature)
            .collect();
        let allowed = !options.is_empty() && options.iter().all(|o| o.allowed);
        let remaining = options.iter().filter_map(|o| o.remaining).min();
        json!({ "allowed": allowed, "remaining": remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use crate::domain::trial::Subscription;
    use crate::domain::{OrgId, TrialId};

    const CATALOG: &str = r#"{"plans": [{
        "id": "metered", "name": "Metered",
        "product": { "id": "app", "name": "App", "internal_name": "app" },
        "trial_length": "7d", "grace_period": "3d",
        "options": [
            { "internal_name": "api_calls", "name": "API calls", "description": "d",
              "unit": { "id": "call", "name": "Calls", "internal_name": "call" },
              "value": 10, "is_limit": true, "feature": { "id": "api", "name": "API" } },
            { "internal_name": "sso", "name": "SSO", "description": "d",
              "unit": { "id": "seat", "name": "Seats", "internal_name": "seat" },
              "value": 1, "is_limit": false, "feature": { "id": "sso", "name": "SSO" } }
        ]
    }]}"#;

    fn trial() -> Trial {
        let catalog = Catalog::from_json(CATALOG).unwrap();
        let mut trial = Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            0,
            catalog.get("metered").unwrap().snapshot(),
        );
        trial.used.insert("api_calls".into(), 10);
        trial
    }

    #[test]
    fn an_active_trial_gives_its_options_with_the_limits_left() {
        let access = Access::of(&trial(), 1);
        assert_eq!(access.source, Source::Trial);
        assert_eq!(access.until, Some(7 * 86_400));
        let view = access.view();
        assert_eq!(view["options"][0]["remaining"], 0);
        assert_eq!(view["options"][0]["allowed"], false);
        assert_eq!(view["options"][1]["remaining"], Value::Null);
        assert_eq!(view["options"][1]["allowed"], true);
        assert_eq!(
            access.feature_view("api"),
            json!({"allowed": false, "remaining": 0})
        );
        assert_eq!(
            access.feature_view("sso"),
            json!({"allowed": true, "remaining": null})
        );
        assert_eq!(
            access.feature_view("nope"),
            json!({"allowed": false, "remaining": null})
        );
    }

    #[test]
    fn a_lapsed_paused_or_canceled_trial_gives_nothing_and_a_converted_one_a_subscription() {
        let t = trial();
        assert_eq!(Access::of(&t, t.expires_at), Access::none());
        for status in [
            TrialStatus::Paused,
            TrialStatus::Canceled,
            TrialStatus::Expired,
        ] {
            let stopped = Trial {
                status,
                ..t.clone()
            };
            assert_eq!(Access::of(&stopped, 1), Access::none(), "{status:?}");
        }
        let converted = Trial {
            status: TrialStatus::Converted,
            ..t
        };
        let access = Access::of(&converted, converted.expires_at + 1);
        assert_eq!(access.source, Source::Subscription);
        assert_eq!(access.until, None);
        assert!(access
            .options
            .iter()
            .all(|o| o.allowed && o.remaining.is_none()));
    }

    #[test]
    fn a_converted_trial_follows_its_subscription() {
        let subscription = Subscription {
            id: "sub_1".into(),
            status: Some("active".into()),
            current_period_end: Some(40 * 86_400),
            first_paid_at: Some(8 * 86_400),
            lapsed_at: None,
        };
        let converted = Trial {
            status: TrialStatus::Converted,
            subscription: Some(subscription.clone()),
            ..trial()
        };
        let access = Access::of(&converted, 9 * 86_400);
        assert_eq!(access.source, Source::Subscription);
        assert_eq!(access.until, Some(40 * 86_400));
        for ended in [
            Subscription {
                status: Some("canceled".into()),
                ..subscription.clone()
            },
            Subscription {
                status: Some("incomplete_expired".into()),
                ..subscription.clone()
            },
            Subscription {
                lapsed_at: Some(9 * 86_400),
                first_paid_at: None,
                ..subscription.clone()
            },
        ] {
            let t = Trial {
                subscription: Some(ended.clone()),
                ..converted.clone()
            };
            assert_eq!(Access::of(&t, 9 * 86_400), Access::none(), "{ended:?}");
        }
        let past_due = Trial {
            subscription: Some(Subscription {
                status: Some("past_due".into()),
                ..subscription
            }),
            ..converted
        };
        assert_eq!(
            Access::of(&past_due, 9 * 86_400).source,
            Source::Subscription
        );
    }
}
