//! The state machine's tables as DynamoDB conditions: [`state_condition`] turns the allowed
//! cells of one row (`domain::state_machine`, [`Action::rule`] or [`Job::window`]) into the
//! condition fragment a write carries, so DynamoDB re-checks the rule itself at the moment of
//! the write. The store's transition writes compose it with what is not the state machine
//! (org ownership, session binding, one open session, a payment on its way).
//!
//! Each phase is a test on the stored item: `#status` (the caller names it) plus, for ACTIVE
//! and PENDING (whose `expires_at` is its activation deadline), its clock (`expires_at`
//! against `now`: ACTIVE or PENDING while later, EXPIRED to callers from then).
//! Each window adds its clause against `now - grace`. A stored status whose phases are all
//! allowed at any time is one `#status IN (...)` test. The fragment's values are named
//! `:sm_*`, so they never meet a caller's. Cost: none beyond the write it rides on.
//!
//! [`Action::rule`]: crate::domain::state_machine::Action::rule
//! [`Job::window`]: crate::domain::state_machine::Job::window
use super::codec::{n, s, Item, Values};
use crate::domain::state_machine::{Phase, Transition, Window};
use crate::domain::TrialStatus;

/// A condition fragment on the `#status` attribute name (the caller binds `#status` to
/// `status`) and the values it uses.
#[derive(Debug, Clone, PartialEq)]
pub struct StateCondition {
    expression: String,
    values: Item,
}

impl StateCondition {
    /// The fragment: safe to join with `AND` (an `OR` in it is in parentheses).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// `values` with the fragment's own added.
    pub fn add_values(&self, values: Values) -> Values {
        values.extend(self.values.clone())
    }
}

/// Where `transition` is allowed (or due) at `now`, for a trial whose grace is `grace_secs`.
pub fn state_condition(
    transition: impl Into<Transition>,
    now: i64,
    grace_secs: i64,
) -> StateCondition {
    state_condition_where(transition, now, grace_secs, |_| true)
}

/// [`state_condition`] over the phases `keep` selects only: for a write that splits one row
/// in two (a payment for a CANCELED trial is written apart, flagged for review).
pub fn state_condition_where(
    transition: impl Into<Transition>,
    now: i64,
    grace_secs: i64,
    keep: impl Fn(Phase) -> bool,
) -> StateCondition {
    let transition = transition.into();
    let allowed = |phase: Phase| transition.window(phase).filter(|_| keep(phase));
    let mut values = Item::new();
    let mut plain = Vec::new();
    let mut qualified = Vec::new();
    for status in TrialStatus::ALL {
        let phases = Phase::ALL.into_iter().filter(|p| p.stored() == status);
        let cells: Vec<(Phase, Option<Window>)> = phases.map(|p| (p, allowed(p))).collect();
        if cells.iter().all(|(_, w)| w.is_none()) {
            continue;
        }
        let placeholder = format!(":sm_{}", status.as_str().to_lowercase());
        values.insert(placeholder.clone(), s(status.as_str()));
        if cells.iter().all(|(_, w)| *w == Some(Window::Always)) {
            plain.push(placeholder);
            continue;
        }
        for (phase, window) in cells {
            let Some(window) = window else { continue };
            let mut clauses = vec![format!("#status = {placeholder}")];
            clauses.extend(clock_clause(phase).map(|c| c.to_owned()));
            clauses.extend(window_clause(window).map(|c| c.to_owned()));
            qualified.push(clauses.join(" AND "));
        }
    }
    let mut parts = Vec::new();
    match plain.as_slice() {
        [] => {}
        [one] => parts.push(format!("#status = {one}")),
        many => parts.push(format!("#status IN ({})", many.join(", "))),
    }
    parts.extend(qualified);
    // DynamoDB refuses redundant parentheses: a lone part (comparisons joined by AND) goes
    // bare, several are one parenthesised OR whose AND groups keep theirs.
    let expression = match parts.as_slice() {
        // Allowed nowhere: a condition no item meets.
        [] => "attribute_exists(#status) AND attribute_not_exists(#status)".to_owned(),
        [one] => one.clone(),
        many => {
            let grouped: Vec<String> = many
                .iter()
                .map(|p| {
                    if p.contains(" AND ") {
                        format!("({p})")
                    } else {
                        p.clone()
                    }
                })
                .collect();
            format!("({})", grouped.join(" OR "))
        }
    };
    if expression.contains(":sm_now") {
        values.insert(":sm_now".into(), n(now));
    }
    if expression.contains(":sm_cutoff") {
        values.insert(":sm_cutoff".into(), n(now - grace_secs));
    }
    StateCondition { expression, values }
}

