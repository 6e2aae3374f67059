//! A plan change during a trial (`POST /v1/trials/{id}/change-plan`, and convert with another
//! `plan`): the trial takes the new plan's terms (options, limits, length, grace, pause
//! maximum, reminders) re-snapshotted from the catalog, keeps what it used, and keeps its end
//! unless the new plan is longer. Pure: the caller reads the trial and writes the result on
//! condition that the trial is still what it read (`Store::plan_change_update`).
//!
//! **The end**: a plan with a longer trial length adds the difference to the end (to the
//! current range of an ACTIVE trial; to the time left of a PAUSED one), within the new plan's
//! maximum total trial length; a plan with the same or a shorter length keeps the end: the time
//! already promised is not taken away.
//!
//! **Limits**: an option of the new plan that is a limit and whose use so far is above its new
//! value refuses the change (`usage_exceeds_new_plan`) unless it is forced (admin keys); a
//! forced change keeps the use as it is (nothing left of that limit: the next usage of it is
//! refused). The trial stays ACTIVE even where an `ends_trial` limit is already used up.
//!
//! **An open checkout holds the plan**: while a Checkout Session for the current plan is still
//! payable, or its payment is on its way, the change is refused (`checkout_open`): the webhook
//! converts a trial only for the plan its session was made for, so a change would turn that
//! payment away.
use super::active_ranges::total_active_secs;
use super::catalog::{PlanOption, TrialTerms};
use super::state_machine::{Action, TransitionError, TrialStatus};
use super::trial::Trial;
use super::ErrorCode;

/// Why a plan change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanChangeRefusal {
    /// The state machine's answer for [`Action::ChangePlan`].
    Transition(TransitionError),
    /// 422 `invalid_plan_change`: the trial is already on the plan.
    SamePlan,
    /// 422 `invalid_plan_change`: the plan is another product's.
    OtherProduct,
    /// 409 `checkout_open`: a Checkout Session for the current plan is still payable, or its
    /// payment is on its way: the payment converts only the plan it was made for, so the plan
    /// stays until that session ends.
    CheckoutOpen { session_id: String },
    /// 409 `usage_exceeds_new_plan`: `used` of `option` is above the new plan's `value`.
    UsageExceeds {
        option: String,
        used: i64,
        value: i64,
    },
}

impl PlanChangeRefusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanChangeRefusal::Transition(e) => e.code(),
            PlanChangeRefusal::SamePlan | PlanChangeRefusal::OtherProduct => {
                ErrorCode::InvalidPlanChange
            }
            PlanChangeRefusal::CheckoutOpen { .. } => ErrorCode::CheckoutOpen,
            PlanChangeRefusal::UsageExceeds { .. } => ErrorCode::UsageExceedsNewPlan,
        }
    }

    pub fn message(&self) -> String {
        match self {
            PlanChangeRefusal::Transition(e) => e.message().to_owned(),
            PlanChangeRefusal::SamePlan => "The trial is already on this plan".to_owned(),
            PlanChangeRefusal::OtherProduct => {
                "A trial can only change to a plan of its own product".to_owned()
            }
            PlanChangeRefusal::CheckoutOpen { session_id } => format!(
                "A checkout for the current plan is open or being paid (checkout_session_id \
                 {session_id}); change the plan once it has expired or failed"
            ),
            PlanChangeRefusal::UsageExceeds {
                option,
                used,
                value,
            } => format!(
                "{option}: {used} used, more than the new plan's {value}; an admin key may force the change"
            ),
        }
    }
}

/// The first limit of `to` that `trial`'s use so far is above.
pub fn exceeded_limit<'a>(trial: &Trial, to: &'a TrialTerms) -> Option<(&'a PlanOption, i64)> {
    to.options.iter().filter(|o| o.is_limit).find_map(|o| {
        let used = trial.used.get(&o.internal_name).copied().unwrap_or(0);
        (used > o.value).then_some((o, used))
    })
}

