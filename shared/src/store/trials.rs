//! Trial items: how a trial is stored, and the conditional write of every transition. The
//! writes are handed to a [`Tx`](super::tx::Tx) in their slot; the conditions here are the
//! invariants: the state machine's row for the transition, derived from its table by
//! [`state_condition`] (legal transitions and the grace period, re-checked by DynamoDB at the
//! moment of the write), composed with what the state machine does not know (the trial is the
//! org's, the session's binding, one open session, a payment on its way). The org guard (one
//! trial per org) is [`super::org_guard`]; pause, resume and extend are [`super::moves`].
use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, Update};

use super::codec::{get_bool, get_n, get_s, key, n, s, Item, Values};
use super::conditions::{state_condition, state_condition_where};
use super::schema::{
    ranges_value, trial_number_pk, trial_pk, DueQueue, ACTIVATE_BY, ACTIVE_RANGES, DUE_AT, DUE_PK,
    TRIAL_NUMBER_SK, TRIAL_SK,
};
use super::tx::{Rejection, Slot};
use super::{Store, StoreError};
use crate::domain::applicant::{Applicant, Privilege};
use crate::domain::catalog::{Catalog, TrialTerms};
use crate::domain::state_machine::{Action, Job, Phase};
use crate::domain::trial::{
    Checkout, Payment, PendingPayment, SessionBinding, EXPIRY_ACTIVATION_WINDOW,
};
use crate::domain::{ActiveRange, OrgId, Plan, Trial, TrialId, TrialPolicy, TrialStatus};

/// The trial as it was when its slot's condition failed; `None` when it did not exist (never
/// ours, or purged) or its condition did not fail.
pub fn rejected_trial(rejection: &Rejection) -> Result<Option<Trial>, StoreError> {
    rejection.old(Slot::Trial).map(trial_from_item).transpose()
}

