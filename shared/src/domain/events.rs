//! Domain events: what happened to a trial, written to the table with the change and published
//! to EventBridge from the table's stream. Each has a deterministic id (subject + transition) so
//! consumers can deduplicate the repeats that at-least-once delivery brings.
use serde_json::{json, Value};

use super::catalog::end_behavior;
use super::reminders::ScheduledReminder;
use super::time::rfc3339;
use super::trial::SessionBinding;
use super::{OrgId, Plan, Trial, TrialId};

/// EventBridge `Source` of every event.
pub const SOURCE: &str = "trials";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Expired,
    Canceled,
    CheckoutCreated,
    Converted,
    Purged,
    UnmatchedPayment,
    Paused,
    Resumed,
    Extended,
    EndingSoon,
    GraceEnding,
    /// An option's usage first reached 80 % of its limit (once per trial and option).
    LimitWarning,
    /// An option's usage reached its limit (once per trial and option).
    LimitReached,
    /// An admin changed the trial's `expires_at` or `notes` (`PATCH /v1/trials/{id}`).
    Updated,
    /// A start refused because the applicant's signal was used by another org (no trial
    /// exists: the event is about the org).
    Blocked,
    /// The first invoice of the conversion's subscription was paid with money (once per trial).
    FirstPayment,
    /// The conversion's subscription ended before any paid invoice (once per trial).
    SubscriptionLapsed,
    /// The trial moved to another plan of its product (change-plan, or convert with a plan).
    PlanChanged,
    /// A PENDING trial's clock started (`activate`, or its first usage call).
    Activated,
    /// A reverse trial's end: it dropped to its free plan (DOWNGRADED).
    Downgraded,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::Started,
        EventKind::Expired,
        EventKind::Canceled,
        EventKind::CheckoutCreated,
        EventKind::Converted,
        EventKind::Purged,
        EventKind::UnmatchedPayment,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Extended,
        EventKind::EndingSoon,
        EventKind::GraceEnding,
        EventKind::LimitWarning,
        EventKind::LimitReached,
        EventKind::Updated,
        EventKind::Blocked,
        EventKind::FirstPayment,
        EventKind::SubscriptionLapsed,
        EventKind::PlanChanged,
        EventKind::Activated,
        EventKind::Downgraded,
    ];

    /// The EventBridge `DetailType`.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::Started => "trial.started",
            EventKind::Expired => "trial.expired",
            EventKind::Canceled => "trial.canceled",
            EventKind::CheckoutCreated => "trial.checkout_created",
            EventKind::Converted => "trial.converted",
            EventKind::Purged => "trial.purged",
            EventKind::UnmatchedPayment => "trial.payment_unmatched",
            EventKind::Paused => "trial.paused",
            EventKind::Resumed => "trial.resumed",
            EventKind::Extended => "trial.extended",
            EventKind::EndingSoon => "trial.ending_soon",
            EventKind::GraceEnding => "trial.grace_ending",
            EventKind::LimitWarning => "trial.limit_warning",
            EventKind::LimitReached => "trial.limit_reached",
            EventKind::Updated => "trial.updated",
            EventKind::Blocked => "trial.blocked",
            EventKind::FirstPayment => "trial.first_payment",
            EventKind::SubscriptionLapsed => "trial.subscription_lapsed",
            EventKind::PlanChanged => "trial.plan_changed",
            EventKind::Activated => "trial.activated",
            EventKind::Downgraded => "trial.downgraded",
        }
    }

    fn suffix(self) -> &'static str {
        self.detail_type().trim_start_matches("trial.")
    }
}

/// An event ready to publish: `detail` is the JSON string EventBridge carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    pub id: String,
    pub kind: EventKind,
    pub detail: String,
}

impl DomainEvent {
    /// `occurred_at` is part of the detail; `discriminator` distinguishes repeatable transitions
    /// (each checkout session is its own `checkout_created`).
    pub fn for_trial(
        kind: EventKind,
        trial: &Trial,
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        DomainEvent::new(
            kind,
            &trial.id,
            &trial.org_id,
            (&trial.plan, Some(trial.terms.product.id.as_str())),
            occurred_at,
            discriminator,
            extra,
        )
    }

    fn new(
        kind: EventKind,
        trial_id: &TrialId,
        org_id: &OrgId,
        (plan, product): (&Plan, Option<&str>),
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        let id = match discriminator {
            Some(d) => format!("{}.{}.{}", trial_id, kind.suffix(), d),
            None => format!("{}.{}", trial_id, kind.suffix()),
        };
        let mut detail = json!({
            "event_id": id,
            "type": kind.detail_type(),
            "trial_id": trial_id.as_str(),
            "org_id": org_id.as_str(),
            "plan": plan.as_str(),
            "product": product,
            "occurred_at": rfc3339(occurred_at),
        });
        merge(&mut detail, extra);
        DomainEvent {
            detail: detail.to_string(),
            id,
            kind,
        }
    }

