use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::catalog::{options_view, TrialTerms};
use super::state_machine::{Lifecycle, TrialStatus};
use super::time::rfc3339;
use super::{OrgId, Plan, TrialId};

const DAY_SECS: i64 = 86_400;

/// Trial length and grace period: a trial's own, from the terms it started with
/// ([`Trial::policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialPolicy {
    pub length_secs: i64,
    pub grace_secs: i64,
}

impl Default for TrialPolicy {
    fn default() -> Self {
        TrialPolicy {
            length_secs: 7 * DAY_SECS,
            grace_secs: 3 * DAY_SECS,
        }
    }
}

/// A Stripe Checkout Session opened for a trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub session_id: String,
    pub url: String,
    pub expires_at: i64,
}

/// A payment Stripe reported as on its way (a bank debit: SEPA, ACH, Bacs take days): the
/// session completed unpaid, and `async_payment_succeeded` or `_failed` follows. While it is
/// pending, the trial is not purged and convert answers this session instead of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPayment {
    pub session_id: String,
    pub since: i64,
}

/// What a Checkout Session must match to pay for a trial: the trial, org and plan that convert
/// wrote into its metadata (only the merchant sets metadata; a Payment Link's buyer can put
/// anything in `client_reference_id`, nothing in metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBinding {
    pub trial_id: TrialId,
    pub org_id: OrgId,
    pub plan: Plan,
}

/// What Stripe told us when the payment completed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payment {
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub id: TrialId,
    pub org_id: OrgId,
    pub plan: Plan,
    pub status: TrialStatus,
    pub started_at: i64,
    pub expires_at: i64,
    pub canceled_at: Option<i64>,
    pub converted_at: Option<i64>,
    pub checkout: Option<Checkout>,
    pub pending: Option<PendingPayment>,
    pub payment: Option<Payment>,
    /// The plan's terms when the trial started (length, grace, options): editing the catalog
    /// never changes a running trial.
    pub terms: TrialTerms,
    /// Usage recorded against each limited option, by internal name (absent: 0).
    pub used: BTreeMap<String, i64>,
    /// Why an EXPIRED trial ended before its time (`limit_reached`); `None` otherwise.
    pub expiry_reason: Option<String>,
}

/// `expiry_reason` of a trial an `ends_trial` limit ended.
pub const EXPIRY_LIMIT_REACHED: &str = "limit_reached";

impl Trial {
    /// A new ACTIVE trial of `terms.plan`, on those terms.
    pub fn start(id: TrialId, org_id: OrgId, now: i64, terms: TrialTerms) -> Trial {
        Trial {
            id,
            org_id,
            plan: terms.plan.clone(),
            status: TrialStatus::Active,
            started_at: now,
            expires_at: now + terms.trial_length_secs,
            canceled_at: None,
            converted_at: None,
            checkout: None,
            pending: None,
            payment: None,
            terms,
            used: BTreeMap::new(),
            expiry_reason: None,
        }
    }

    /// The trial's own length and grace, from its terms.
    pub fn policy(&self) -> TrialPolicy {
        TrialPolicy {
            length_secs: self.terms.trial_length_secs,
            grace_secs: self.terms.grace_secs,
        }
    }

    /// Gcore's `remaining_duration`: whole seconds until the trial ends, `None` unless it is
    /// ACTIVE at `now`.
    pub fn remaining_duration(&self, now: i64) -> Option<i64> {
        (self.lifecycle(self.policy()).status_at(now) == TrialStatus::Active)
            .then(|| (self.expires_at - now).max(0))
    }

    /// Gcore's `active_ranges`: the periods the trial ran or runs; today one, start to expiry.
    pub fn active_ranges(&self) -> Value {
        json!([{ "start": rfc3339(self.started_at), "end": rfc3339(self.expires_at) }])
    }

    /// Gcore's `options`, with this trial's usage.
    pub fn options_view(&self) -> Value {
        let used: HashMap<String, i64> = self.used.clone().into_iter().collect();
        options_view(&self.terms, &used)
    }