/// `trial` on the plan whose terms are `to` (a trialable plan of the catalog), at `now`; a
/// payment on its way counts while younger than `pending_max_age_secs`.
pub fn change_plan(
    trial: &Trial,
    to: &TrialTerms,
    force: bool,
    now: i64,
    pending_max_age_secs: i64,
) -> Result<Trial, PlanChangeRefusal> {
    trial
        .lifecycle(trial.policy())
        .check(Action::ChangePlan, now)
        .map_err(PlanChangeRefusal::Transition)?;
    if to.plan == trial.plan {
        return Err(PlanChangeRefusal::SamePlan);
    }
    if to.product.id != trial.terms.product.id {
        return Err(PlanChangeRefusal::OtherProduct);
    }
    let pending = trial
        .pending_at(now, pending_max_age_secs)
        .map(|p| &p.session_id);
    if let Some(session_id) = pending.or(trial.open_checkout(now).map(|c| &c.session_id)) {
        return Err(PlanChangeRefusal::CheckoutOpen {
            session_id: session_id.clone(),
        });
    }
    if let Some((option, used)) = exceeded_limit(trial, to).filter(|_| !force) {
        return Err(PlanChangeRefusal::UsageExceeds {
            option: option.internal_name.clone(),
            used,
            value: option.value,
        });
    }
    let mut after = trial.clone();
    after.active_ranges = trial.ranges();
    let paused = trial.status == TrialStatus::Paused;
    // The active time the trial has with its end as it is (a paused one: its ranges and the
    // time it has left).
    let planned = total_active_secs(&after.active_ranges)
        + if paused {
            trial.remaining_duration(now).unwrap_or(0)
        } else {
            0
        };
    let longer = (to.trial_length_secs - trial.terms.trial_length_secs).max(0);
    let added = longer.min((to.max_total_trial_secs - planned).max(0));
    after.expires_at += added;
    if !paused {
        if let Some(current) = after.active_ranges.last_mut() {
            current.end = after.expires_at;
        }
    }
    after.plan = to.plan.clone();
    after.terms = to.clone();
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use crate::domain::{OrgId, TrialId};

    const DAY: i64 = 86_400;

    fn catalog() -> Catalog {
        Catalog::from_json(include_str!("../../../examples/plans-enterprise.json")).unwrap()
    }

    fn trial(plan: &str) -> Trial {
        Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            0,
            catalog().get(plan).unwrap().snapshot(),
        )
    }

    #[test]
    fn a_longer_plan_adds_the_difference_and_a_shorter_one_keeps_the_end() {
        let growth = trial("growth");
        let enterprise = catalog().get("enterprise").unwrap().snapshot();
        let up = change_plan(&growth, &enterprise, false, DAY, DAY).unwrap();
        assert_eq!(up.expires_at, 14 * DAY);
        assert_eq!(up.active_ranges.last().unwrap().end, 14 * DAY);
        assert_eq!(up.plan.as_str(), "enterprise");
        let back = change_plan(
            &up,
            &catalog().get("pro").unwrap().snapshot(),
            false,
            DAY,
            DAY,
        );
        assert_eq!(back.unwrap().expires_at, 14 * DAY);
        // Paused: the time left grows, the closed ranges stay.
        let paused = growth.pause(DAY, growth.policy()).unwrap();
        let up = change_plan(&paused, &enterprise, false, 2 * DAY, DAY).unwrap();
        assert_eq!(up.expires_at, 14 * DAY);
        assert_eq!(up.active_ranges, paused.active_ranges);
        assert_eq!(up.remaining_duration(2 * DAY), Some(13 * DAY));
    }

    #[test]
    fn refusals() {
        let mut enterprise = trial("enterprise");
        enterprise.used.insert("api_calls".into(), 100);
        let growth = catalog().get("growth").unwrap().snapshot();
        // Growth has no limits: nothing exceeded.
        assert!(change_plan(&enterprise, &growth, false, DAY, DAY).is_ok());
        let mut smaller = catalog().get("enterprise").unwrap().snapshot();
        smaller.plan = growth.plan.clone();
        smaller.options[0].value = 50;
        assert_eq!(
            change_plan(&enterprise, &smaller, false, DAY, DAY),
            Err(PlanChangeRefusal::UsageExceeds {
                option: "api_calls".into(),
                used: 100,
                value: 50
            })
        );
        let forced = change_plan(&enterprise, &smaller, true, DAY, DAY).unwrap();
        let mut paying = enterprise.clone();
        paying.checkout = Some(crate::domain::trial::Checkout {
            session_id: "cs_1".into(),
            url: "https://checkout.stripe.com/c/pay/cs_1".into(),
            expires_at: 2 * DAY,
            trial_end: None,
        });
        assert_eq!(
            change_plan(&paying, &growth, false, DAY, DAY),
            Err(PlanChangeRefusal::CheckoutOpen {
                session_id: "cs_1".into()
            })
        );
        // Once Stripe no longer takes it, the plan may change.
        assert!(change_plan(&paying, &growth, false, 2 * DAY, DAY).is_ok());
        assert_eq!(forced.used["api_calls"], 100);
        let same = catalog().get("enterprise").unwrap().snapshot();
        assert_eq!(
            change_plan(&enterprise, &same, false, DAY, DAY),
            Err(PlanChangeRefusal::SamePlan)
        );
        let mut other = growth.clone();
        other.product.id = "other".into();
        assert_eq!(
            change_plan(&enterprise, &other, false, DAY, DAY),
            Err(PlanChangeRefusal::OtherProduct)
        );
        assert_eq!(
            change_plan(&enterprise, &growth, false, 14 * DAY, DAY),
            Err(PlanChangeRefusal::Transition(
                TransitionError::AlreadyExpired
            ))
        );
    }
}