impl Store {
    /// A new trial (its id must be new).
    pub fn trial_put(&self, trial: &Trial, policy: TrialPolicy) -> Result<Put, StoreError> {
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.trial_item(trial, policy)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    /// The reservation of a new trial's integer id ([`TrialId::number`]), put in its start's
    /// transaction: it fails if another trial holds the number, so numbers are unique. It
    /// stays when the trial is purged (a number is never given twice). Cost: one small item
    /// and its write per start.
    pub fn trial_number_put(&self, trial: &Trial) -> Result<Put, StoreError> {
        let mut item = key(trial_number_pk(trial.id.number()), TRIAL_NUMBER_SK);
        item.insert("trial_id".into(), s(trial.id.as_str()));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    pub async fn get_trial(&self, id: &TrialId) -> Result<Option<Trial>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        out.item.as_ref().map(trial_from_item).transpose()
    }

    /// ACTIVE or PAUSED -> CANCELED, if the trial is still the org's, PAUSED or ACTIVE and
    /// unexpired at `now`, its open checkout session is still `open_session` as read
    /// (`None`: none open), so that a session recorded by a convert since the read cannot escape
    /// the expiry the cancel schedules for the session it saw, and no payment is on its way (a
    /// cancel would not stop the debit: cancel answers `payment_pending` instead).
    pub fn cancel_update(
        &self,
        trial: &Trial,
        open_session: Option<&str>,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Update, StoreError> {
        let state = state_condition(Action::Cancel, now, policy.grace_secs);
        let (session_condition, values) = match open_session {
            Some(sid) => ("checkout_session_id = :sid", Values::new().s(":sid", sid)),
            None => (
                "(attribute_not_exists(checkout_session_id) OR checkout_expires_at <= :now)",
                Values::new(),
            ),
        };
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(
                "SET #status = :canceled, canceled_at = :now, due_pk = :due_pk, due_at = :due_at",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND org_id = :org AND {} AND {session_condition} AND {NO_PENDING}",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                state
                    .add_values(values)
                    .n(":stale", self.pending_stale_at(now))
                    .s(":canceled", TrialStatus::Canceled.as_str())
                    .s(":org", trial.org_id.as_str())
                    .n(":now", now)
                    .s(
                        ":due_pk",
                        DueQueue::Purge.partition_for(trial.id.as_str(), self.shards),
                    )
                    .n(":due_at", now + policy.grace_secs)
                    .build(),
            )
            .build()?)
    }

    /// Stores the checkout session a convert opened, if the trial may still convert at `now`,
    /// holds no other open session (one session per trial, whatever races) and no payment is on
    /// its way (convert answers that one instead). A payment on its way past its maximum age is
    /// forgotten here: the new session replaces it.
    pub fn checkout_update(
        &self,
        trial: &Trial,
        checkout: &Checkout,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Update, StoreError> {
        let state = state_condition(Action::Convert, now, policy.grace_secs);
        let mut values = state.add_values(Values::new());
        let trial_end = match checkout.trial_end {
            Some(at) => {
                values = values.n(":tend", at);
                "SET checkout_session_id = :sid, checkout_url = :url, checkout_expires_at = :cexp, checkout_trial_end = :tend \
                 REMOVE pending_session_id, pending_since"
            }
            None => {
                "SET checkout_session_id = :sid, checkout_url = :url, checkout_expires_at = :cexp \
                     REMOVE checkout_trial_end, pending_session_id, pending_since"
            }
        };
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(trial_end)
            .condition_expression(format!(
                "attribute_exists(pk) AND org_id = :org AND {} AND {NO_PENDING} \
                 AND (attribute_not_exists(checkout_session_id) OR checkout_expires_at <= :now OR checkout_session_id = :sid)",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                values
                    .n(":stale", self.pending_stale_at(now))
                    .s(":sid", &checkout.session_id)
                    .s(":url", &checkout.url)
                    .n(":cexp", checkout.expires_at)
                    .s(":org", trial.org_id.as_str())
                    .n(":now", now)
                    .build(),
            )
            .build()?)
    }

    /// A completed payment for a session bound to `binding` converts the trial if it exists and
    /// is the org's and plan's the session was made for (money is never taken wrongly), and is
    /// ACTIVE, PAUSED or EXPIRED; with `after_cancel`, only if it is CANCELED, and the trial is
    /// flagged for review. `ALL_OLD` on the failed condition tells which case it was.
    pub fn convert_update(
        &self,
        binding: &SessionBinding,
        payment: &Payment,
        now: i64,
        after_cancel: bool,
    ) -> Result<Update, StoreError> {
        let id = &binding.trial_id;
        // The payment row, split: a CANCELED trial's payment is written apart, for review.
        let state = state_condition_where(Action::Payment, now, 0, |phase| {
            (phase.stored() == TrialStatus::Canceled) == after_cancel
        });
        let mut values = state
            .add_values(Values::new())
            .s(":converted", TrialStatus::Converted.as_str())
            .s(":org", binding.org_id.as_str())
            .s(":plan", binding.plan.as_str())
            .n(":now", now);
        // A DOWNGRADED trial converts to the plan it trialled: back on it.
        let mut set = vec![
            "#status = :converted",
            "converted_at = :now",
            "#plan = :plan",
        ];
        if after_cancel {
            set.push("review = :review");
            values = values.s(":review", "paid_after_cancel");
        }
        for (assignment, placeholder, value) in [
            (
                "stripe_customer_id = :customer",
                ":customer",
                &payment.customer_id,
            ),
            (
                "stripe_subscription_id = :subscription",
                ":subscription",
                &payment.subscription_id,
            ),
            (
                "paid_session_id = :session",
                ":session",
                &payment.session_id,
            ),
        ] {
            if let Some(v) = value {
                values = values.s(placeholder, v);
                set.push(assignment);
            }
        }
        // ... and its terms again, kept aside when it downgraded (a trial that never did keeps
        // its own).
        let terms = format!("{TERMS} = if_not_exists({TRIALLED_TERMS}, {TERMS})");
        set.push(&terms);
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .update_expression(format!(
                "SET {} REMOVE due_pk, due_at, checkout_session_id, checkout_url, checkout_expires_at, checkout_trial_end, pending_session_id, pending_since, {TRIALLED_TERMS}",
                set.join(", ")
            ))
            .condition_expression(format!(
                "attribute_exists(pk) AND org_id = :org AND (#plan = :plan OR {DOWNGRADED_FROM} = :plan) AND {}",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#plan", "plan")
            .set_expression_attribute_values(values.build())
            .build()?)
    }

    /// A payment on its way for a session bound to `binding`: recorded on the trial, so purge
    /// waits for it and convert answers it. Same binding rules as [`Store::convert_update`], and
    /// only while `session_id` is the trial's current session: Stripe does not order its events,
    /// so a late `completed` for a session whose payment already failed or that expired (and was
    /// forgotten, [`Store::clear_session_update`]) or that a newer session replaced must not
    /// hold the trial as "payment pending" for a payment that will never come.
    pub fn pending_update(
        &self,
        binding: &SessionBinding,
        session_id: &str,
        now: i64,
    ) -> Result<Update, StoreError> {
        let state = state_condition(Action::Payment, now, 0);
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&binding.trial_id), TRIAL_SK)))
            .update_expression("SET pending_session_id = :sid, pending_since = :now")
            .condition_expression(format!(
                "attribute_exists(pk) AND org_id = :org AND (#plan = :plan OR {DOWNGRADED_FROM} = :plan) \
                 AND {} AND checkout_session_id = :sid",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#plan", "plan")
            .set_expression_attribute_values(
                state
                    .add_values(Values::new())
                    .s(":sid", session_id)
                    .n(":now", now)
                    .s(":org", binding.org_id.as_str())
                    .s(":plan", binding.plan.as_str())
                    .build(),
            )
            .build()?)
    }