    /// An event about an org's refused start: no trial exists, so the id is
    /// `<org_id>.blocked.<discriminator>` and the detail has no `trial_id`.
    pub fn for_org(
        kind: EventKind,
        org_id: &OrgId,
        (plan, product): (&Plan, &str),
        occurred_at: i64,
        discriminator: &str,
        extra: Value,
    ) -> DomainEvent {
        let id = format!("{}.{}.{}", org_id, kind.suffix(), discriminator);
        let mut detail = json!({
            "event_id": id,
            "type": kind.detail_type(),
            "org_id": org_id.as_str(),
            "plan": plan.as_str(),
            "product": product,
            "occurred_at": rfc3339(occurred_at),
        });
        merge(&mut detail, extra);
        DomainEvent {
            detail: detail.to_string(),
            id,
            kind,
        }
    }

    /// An event about the trial a Checkout Session is bound to, when only the binding is known
    /// (the webhook writes without reading the trial: the binding was checked in the write's
    /// condition). `product` is the binding's plan's, from the catalog (`None`: a plan the
    /// catalog no longer has).
    pub fn for_binding(
        kind: EventKind,
        (binding, product): (&SessionBinding, Option<&str>),
        occurred_at: i64,
        discriminator: Option<&str>,
        extra: Value,
    ) -> DomainEvent {
        DomainEvent::new(
            kind,
            &binding.trial_id,
            &binding.org_id,
            (&binding.plan, product),
            occurred_at,
            discriminator,
            extra,
        )
    }

    /// A payment for a trial we no longer have (purged, or never ours): operators must see it.
    pub fn unmatched_payment(stripe_event_id: &str, occurred_at: i64, extra: Value) -> DomainEvent {
        let kind = EventKind::UnmatchedPayment;
        let id = format!("{stripe_event_id}.{}", kind.suffix());
        let mut detail = json!({
            "event_id": id,
            "type": kind.detail_type(),
            "stripe_event_id": stripe_event_id,
            "occurred_at": rfc3339(occurred_at),
        });
        merge(&mut detail, extra);
        DomainEvent {
            detail: detail.to_string(),
            id,
            kind,
        }
    }

    pub fn from_parts(id: String, detail_type: &str, detail: String) -> Option<DomainEvent> {
        let kind = EventKind::ALL
            .into_iter()
            .find(|k| k.detail_type() == detail_type)?;
        Some(DomainEvent { id, kind, detail })
    }

    /// `trial.paused`, from the paused trial: the n-th pause is `<trial>.paused.<n>`
    /// ([`Trial::pause_count`], which only grows), so two pauses within one second still get
    /// two ids, and so do pauses past the bound on the ranges.
    pub fn paused(paused: &Trial, extra: Value) -> DomainEvent {
        let at = paused.paused_at.unwrap_or(paused.expires_at);
        let mut fields = json!({
            "paused_at": rfc3339(at),
            "expires_at": rfc3339(paused.expires_at),
            "remaining_duration": paused.remaining_duration(at),
        });
        merge(&mut fields, extra);
        let n = paused.pause_count().to_string();
        DomainEvent::for_trial(EventKind::Paused, paused, at, Some(&n), fields)
    }

    /// `trial.activated`, from the activated trial: once per trial (`<trial>.activated`, so
    /// two concurrent activations cannot both write it). `by`: `activate` or `usage`.
    pub fn activated(activated: &Trial, now: i64, by: &str, extra: Value) -> DomainEvent {
        let mut fields = json!({
            "activated_at": rfc3339(now),
            "expires_at": rfc3339(activated.expires_at),
            "activated_by": by,
        });
        merge(&mut fields, extra);
        DomainEvent::for_trial(EventKind::Activated, activated, now, None, fields)
    }

    /// `trial.resumed`, from the resumed trial: the n-th resume (after the n-th pause) is
    /// `<trial>.resumed.<n + 1>`, as when it opened the (n + 1)-th range. `automatic` says
    /// whether the pause maximum resumed it.
    pub fn resumed(before: &Trial, resumed: &Trial, automatic: bool, extra: Value) -> DomainEvent {
        let ranges = resumed.ranges();
        let at = ranges.last().map_or(resumed.started_at, |r| r.start);
        let mut fields = json!({
            "resumed_at": rfc3339(at),
            "previous_expires_at": rfc3339(before.expires_at),
            "expires_at": rfc3339(resumed.expires_at),
            "automatic": automatic,
        });
        merge(&mut fields, extra);
        let n = (resumed.pause_count() + 1).to_string();
        DomainEvent::for_trial(EventKind::Resumed, resumed, at, Some(&n), fields)
    }