/// The clock part of a phase: `now < expires_at` is ACTIVE, from `expires_at` on it has lapsed
/// (EXPIRED), or, on an item that carries `downgrade_to` (a reverse trial's, written at its
/// start and by a plan change), it is ending (DOWNGRADED).
fn clock_clause(phase: Phase) -> Option<&'static str> {
    match phase {
        Phase::Active | Phase::Pending => Some("expires_at > :sm_now"),
        // A PENDING trial past its activation deadline lapses whatever its plan's ending.
        Phase::PendingLapsed => Some("expires_at <= :sm_now"),
        Phase::Lapsed => Some("expires_at <= :sm_now AND attribute_not_exists(downgrade_to)"),
        Phase::Ending => Some("expires_at <= :sm_now AND attribute_exists(downgrade_to)"),
        _ => None,
    }
}

/// A window against `:sm_cutoff = now - grace` (`now < expires_at + grace` is
/// `expires_at > now - grace`).
fn window_clause(window: Window) -> Option<&'static str> {
    match window {
        Window::Always => None,
        Window::UntilGraceEnds => Some("expires_at > :sm_cutoff"),
        Window::AfterGrace => Some("expires_at <= :sm_cutoff"),
        Window::AfterCancelGrace => Some("canceled_at <= :sm_cutoff"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state_machine::{Action, Job};

    fn values(c: &StateCondition) -> Vec<String> {
        let mut names: Vec<String> = c.values.keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn cancel_is_a_running_active_trial_or_a_paused_one_or_a_pending_one() {
        let c = state_condition(Action::Cancel, 100, 10);
        assert_eq!(
            c.expression(),
            "(#status = :sm_paused OR (#status = :sm_active AND expires_at > :sm_now) \
             OR (#status = :sm_pending AND expires_at > :sm_now))"
        );
        assert_eq!(
            values(&c),
            [":sm_active", ":sm_now", ":sm_paused", ":sm_pending"]
        );
    }

    #[test]
    fn a_row_without_a_time_qualifier_is_one_in_test_with_no_clock_values() {
        let c = state_condition(Action::Payment, 100, 10);
        assert_eq!(
            c.expression(),
            "#status IN (:sm_active, :sm_paused, :sm_expired, :sm_canceled, :sm_pending, \
             :sm_downgraded)"
        );
        assert!(!values(&c)
            .iter()
            .any(|v| v == ":sm_now" || v == ":sm_cutoff"));
    }

    #[test]
    fn windows_compare_with_now_minus_grace() {
        let c = state_condition(Job::Purge, 100, 10);
        assert!(
            c.expression().contains("canceled_at <= :sm_cutoff"),
            "{c:?}"
        );
        assert_eq!(c.values.get(":sm_cutoff"), Some(&n(90)));
        assert_eq!(c.values.get(":sm_now"), Some(&n(100)));
    }

    #[test]
    fn a_selection_keeps_only_its_phases_and_an_empty_one_matches_nothing() {
        let canceled = state_condition_where(Action::Payment, 0, 0, |p| {
            p.stored() == TrialStatus::Canceled
        });
        assert_eq!(canceled.expression(), "#status = :sm_canceled");
        let none = state_condition_where(Action::Payment, 0, 0, |p| {
            p.stored() == TrialStatus::Converted
        });
        assert!(none.expression().contains("attribute_not_exists(#status)"));
        assert!(none.values.is_empty());
    }
}