    /// Forgets session `session_id` (it expired, or its delayed payment failed): as the open
    /// checkout and as the pending payment, unless the trial converted meanwhile or has moved
    /// on to another session. A session is kept for exactly as long as a payment for it could
    /// still be accepted: the payment row's condition.
    pub fn clear_session_update(
        &self,
        id: &TrialId,
        session_id: &str,
    ) -> Result<Update, StoreError> {
        // The payment row has no time qualifier: `now` is not used.
        let state = state_condition(Action::Payment, 0, 0);
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .update_expression(
                "REMOVE checkout_session_id, checkout_url, checkout_expires_at, checkout_trial_end, pending_session_id, pending_since",
            )
            .condition_expression(format!(
                "(checkout_session_id = :sid OR pending_session_id = :sid) AND {}",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                state
                    .add_values(Values::new())
                    .s(":sid", session_id)
                    .build(),
            )
            .build()?)
    }

    /// The expire job's write: ACTIVE -> EXPIRED only if still ACTIVE and due, so it is safe to
    /// race convert, cancel, the webhook and another run of itself. A reverse trial's (its
    /// terms downgrade) is [`Store::downgrade_update`] instead.
    pub fn expire_update(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Update, StoreError> {
        // A reverse trial downgrades at its end (one never activated lapses whatever its plan).
        if let Some(downgraded) = trial.downgraded() {
            return self.downgrade_update(trial, &downgraded, now, policy);
        }
        // The lapsed phases only: an ACTIVE item that carries `downgrade_to` downgrades instead.
        let state = state_condition_where(Job::Expire, now, policy.grace_secs, |phase| {
            matches!(phase, Phase::Lapsed | Phase::PendingLapsed)
        });
        let mut values = state
            .add_values(Values::new())
            .s(":expired", TrialStatus::Expired.as_str())
            .s(
                ":due_pk",
                DueQueue::Purge.partition_for(trial.id.as_str(), self.shards),
            )
            .n(":due_at", trial.expires_at + policy.grace_secs);
        let (mut set, mut condition) = (
            "SET #status = :expired, due_pk = :due_pk, due_at = :due_at".to_owned(),
            state.expression().to_owned(),
        );
        // A trial never activated lapses for its activation window: said so, on condition it
        // is still unactivated (the reason is for that trial only).
        if trial.activate_by.is_some() {
            values = values.s(":reason", EXPIRY_ACTIVATION_WINDOW);
            set.push_str(&format!(", {EXPIRY_REASON} = :reason"));
            condition.push_str(&format!(" AND attribute_exists({ACTIVATE_BY})"));
        }
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(set)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(values.build())
            .build()?)
    }

    /// The expire job's write for a reverse trial (`Trial::downgraded`): ACTIVE -> DOWNGRADED,
    /// only in the ending phase (ACTIVE, due, the item carries `downgrade_to`) and on the plan
    /// read (the free terms written are that plan's). The trial leaves the due index: it is
    /// never expired again nor purged. `used` stays as it is: the free plan's options read it
    /// by name.
    pub fn downgrade_update(
        &self,
        trial: &Trial,
        after: &Trial,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Update, StoreError> {
        let state = state_condition_where(Job::Expire, now, policy.grace_secs, |phase| {
            phase == Phase::Ending
        });
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(format!(
                "SET #status = :downgraded, #plan = :free, {TERMS} = :terms, \
                 {TRIALLED_TERMS} = :trialled, {DOWNGRADED_FROM} = :from_plan, \
                 {DOWNGRADED_AT} = :at, {ACTIVE_RANGES} = :ranges \
                 REMOVE due_pk, due_at, {DOWNGRADE_TO}"
            ))
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_names("#status", "status")
            .condition_expression(format!(
                "attribute_exists(pk) AND #plan = :from_plan AND {}",
                state.expression()
            ))
            .set_expression_attribute_values(
                state
                    .add_values(Values::new())
                    .s(":downgraded", TrialStatus::Downgraded.as_str())
                    .s(":free", after.plan.as_str())
                    .s(":terms", after.terms.to_json())
                    .s(":trialled", trial.terms.to_json())
                    .s(":from_plan", trial.plan.as_str())
                    .n(":at", after.downgraded_at.unwrap_or(trial.expires_at))
                    .build(),
            )
            .expression_attribute_values(":ranges", ranges_value(&after.ranges()))
            .build()?)
    }

