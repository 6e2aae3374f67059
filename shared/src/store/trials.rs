//! Trial items and the guard that keeps one trial per organization, and every transition as a
//! conditional write or transaction.
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::codec::{get_bool, get_n, get_s, key, n, s, Item, Values};
use super::keys::{org_pk, trial_pk, DueQueue, DUE_AT, DUE_PK, GUARD_SK, TRIAL_SK};
use super::{Store, StoreError};
use crate::domain::trial::{Checkout, Payment};
use crate::domain::{ActiveRange, OrgId, Plan, Trial, TrialId, TrialPolicy, TrialStatus};

/// Why one item of a cancelled transaction failed: DynamoDB's code and, for condition
/// failures, the item as it was.
#[derive(Debug, Clone)]
pub struct Reason {
    pub code: String,
    pub item: Option<Item>,
}

impl Reason {
    pub fn condition_failed(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

/// The org guard: the org's one trial, for ever (it survives purge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub trial_id: Option<TrialId>,
    pub purged: bool,
}

impl Guard {
    fn from_item(item: &Item) -> Guard {
        Guard {
            trial_id: get_s(item, "trial_id").and_then(TrialId::parse),
            purged: get_bool(item, "purged").unwrap_or(false),
        }
    }
}

/// Why a start was refused.
#[derive(Debug, Clone)]
pub enum StartRejected {
    /// The idempotency record exists (a retry, a reuse, or a request in flight).
    Idempotency(Option<Item>),
    /// The org already had its trial.
    OrgHasTrial(Guard),
}

/// Why a transition on an existing trial was refused: the trial as it is now, or `None` if it
/// no longer exists; or the idempotency record that was in the way.
#[derive(Debug, Clone)]
pub enum TransitionRejected {
    Trial(Option<Box<Trial>>),
    Idempotency(Option<Item>),
}

/// Why [`Store::mark_converted`] did not commit.
#[derive(Debug, Clone)]
pub enum ConvertRejected {
    /// No such trial (never ours, or purged).
    NotFound,
    /// Already CONVERTED: the trial as it is.
    AlreadyConverted(Box<Trial>),
    /// Item `i` of `extra` failed its condition (e.g. the webhook's dedupe record exists).
    Extra(usize),
}

const TRANSACTION_ATTEMPTS: u32 = 4;

impl Store {
    /// Runs a transaction. `Ok(Err(reasons))` when DynamoDB cancelled it on a condition;
    /// transaction conflicts (real DynamoDB, not dynoxide) are retried a few times first.
    pub async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<Reason>>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| Reason {
                        code: r.code().unwrap_or("None").to_owned(),
                        item: r.item().cloned(),
                    })
                    .collect::<Vec<_>>(),
                _ => return Err(StoreError::from_sdk(err)),
            };
            let conflicted = reasons
                .iter()
                .any(|r| r.code == "TransactionConflict" || r.code == "ThrottlingError");
            let condition_failed = reasons.iter().any(Reason::condition_failed);
            if condition_failed || !conflicted {
                return Ok(Err(reasons));
            }
            if attempt >= TRANSACTION_ATTEMPTS {
                return Err(StoreError(format!(
                    "transaction still conflicting after {attempt} attempts"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10 * 2u64.pow(attempt))).await;
        }
    }

    /// Writes the trial, the org guard, the idempotency record and the `trial.started` event in
    /// one transaction: the org's only trial exists exactly when all four do.
    pub async fn start_trial(
        &self,
        trial: &Trial,
        idempotency: Put,
        event: Put,
        policy: TrialPolicy,
    ) -> Result<Result<(), StartRejected>, StoreError> {
        let mut guard = key(org_pk(&trial.org_id), GUARD_SK);
        guard.insert("trial_id".into(), s(trial.id.as_str()));
        guard.insert("created_at".into(), n(trial.started_at));
        let guard = Put::builder()
            .table_name(&self.table)
            .set_item(Some(guard))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let trial_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.trial_item(trial, policy)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let items = vec![
            TransactWriteItem::builder().put(guard).build(),
            TransactWriteItem::builder().put(trial_put).build(),
            TransactWriteItem::builder().put(idempotency).build(),
            TransactWriteItem::builder().put(event).build(),
        ];
        Ok(self.transact(items).await?.map_err(|reasons| {
            if let Some(r) = reasons.get(2).filter(|r| r.condition_failed()) {
                return StartRejected::Idempotency(r.item.clone());
            }
            let guard = reasons
                .first()
                .and_then(|r| r.item.as_ref())
                .map(Guard::from_item)
                .unwrap_or(Guard {
                    trial_id: None,
                    purged: false,
                });
            StartRejected::OrgHasTrial(guard)
        }))
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

    pub async fn get_guard(&self, org: &OrgId) -> Result<Option<Guard>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(org), GUARD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(out.item.as_ref().map(Guard::from_item))
    }

    /// ACTIVE -> CANCELED, with the idempotency record and the event, in one transaction.
    pub async fn cancel_trial(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
        idempotency: Put,
        event: Put,
    ) -> Result<Result<(), TransitionRejected>, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(
                "SET #status = :canceled, canceled_at = :now, due_pk = :due_pk, due_at = :due_at",
            )
            .condition_expression(
                "attribute_exists(pk) AND org_id = :org AND #status = :active AND expires_at > :now",
            )
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":canceled", TrialStatus::Canceled.as_str())
                    .s(":active", TrialStatus::Active.as_str())
                    .s(":org", trial.org_id.as_str())
                    .n(":now", now)
                    .s(
                        ":due_pk",
                        DueQueue::Purge.partition_for(trial.id.as_str(), self.shards),
                    )
                    .n(":due_at", now + policy.grace_secs)
                    .build(),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        self.transition(update, idempotency, event).await
    }

    /// Stores the checkout session a convert opened, if the trial may still convert at `now` and
    /// holds no other open session (one session per trial, whatever races).
    pub async fn record_checkout(
        &self,
        trial: &Trial,
        checkout: &Checkout,
        now: i64,
        policy: TrialPolicy,
        idempotency: Put,
        event: Put,
    ) -> Result<Result<(), TransitionRejected>, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression(
                "SET checkout_session_id = :sid, checkout_url = :url, checkout_expires_at = :cexp",
            )
            .condition_expression(
                "attribute_exists(pk) AND org_id = :org AND (#status = :active OR #status = :expired) AND expires_at > :grace_cutoff \
                 AND (attribute_not_exists(checkout_session_id) OR checkout_expires_at <= :now OR checkout_session_id = :sid)",
            )
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":sid", &checkout.session_id)
                    .s(":url", &checkout.url)
                    .n(":cexp", checkout.expires_at)
                    .s(":org", trial.org_id.as_str())
                    .s(":active", TrialStatus::Active.as_str())
                    .s(":expired", TrialStatus::Expired.as_str())
                    .n(":now", now)
                    .n(":grace_cutoff", now - policy.grace_secs)
                    .build(),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        self.transition(update, idempotency, event).await
    }

    async fn transition(
        &self,
        update: Update,
        idempotency: Put,
        event: Put,
    ) -> Result<Result<(), TransitionRejected>, StoreError> {
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(idempotency).build(),
            TransactWriteItem::builder().put(event).build(),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(Ok(())),
            Err(reasons) => {
                if let Some(r) = reasons.get(1).filter(|r| r.condition_failed()) {
                    return Ok(Err(TransitionRejected::Idempotency(r.item.clone())));
                }
                let current = reasons
                    .first()
                    .and_then(|r| r.item.as_ref())
                    .map(trial_from_item)
                    .transpose()?
                    .map(Box::new);
                Ok(Err(TransitionRejected::Trial(current)))
            }
        }
    }

    /// A completed payment: any state but CONVERTED becomes CONVERTED. `extra` (the webhook's
    /// dedupe record, the event) commits with it, all or nothing.
    pub async fn mark_converted(
        &self,
        id: &TrialId,
        payment: &Payment,
        now: i64,
        extra: Vec<TransactWriteItem>,
    ) -> Result<Result<(), ConvertRejected>, StoreError> {
        let mut values = Values::new()
            .s(":converted", TrialStatus::Converted.as_str())
            .n(":now", now);
        let mut set = vec!["#status = :converted", "converted_at = :now"];
        for (attr, placeholder, value) in [
            ("stripe_customer_id", ":customer", &payment.customer_id),
            (
                "stripe_subscription_id",
                ":subscription",
                &payment.subscription_id,
            ),
            ("paid_session_id", ":session", &payment.session_id),
        ] {
            if let Some(v) = value {
                values = values.s(placeholder, v);
                set.push(match attr {
                    "stripe_customer_id" => "stripe_customer_id = :customer",
                    "stripe_subscription_id" => "stripe_subscription_id = :subscription",
                    _ => "paid_session_id = :session",
                });
            }
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .update_expression(format!(
                "SET {} REMOVE due_pk, due_at, checkout_session_id, checkout_url, checkout_expires_at",
                set.join(", ")
            ))
            .condition_expression("attribute_exists(pk) AND #status <> :converted")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(values.build())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(extra);
        let reasons = match self.transact(items).await? {
            Ok(()) => return Ok(Ok(())),
            Err(reasons) => reasons,
        };
        // An extra item first: a delivery already processed says nothing about the trial.
        if let Some(i) = reasons.iter().skip(1).position(Reason::condition_failed) {
            return Ok(Err(ConvertRejected::Extra(i)));
        }
        match reasons.first().filter(|r| r.condition_failed()) {
            Some(Reason {
                item: Some(item), ..
            }) => Ok(Err(ConvertRejected::AlreadyConverted(Box::new(
                trial_from_item(item)?,
            )))),
            Some(_) => Ok(Err(ConvertRejected::NotFound)),
            None => Err(StoreError(format!(
                "convert cancelled without a failed condition: {reasons:?}"
            ))),
        }
    }

    /// Forgets the trial's open checkout session `session_id` (it expired or its payment
    /// failed), unless the trial converted meanwhile or has moved on to another session.
    pub fn clear_checkout_update(
        &self,
        id: &TrialId,
        session_id: &str,
    ) -> Result<Update, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .update_expression("REMOVE checkout_session_id, checkout_url, checkout_expires_at")
            .condition_expression("checkout_session_id = :sid AND #status <> :converted")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":sid", session_id)
                    .s(":converted", TrialStatus::Converted.as_str())
                    .build(),
            )
            .build()?)
    }

    /// The expire job's write: ACTIVE -> EXPIRED only if still ACTIVE and due, so it is safe to
    /// race convert, cancel, the webhook and another run of itself.
    pub fn expire_update(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Update, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .update_expression("SET #status = :expired, due_pk = :due_pk, due_at = :due_at")
            .condition_expression("#status = :active AND expires_at <= :now")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":expired", TrialStatus::Expired.as_str())
                    .s(":active", TrialStatus::Active.as_str())
                    .n(":now", now)
                    .s(
                        ":due_pk",
                        DueQueue::Purge.partition_for(trial.id.as_str(), self.shards),
                    )
                    .n(":due_at", trial.expires_at + policy.grace_secs)
                    .build(),
            )
            .build()?)
    }

    /// The purge job's writes: delete the trial if its grace has ended (condition re-checked by
    /// DynamoDB), and mark the org guard purged so the org still cannot start again.
    pub fn purge_writes(
        &self,
        trial: &Trial,
        now: i64,
        policy: TrialPolicy,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let cutoff = now - policy.grace_secs;
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(&trial.id), TRIAL_SK)))
            .condition_expression(
                "((#status = :expired OR #status = :active) AND expires_at <= :cutoff) OR (#status = :canceled AND canceled_at <= :cutoff)",
            )
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(
                Values::new()
                    .s(":expired", TrialStatus::Expired.as_str())
                    .s(":active", TrialStatus::Active.as_str())
                    .s(":canceled", TrialStatus::Canceled.as_str())
                    .n(":cutoff", cutoff)
                    .build(),
            )
            .build()?;
        let guard = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(&trial.org_id), GUARD_SK)))
            .update_expression("SET purged = :true, purged_at = :now")
            .set_expression_attribute_values(Values::new().n(":now", now).build().map(|mut v| {
                v.insert(
                    ":true".into(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                );
                v
            }))
            .build()?;
        Ok(vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(guard).build(),
        ])
    }

    /// A condition that the trial still exists, for transactions that must not create it.
    pub fn trial_exists_check(&self, id: &TrialId) -> Result<ConditionCheck, StoreError> {
        Ok(ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(trial_pk(id), TRIAL_SK)))
            .condition_expression("attribute_exists(pk)")
            .build()?)
    }

    /// The item a trial is stored as (public for bulk seeding in benchmarks).
    pub fn trial_item(&self, trial: &Trial, policy: TrialPolicy) -> Item {
        let mut item = key(trial_pk(&trial.id), TRIAL_SK);
        item.insert("trial_id".into(), s(trial.id.as_str()));
        item.insert("org_id".into(), s(trial.org_id.as_str()));
        item.insert("plan".into(), s(trial.plan.as_str()));
        item.insert("status".into(), s(trial.status.as_str()));
        item.insert("started_at".into(), n(trial.started_at));
        item.insert("expires_at".into(), n(trial.expires_at));
        let lifecycle = trial.lifecycle(policy);
        let due = match trial.status {
            TrialStatus::Active => Some((DueQueue::Expire, trial.expires_at)),
            _ => lifecycle.purge_due_at().map(|at| (DueQueue::Purge, at)),
        };
        if let Some((queue, at)) = due {
            item.insert(
                DUE_PK.into(),
                s(queue.partition_for(trial.id.as_str(), self.shards)),
            );
            item.insert(DUE_AT.into(), n(at));
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
    let checkout = match (
        get_s(item, "checkout_session_id"),
        get_s(item, "checkout_url"),
        get_n(item, "checkout_expires_at"),
    ) {
        (Some(id), Some(url), Some(expires_at)) => Some(Checkout {
            session_id: id.to_owned(),
            url: url.to_owned(),
            expires_at,
        }),
        _ => None,
    };
    let payment = get_n(item, "converted_at").map(|_| Payment {
        session_id: get_s(item, "paid_session_id").map(str::to_owned),
        customer_id: get_s(item, "stripe_customer_id").map(str::to_owned),
        subscription_id: get_s(item, "stripe_subscription_id").map(str::to_owned),
    });
    let (started_at, expires_at) = (number("started_at")?, number("expires_at")?);
    Ok(Trial {
        id: TrialId::parse(text("trial_id")?).ok_or_else(|| StoreError::corrupt("trial id"))?,
        org_id: OrgId::parse(text("org_id")?).ok_or_else(|| StoreError::corrupt("org id"))?,
        plan: Plan::parse(text("plan")?).ok_or_else(|| StoreError::corrupt("plan"))?,
        status: TrialStatus::parse(text("status")?).ok_or_else(|| StoreError::corrupt("status"))?,
        started_at,
        expires_at,
        canceled_at: get_n(item, "canceled_at"),
        converted_at: get_n(item, "converted_at"),
        checkout,
        payment,
        // Not stored yet: no route pauses or extends, so every trial so far ran in one range.
        paused_at: None,
        active_ranges: vec![ActiveRange::new(started_at, expires_at)],
    })
}