    /// `trial.extended`: old and new `expires_at`, the reason and who asked (a key id, never
    /// the key). Ends only move later, so the new end names the extension.
    pub fn extended(
        before: &Trial,
        extended: &Trial,
        now: i64,
        reason: Option<&str>,
        requested_by: &str,
        extra: Value,
    ) -> DomainEvent {
        let mut fields = json!({
            "previous_expires_at": rfc3339(before.expires_at),
            "expires_at": rfc3339(extended.expires_at),
            "reason": reason,
            "requested_by": requested_by,
        });
        merge(&mut fields, extra);
        let end = extended.expires_at.to_string();
        DomainEvent::for_trial(EventKind::Extended, extended, now, Some(&end), fields)
    }

    /// `trial.plan_changed`: the plans and ends before and after, whether it was forced and who
    /// asked (a key id; never the key). One per change: its id names the new plan and the
    /// instant.
    pub fn plan_changed(
        before: &Trial,
        after: &Trial,
        now: i64,
        forced: bool,
        requested_by: &str,
        extra: Value,
    ) -> DomainEvent {
        let mut fields = json!({
            "previous_plan": before.plan.as_str(),
            "previous_expires_at": rfc3339(before.expires_at),
            "expires_at": rfc3339(after.expires_at),
            "forced": forced,
            "requested_by": requested_by,
        });
        merge(&mut fields, extra);
        let discriminator = format!("{}.{now}", after.plan.as_str());
        DomainEvent::for_trial(
            EventKind::PlanChanged,
            after,
            now,
            Some(&discriminator),
            fields,
        )
    }