    /// The purge job's delete: only if the trial's grace has ended, no payment is on its way
    /// (younger than the maximum age) and
    /// no checkout session is still payable, all re-checked by DynamoDB at the moment of the
    /// delete (the `due` index the job read is eventually consistent; a convert or a webhook may
    /// have written since).
    pub fn purge_delete(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Delete, StoreError> {
        let state = state_condition(Job::Purge, now, policy.grace_secs);
        Ok(Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .condition_expression(format!(
                "{} AND {NO_PENDING} \
                 AND (attribute_not_exists(checkout_expires_at) OR checkout_expires_at <= :now)",
                state.expression()
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                state
                    .add_values(Values::new())
                    .n(":now", now)
                    .n(":stale", self.pending_stale_at(now))
                    .build(),
            )
            .build()?)
    }

    /// The item a trial is stored as (public for bulk seeding in benchmarks).
    pub fn trial_item(&self, trial: &Trial, policy: TrialPolicy) -> Item {
        let mut item = key(trial_pk(&trial.id), TRIAL_SK);
        item.insert("trial_id".into(), s(trial.id.as_str()));
        item.insert("org_id".into(), s(trial.org_id.as_str()));
        if let Some(project) = &trial.project_id {
            item.insert("project_id".into(), s(project.as_str()));
        }
        item.insert("plan".into(), s(trial.plan.as_str()));
        item.insert("status".into(), s(trial.status.as_str()));
        item.insert("started_at".into(), n(trial.started_at));
        item.insert("expires_at".into(), n(trial.expires_at));
        let lifecycle = trial.lifecycle(policy);
        let due = match trial.status {
            // A PENDING trial waits for its activation deadline as an ACTIVE one for its end.
            TrialStatus::Active | TrialStatus::Pending => {
                Some((DueQueue::Expire, trial.expires_at))
            }
            _ => lifecycle.purge_due_at().map(|at| (DueQueue::Purge, at)),
        };
        if let Some(applicant) = &trial.applicant {
            item.insert("applicant".into(), s(applicant.to_json().to_string()));
        }
        if let Some(notes) = &trial.notes {
            item.insert("notes".into(), s(notes));
        }
        if trial.is_trial_skipped {
            item.insert("is_trial_skipped".into(), AttributeValue::Bool(true));
        }
        if let Some((queue, at)) = due {
            item.insert(
                DUE_PK.into(),
                s(queue.partition_for(trial.id.as_str(), self.shards)),
            );
            item.insert(DUE_AT.into(), n(at));
        }
        item.insert(TERMS.into(), s(trial.terms.to_json()));
        // What the state machine's conditions read to tell a reverse trial's end (see
        // `store::conditions`), and a DOWNGRADED trial's trialled plan.
        if let Some(free) = &trial.terms.downgrade_to {
            item.insert(DOWNGRADE_TO.into(), s(free.plan.as_str()));
        }
        if let Some(from) = &trial.downgraded_from {
            item.insert(DOWNGRADED_FROM.into(), s(from.as_str()));
        }
        if let Some(at) = trial.downgraded_at {
            item.insert(DOWNGRADED_AT.into(), n(at));
        }
        // Always present (even empty), so a usage update can set `used.<option>`.
        item.insert(
            USED.into(),
            AttributeValue::M(
                trial
                    .used
                    .iter()
                    .map(|(option, v)| (option.clone(), n(*v)))
                    .collect(),
            ),
        );
        if let Some(keys) = &trial.usage_keys {
            super::usage::keys_attributes(keys, &mut item);
        }
        if let Some(reason) = &trial.expiry_reason {
            item.insert(EXPIRY_REASON.into(), s(reason.as_str()));
        }
        // A PAUSED trial's RESUME entry needs its plan's pause maximum: only the pause write
        // (`Store::lifecycle_update`) puts a trial in that queue, never a fresh item.
        if let Some(at) = trial.paused_at {
            item.insert(PAUSED_AT.into(), n(at));
        }
        if !trial.active_ranges.is_empty() {
            item.insert(ACTIVE_RANGES.into(), ranges_value(&trial.active_ranges));
        }
        if let Some(pauses) = trial.pauses {
            item.insert(PAUSES.into(), n(pauses));
        }
        if let Some(at) = trial.activate_by {
            item.insert(ACTIVATE_BY.into(), n(at));
        }
        item
    }
}

pub fn trial_from_item(item: &Item) -> Result<Trial, StoreError> {
    let text = |name: &str| {
        get_s(item, name).ok_or_else(|| StoreError::corrupt(format!("trial without {name}")))
    };
    let number = |name: &str| {
        get_n(item, name).ok_or_else(|| StoreError::corrupt(format!("trial without {name}")))
    };
    let (checkout, pending) = sessions_from_item(item);
    let payment = get_n(item, "converted_at").map(|_| Payment {
        session_id: get_s(item, "paid_session_id").map(str::to_owned),
        customer_id: get_s(item, "stripe_customer_id").map(str::to_owned),
        subscription_id: get_s(item, "stripe_subscription_id").map(str::to_owned),
    });
    let (started_at, expires_at) = (number("started_at")?, number("expires_at")?);
    Ok(Trial {
        id: TrialId::parse(text("trial_id")?).ok_or_else(|| StoreError::corrupt("trial id"))?,
        org_id: OrgId::parse(text("org_id")?).ok_or_else(|| StoreError::corrupt("org id"))?,
        project_id: match get_s(item, "project_id") {
            Some(p) => Some(
                crate::domain::ProjectId::parse(p)
                    .ok_or_else(|| StoreError::corrupt("project id"))?,
            ),
            None => None,
        },
        plan: Plan::parse(text("plan")?).ok_or_else(|| StoreError::corrupt("plan"))?,
        status: TrialStatus::parse(text("status")?).ok_or_else(|| StoreError::corrupt("status"))?,
        started_at,
        expires_at,
        canceled_at: get_n(item, "canceled_at"),
        converted_at: get_n(item, "converted_at"),
        checkout,
        pending,
        payment,
        terms: match get_s(item, TERMS) {
            Some(json) => TrialTerms::from_json(json)
                .map_err(|e| StoreError::corrupt(format!("trial terms: {e}")))?,
            // Stored before trials kept a snapshot: the built-in plans' terms, which were the
            // only terms there were (a catalog passed in here would add nothing for them).
            None => Catalog::builtin()
                .legacy_terms(text("plan")?)
                .ok_or_else(|| StoreError::corrupt("plan without terms"))?,
        },
        used: match item.get(USED) {
            Some(AttributeValue::M(map)) => map
                .iter()
                .filter_map(|(option, v)| Some((option.clone(), v.as_n().ok()?.parse().ok()?)))
                .collect(),
            _ => BTreeMap::new(),
        },
        usage_keys: super::usage::recorded_keys(item),
        expiry_reason: get_s(item, EXPIRY_REASON).map(str::to_owned),
        paused_at: get_n(item, PAUSED_AT),
        // An item written before ranges were stored has none: an empty list, which the trial
        // reads as its one range `[started_at, expires_at]` (and a write conditions on).
        active_ranges: get_ranges(item)?,
        pauses: get_n(item, PAUSES),
        applicant: applicant_from_item(item)?,
        notes: get_s(item, "notes").map(str::to_owned),
        is_trial_skipped: get_bool(item, "is_trial_skipped").unwrap_or(false),
        subscription: super::subscriptions::subscription_from_item(item),
        activate_by: get_n(item, ACTIVATE_BY),
        downgraded_from: match get_s(item, DOWNGRADED_FROM) {
            Some(p) => Some(Plan::parse(p).ok_or_else(|| StoreError::corrupt("downgraded_from"))?),
            None => None,
        },
        downgraded_at: get_n(item, DOWNGRADED_AT),
    })
}

/// The open checkout session and the payment on its way, each if all its attributes are there.
fn sessions_from_item(item: &Item) -> (Option<Checkout>, Option<PendingPayment>) {
    let checkout = match (
        get_s(item, "checkout_session_id"),
        get_s(item, "checkout_url"),
        get_n(item, "checkout_expires_at"),
    ) {
        (Some(id), Some(url), Some(expires_at)) => Some(Checkout {
            session_id: id.to_owned(),
            url: url.to_owned(),
            expires_at,
            trial_end: get_n(item, "checkout_trial_end"),
        }),
        _ => None,
    };
    let pending = match (
        get_s(item, "pending_session_id"),
        get_n(item, "pending_since"),
    ) {
        (Some(id), Some(since)) => Some(PendingPayment {
            session_id: id.to_owned(),
            since,
        }),
        _ => None,
    };
    (checkout, pending)
}

/// No payment on its way holds the trial: none, or one that started at `:stale` or before
/// (older than the maximum age, see [`Store::with_pending_max_age`]).
pub(super) const NO_PENDING: &str =
    "(attribute_not_exists(pending_session_id) OR pending_since <= :stale)";

/// The trial's [`TrialTerms`] snapshot, as JSON.
pub const TERMS: &str = "terms";
// The usage attributes are the schema's (usage writes them too, and reads none of this
// module).
pub use super::schema::{EXPIRY_REASON, USED};

/// A reverse trial's free plan id, on the item while its terms downgrade: what tells the
/// state machine's conditions its end apart (`store::conditions`). Removed when it downgrades.
pub const DOWNGRADE_TO: &str = "downgrade_to";
/// A DOWNGRADED trial's trialled plan (`Trial::downgraded_from`).
pub const DOWNGRADED_FROM: &str = "downgraded_from";
/// A DOWNGRADED trial's trialled plan's terms (JSON, as `terms`): what a conversion puts back.
pub const TRIALLED_TERMS: &str = "trialled_terms";
/// When a DOWNGRADED trial downgraded (epoch seconds).
pub const DOWNGRADED_AT: &str = "downgraded_at";

/// The trial item's attribute for `Trial::paused_at` (epoch seconds).
pub const PAUSED_AT: &str = "paused_at";
/// The trial item's attribute for `Trial::pauses`: how many times it has paused.
pub const PAUSES: &str = "pauses";
fn get_ranges(item: &Item) -> Result<Vec<ActiveRange>, StoreError> {
    let Some(value) = item.get(ACTIVE_RANGES) else {
        return Ok(Vec::new());
    };
    let corrupt = || StoreError::corrupt("trial active_ranges");
    let list = value.as_l().map_err(|_| corrupt())?;
    list.iter()
        .map(|entry| {
            let map = entry.as_m().map_err(|_| corrupt())?;
            match (get_n(map, "start"), get_n(map, "end")) {
                (Some(start), Some(end)) if start <= end => Ok(ActiveRange::new(start, end)),
                _ => Err(corrupt()),
            }
        })
        .collect()
}

/// The applicant is stored as one JSON string attribute (`applicant`): read back through the
/// same validation as a request (it was valid when written). One that no longer passes (rules
/// tightened since, a hand edit) is dropped with a warning naming the field, never the value:
/// the trial itself must stay readable by the jobs, the webhook and its owner.
fn applicant_from_item(item: &Item) -> Result<Option<Applicant>, StoreError> {
    let Some(raw) = get_s(item, "applicant") else {
        return Ok(None);
    };
    let parsed = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .ok_or("applicant")
        .and_then(|object| Applicant::parse(&object, Privilege::Standard).map_err(|e| e.field));
    match parsed {
        Ok(applicant) => Ok(Some(applicant)),
        Err(field) => {
            tracing::warn!(field, "stored applicant no longer valid; ignored");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges_item(ranges: &[(i64, i64)]) -> Item {
        let list = ranges
            .iter()
            .map(|(start, end)| {
                AttributeValue::M(
                    [("start".to_owned(), n(*start)), ("end".to_owned(), n(*end))].into(),
                )
            })
            .collect();
        Item::from([(ACTIVE_RANGES.to_owned(), AttributeValue::L(list))])
    }

    #[test]
    fn active_ranges_read_back_and_a_range_that_ends_before_it_starts_is_corrupt() {
        assert_eq!(
            get_ranges(&ranges_item(&[(1, 5), (8, 8)])).unwrap(),
            [ActiveRange::new(1, 5), ActiveRange::new(8, 8)]
        );
        assert!(get_ranges(&Item::new()).unwrap().is_empty());
        assert!(matches!(
            get_ranges(&ranges_item(&[(1, 5), (9, 8)])),
            Err(StoreError::Corrupt(_))
        ));
    }
}