    /// The body of `GET /v1/trials/{id}/data`: Gcore's trial data, with Gcore's names and JSON
    /// types (our ids are strings where Gcore's are integers). `company_name` is the
    /// applicant's, once trials record one; `is_trial_skipped` is false until skipping exists.
    pub fn data_view(&self, now: i64, company_name: Option<&str>, skipped: bool) -> Value {
        json!({
            "id": self.id.as_str(),
            "client_id": self.org_id.as_str(),
            "client": { "id": self.org_id.as_str(), "company_name": company_name },
            "product": {
                "id": self.terms.product.id,
                "name": self.terms.product.name,
                "internal_name": self.terms.product.internal_name,
            },
            "plan": { "id": self.plan.as_str(), "name": self.terms.name },
            "days_limit": self.terms.days_limit(),
            "active_ranges": self.active_ranges(),
            "created_at": rfc3339(self.started_at),
            "options": self.options_view(),
            "remaining_duration": self.remaining_duration(now),
            "is_trial_skipped": skipped,
        })
    }

    pub fn lifecycle(&self, policy: TrialPolicy) -> Lifecycle {
        Lifecycle {
            status: self.status,
            expires_at: self.expires_at,
            canceled_at: self.canceled_at,
            grace_secs: policy.grace_secs,
        }
    }

    /// Whole days left, rounded up; 0 unless the trial is ACTIVE at `now`.
    pub fn days_remaining(&self, now: i64) -> i64 {
        if self.status != TrialStatus::Active || now >= self.expires_at {
            return 0;
        }
        (self.expires_at - now + DAY_SECS - 1) / DAY_SECS
    }

    /// The open checkout session, if Stripe still accepts it at `now`.
    pub fn open_checkout(&self, now: i64) -> Option<&Checkout> {
        self.checkout.as_ref().filter(|c| now < c.expires_at)
    }

    /// The body of `POST /v1/trials/start`: exactly the fields of the API reference.
    pub fn started_view(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "plan": self.plan.as_str(),
            "status": self.status.as_str(),
            "started_at": rfc3339(self.started_at),
            "expires_at": rfc3339(self.expires_at),
            "org_id": self.org_id.as_str(),
        })
    }

    /// The body of `GET /v1/trials/{id}` and of cancel: the status as of `now`, plus what
    /// happened to the trial since it started.
    pub fn view_at(&self, now: i64, policy: TrialPolicy) -> Value {
        let mut view = match self.started_view() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let status = self.lifecycle(policy).status_at(now);
        view.insert("status".into(), status.as_str().into());
        view.insert("days_remaining".into(), self.days_remaining(now).into());
        if let Some(at) = self.canceled_at {
            view.insert("canceled_at".into(), rfc3339(at).into());
        }
        if let Some(at) = self.converted_at {
            view.insert("converted_at".into(), rfc3339(at).into());
        }
        if status == TrialStatus::Expired {
            view.insert(
                "grace_period_ends_at".into(),
                rfc3339(self.expires_at + policy.grace_secs).into(),
            );
        }
        // Gcore's fields that do not clash with this shape (`plan` stays a string).
        view.insert("days_limit".into(), self.terms.days_limit().into());
        view.insert(
            "remaining_duration".into(),
            self.remaining_duration(now).into(),
        );
        view.insert("active_ranges".into(), self.active_ranges());
        view.insert("options".into(), self.options_view());
        if let Some(reason) = &self.expiry_reason {
            view.insert("expiry_reason".into(), reason.as_str().into());
        }
        Value::Object(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;

    fn trial(now: i64) -> Trial {
        Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            now,
            Catalog::builtin().get("growth").unwrap().snapshot(),
        )
    }

    #[test]
    fn days_remaining_rounds_up_and_is_zero_when_not_active() {
        let t = trial(0);
        assert_eq!(t.days_remaining(0), 7);
        assert_eq!(t.days_remaining(1), 7);
        assert_eq!(t.days_remaining(DAY_SECS), 6);
        assert_eq!(t.days_remaining(7 * DAY_SECS - 1), 1);
        assert_eq!(t.days_remaining(7 * DAY_SECS), 0);
        let canceled = Trial {
            status: TrialStatus::Canceled,
            ..t
        };
        assert_eq!(canceled.days_remaining(0), 0);
    }

    #[test]
    fn view_reports_expired_once_the_clock_passes_expires_at() {
        let t = trial(1_775_469_600);
        let policy = TrialPolicy::default();
        let before = t.view_at(t.expires_at - 1, policy);
        assert_eq!(before["status"], "ACTIVE");
        assert_eq!(before["days_remaining"], 1);
        let after = t.view_at(t.expires_at, policy);
        assert_eq!(after["status"], "EXPIRED");
        assert_eq!(after["days_remaining"], 0);
        assert_eq!(after["expires_at"], "2026-04-13T10:00:00Z");
        assert_eq!(after["grace_period_ends_at"], "2026-04-16T10:00:00Z");
    }
}