    /// `trial.ending_soon` or `trial.grace_ending`, with the reminder's deterministic id.
    pub fn reminder(trial: &Trial, reminder: &ScheduledReminder, occurred_at: i64) -> DomainEvent {
        let (kind, fields) = match *reminder {
            ScheduledReminder::EndingSoon {
                offset_secs,
                expires_at,
                ..
            } => (
                EventKind::EndingSoon,
                json!({
                    // Rounded up: a 90 s reminder (short local trials) says 1, not 0.
                    "hours_remaining": (offset_secs + 3_599) / 3_600,
                    "offset_secs": offset_secs,
                    "expires_at": rfc3339(expires_at),
                    // Which ending is coming: `expire`, or `downgrade` (to `downgrade_to`).
                    "ending": end_behavior(trial.terms.downgrade_to.as_deref()),
                }),
            ),
            ScheduledReminder::GraceEnding { purge_at, .. } => (
                EventKind::GraceEnding,
                json!({
                    "expires_at": rfc3339(trial.expires_at),
                    "grace_period_ends_at": rfc3339(purge_at),
                }),
            ),
        };
        let mut fields = fields;
        if let (EventKind::EndingSoon, Some(free)) = (kind, &trial.terms.downgrade_to) {
            fields["downgrade_to"] = free.plan.as_str().into();
        }
        DomainEvent::for_trial(
            kind,
            trial,
            occurred_at,
            Some(&reminder.discriminator()),
            fields,
        )
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::active_ranges::LifecycleTerms;
    use crate::domain::trial::TrialPolicy;
    use crate::domain::{Extension, OrgId, TrialId};

    const DAY: i64 = 86_400;

    fn trial() -> Trial {
        Trial::start(
            TrialId::parse("trial_0123456789abcdef01234567").unwrap(),
            OrgId::parse("org_a").unwrap(),
            0,
            crate::domain::catalog::Catalog::builtin()
                .get("pro")
                .unwrap()
                .snapshot(),
        )
    }

    fn detail(e: &DomainEvent) -> Value {
        serde_json::from_str(&e.detail).unwrap()
    }

    #[test]
    fn every_kind_round_trips_through_its_detail_type() {
        for kind in EventKind::ALL {
            let back = DomainEvent::from_parts("x".into(), kind.detail_type(), "{}".into());
            assert_eq!(back.map(|e| e.kind), Some(kind));
        }
    }

    #[test]
    fn lifecycle_events_have_deterministic_distinct_ids() {
        let (policy, terms) = (TrialPolicy::default(), LifecycleTerms::default());
        let t = trial();
        let p1 = t.pause(DAY, policy).unwrap();
        let r1 = p1.resume(DAY, policy, &terms).unwrap();
        let p2 = r1.pause(DAY, policy).unwrap();
        let r2 = p2.resume(2 * DAY, policy, &terms).unwrap();
        let ids = [
            DomainEvent::paused(&p1, json!({})).id,
            DomainEvent::resumed(&p1, &r1, false, json!({})).id,
            DomainEvent::paused(&p2, json!({})).id,
            DomainEvent::resumed(&p2, &r2, false, json!({})).id,
        ];
        let id = t.id.as_str();
        assert_eq!(
            ids,
            [
                format!("{id}.paused.1"),
                format!("{id}.resumed.2"),
                format!("{id}.paused.2"),
                format!("{id}.resumed.3"),
            ]
        );
        assert_eq!(DomainEvent::paused(&p2, json!({})).id, ids[2]);
        let resumed = detail(&DomainEvent::resumed(&p2, &r2, true, json!({})));
        assert_eq!(resumed["previous_expires_at"], rfc3339(7 * DAY));
        assert_eq!(resumed["expires_at"], rfc3339(8 * DAY));
        assert_eq!(resumed["automatic"], true);
        let paused = detail(&DomainEvent::paused(&p2, json!({})));
        assert_eq!(paused["remaining_duration"], 6 * DAY);
    }

    #[test]
    fn pause_ids_count_pauses_past_the_bound_and_carry_on_from_an_item_without_a_count() {
        use crate::domain::active_ranges::MAX_RANGES;
        use crate::domain::ActiveRange;
        let (policy, terms) = (TrialPolicy::default(), LifecycleTerms::default());
        let mut t = trial();
        // Full ranges, paused 64 times (one range each), all within the trial's length.
        t.active_ranges = (0..MAX_RANGES as i64)
            .map(|i| ActiveRange::new(i * 10, i * 10 + 5))
            .collect();
        t.active_ranges.last_mut().unwrap().end = t.expires_at;
        let mut ids = Vec::new();
        let mut at = t.clone();
        // Stored before the count: the ranges say 63 pauses so far.
        assert_eq!((at.pauses, at.pause_count()), (None, MAX_RANGES as i64 - 1));
        for _ in 0..3 {
            // Within one second: the ranges keep their number and last start.
            let paused = at.pause(DAY, policy).unwrap();
            let resumed = paused.resume(DAY, policy, &terms).unwrap();
            assert_eq!(resumed.active_ranges.len(), MAX_RANGES);
            ids.push(DomainEvent::paused(&paused, json!({})).id);
            ids.push(DomainEvent::resumed(&paused, &resumed, false, json!({})).id);
            at = resumed;
        }
        let id = t.id.as_str();
        assert_eq!(
            ids,
            [
                format!("{id}.paused.64"),
                format!("{id}.resumed.65"),
                format!("{id}.paused.65"),
                format!("{id}.resumed.66"),
                format!("{id}.paused.66"),
                format!("{id}.resumed.67"),
            ]
        );
        assert_eq!(at.pauses, Some(66));
        // A legacy PAUSED item counts its current range as paused.
        let mut legacy = t.pause(DAY, policy).unwrap();
        legacy.pauses = None;
        assert_eq!(legacy.pause_count(), MAX_RANGES as i64);
    }

    #[test]
    fn extended_names_old_and_new_end_reason_and_key_id() {
        let (policy, terms) = (TrialPolicy::default(), LifecycleTerms::default());
        let t = trial();
        let ext = t.extend(Extension::Days(3), DAY, policy, &terms).unwrap();
        let e = DomainEvent::extended(&t, &ext, DAY, Some("sales"), "key_1", json!({}));
        assert_eq!(e.id, format!("{}.extended.{}", t.id, 10 * DAY));
        let d = detail(&e);
        assert_eq!(d["type"], "trial.extended");
        assert_eq!(d["previous_expires_at"], rfc3339(7 * DAY));
        assert_eq!(d["expires_at"], rfc3339(10 * DAY));
        assert_eq!(d["reason"], "sales");
        assert_eq!(d["requested_by"], "key_1");
    }

    #[test]
    fn reminder_events_carry_the_reminder_id_and_hours() {
        let (policy, terms) = (TrialPolicy::default(), LifecycleTerms::default());
        let t = trial();
        let r = t.next_reminder(0, &terms, policy).unwrap();
        let e = DomainEvent::reminder(&t, &r, r.at());
        assert_eq!(e.id, r.event_id(&t.id));
        assert_eq!(e.kind, EventKind::EndingSoon);
        let d = detail(&e);
        assert_eq!(d["hours_remaining"], 72);
        assert_eq!(d["expires_at"], rfc3339(7 * DAY));
        let grace = ScheduledReminder::GraceEnding {
            at: 9 * DAY,
            purge_at: 10 * DAY,
        };
        let e = DomainEvent::reminder(&t, &grace, 9 * DAY);
        assert_eq!(e.id, grace.event_id(&t.id));
        assert_eq!(detail(&e)["grace_period_ends_at"], rfc3339(10 * DAY));
    }
}
