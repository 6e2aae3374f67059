//! The subscription a conversion created, on the trial item: what Stripe's subscription and
//! invoice events said, each written by a conditional update (never read-then-write).
//!
//! **Invariants, in every write's condition:**
//! - the trial is the one the subscription's metadata names (org and plan as stored), and it
//!   holds this subscription or none yet (`stripe_subscription_id`): an event about another
//!   subscription (a second paid session) changes nothing;
//! - an older event never undoes a newer one: `subscription_event_at` is a watermark, the
//!   event's `created` × 16 + the status's rank ([`status_rank`]), and a subscription event
//!   writes only at or above it (two events of the same second order by status: an ending wins);
//! - an ended subscription (`canceled`, `incomplete_expired`) is never revived;
//! - [`Billing`](crate::domain::state_machine::Billing)'s arrows: the first paid invoice and the
//!   lapse each write once, only while neither is stored; the lapse only on a CONVERTED trial.
//!
//! Attributes: `stripe_subscription_id`, `subscription_status`, `subscription_period_end`,
//! `subscription_event_at`, `subscription_first_paid_at`, `subscription_lapsed_at`,
//! `subscription_payment_failed_at`. Cost: each event is one `UpdateItem` in the transaction
//! with its dedupe record (plus the `trial.first_payment` / `trial.subscription_lapsed` item).
use aws_sdk_dynamodb::types::Update;

use super::codec::{get_n, get_s, key, Item, Values};
use super::schema::{trial_pk, TRIAL_SK};
use super::{Store, StoreError};
use crate::domain::state_machine::{TrialStatus, SUBSCRIPTION_ENDED};
use crate::domain::trial::{SessionBinding, Subscription};

/// The binding and "this subscription or none yet" part of every write. The plan is the one
/// the trial trialled: a DOWNGRADED trial's checkout bills its `downgraded_from` at once, so the
/// subscription's events may come while it is still on its free plan (as `convert_update`).
const HELD: &str = "attribute_exists(pk) AND org_id = :org \
     AND (#plan = :plan OR downgraded_from = :plan) \
     AND (attribute_not_exists(stripe_subscription_id) OR stripe_subscription_id = :sub)";

/// Where a status sits in a subscription's life, to order two events of the same second.
pub fn status_rank(status: &str) -> i64 {
    match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" => 4,
        "paused" => 5,
        s if SUBSCRIPTION_ENDED.contains(&s) => 9,
        _ => 6,
    }
}

/// The watermark of an event: its `created`, then its status's rank.
pub fn watermark(created: i64, status: &str) -> i64 {
    created
        .saturating_mul(16)
        .saturating_add(status_rank(status))
}

/// What a subscription event writes.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionWrite<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub current_period_end: Option<i64>,
    /// The event's `created`.
    pub at: i64,
    /// Also lapse the conversion (an ending status, before any paid invoice).
    pub lapse: bool,
}

impl Store {
    fn held_values(&self, binding: &SessionBinding, subscription: &str) -> Values {
        Values::new()
            .s(":org", binding.org_id.as_str())
            .s(":plan", binding.plan.as_str())
            .s(":sub", subscription)
    }

    fn subscription_item_update(
        &self,
        binding: &SessionBinding,
        set: &str,
        condition: String,
        values: Values,
    ) -> Result<Update, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&binding.trial_id), TRIAL_SK)))
            .update_expression(format!("SET stripe_subscription_id = :sub, {set}"))
            .expression_attribute_names("#plan", "plan");
        // DynamoDB refuses a name no expression uses: `#status` is the lapse's only.
        if condition.contains("#status") {
            update = update.expression_attribute_names("#status", "status");
        }
        Ok(update
            .condition_expression(condition)
            .set_expression_attribute_values(values.build())
            .build()?)
    }

    /// A `customer.subscription.*` event: the status, period end and watermark, if the event is
    /// not older than the last one written and the subscription has not ended; with
    /// `write.lapse`, also `subscription_lapsed_at` (only on a CONVERTED trial never paid).
    pub fn subscription_update(
        &self,
        binding: &SessionBinding,
        write: SubscriptionWrite<'_>,
    ) -> Result<Update, StoreError> {
        let mut set = vec![
            "subscription_status = :status",
            "subscription_event_at = :mark",
        ];
        let mut values = self
            .held_values(binding, write.id)
            .s(":status", write.status)
            .n(":mark", watermark(write.at, write.status))
            .s(":ended0", SUBSCRIPTION_ENDED[0])
            .s(":ended1", SUBSCRIPTION_ENDED[1]);
        if let Some(end) = write.current_period_end {
            set.push("subscription_period_end = :period_end");
            values = values.n(":period_end", end);
        }
        let mut condition = format!(
            "{HELD} AND NOT (subscription_status IN (:ended0, :ended1)) \
             AND (attribute_not_exists(subscription_event_at) OR subscription_event_at <= :mark)"
        );
        if write.lapse {
            set.push("subscription_lapsed_at = :at");
            values = values
                .n(":at", write.at)
                .s(":converted", TrialStatus::Converted.as_str());
            condition.push_str(
                " AND #status = :converted AND attribute_not_exists(subscription_first_paid_at) \
                 AND attribute_not_exists(subscription_lapsed_at)",
            );
        }
        self.subscription_item_update(binding, &set.join(", "), condition, values)
    }

    /// The first invoice paid with money: `subscription_first_paid_at`, once. With
    /// `after_lapse`, only over a lapse not before the payment (Billing's LAPSED ──► PAID),
    /// else only while there is no lapse.
    pub fn first_payment_update(
        &self,
        binding: &SessionBinding,
        subscription: &str,
        paid_at: i64,
        after_lapse: bool,
    ) -> Result<Update, StoreError> {
        let lapse = if after_lapse {
            "subscription_lapsed_at >= :at"
        } else {
            "attribute_not_exists(subscription_lapsed_at)"
        };
        self.subscription_item_update(
            binding,
            "subscription_first_paid_at = :at",
            format!("{HELD} AND attribute_not_exists(subscription_first_paid_at) AND {lapse}"),
            self.held_values(binding, subscription).n(":at", paid_at),
        )
    }

    /// A failed invoice payment of the subscription the trial holds: when it last failed (for
    /// operators; the status follows in `customer.subscription.updated`).
    pub fn payment_failed_update(
        &self,
        binding: &SessionBinding,
        subscription: &str,
        failed_at: i64,
    ) -> Result<Update, StoreError> {
        self.subscription_item_update(
            binding,
            "subscription_payment_failed_at = :at",
            HELD.to_owned(),
            self.held_values(binding, subscription).n(":at", failed_at),
        )
    }
}

/// The subscription the trial item holds, if any.
pub fn subscription_from_item(item: &Item) -> Option<Subscription> {
    Some(Subscription {
        id: get_s(item, "stripe_subscription_id")?.to_owned(),
        status: get_s(item, "subscription_status").map(str::to_owned),
        current_period_end: get_n(item, "subscription_period_end"),
        first_paid_at: get_n(item, "subscription_first_paid_at"),
        lapsed_at: get_n(item, "subscription_lapsed_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_second_always_wins_and_within_a_second_the_ending_does() {
        assert!(watermark(11, "incomplete") > watermark(10, "canceled"));
        assert!(watermark(10, "canceled") > watermark(10, "active"));
        assert!(watermark(10, "active") > watermark(10, "trialing"));
        assert!(watermark(10, "incomplete_expired") > watermark(10, "past_due"));
        assert_eq!(status_rank("something_new"), 6);
    }
}
