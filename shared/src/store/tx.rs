//! The way the writes leave this crate: a transaction of **named slots**. Every write goes
//! through it but one, `Store::revoke_api_key` (`api_keys`): it needs the item back as written
//! (`ReturnValues = ALL_NEW`, the first revocation time kept by `if_not_exists`), which a
//! transaction cannot give. It is a single conditional `UpdateItem` whose failed condition
//! means "no such key", read the same way as here.
//!
//! Each slot (the trial, the org guard, the idempotency record, an event, the Stripe dedupe
//! record...) carries its own condition and asks for `ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`. [`Tx::commit`] answers:
//! - [`Outcome::Committed`]: every slot was written, all or nothing;
//! - [`Outcome::Rejected`]: some conditions failed, and the [`Rejection`] names each failed slot
//!   with the item as it was. Only `ConditionalCheckFailed` is a domain answer;
//! - `Err(StoreError)`: anything else (validation, throughput, item size, conflicts that
//!   persisted after a few retries), which callers answer with 503 and never store.
//!
//! Nobody decodes cancellation reasons by position: the builder keeps the slot of every item.
//!
//! Cost: a one-slot commit is sent as a plain `PutItem` / `UpdateItem` / `DeleteItem` (half
//! the write units of a one-item transaction); two or more slots are one `TransactWriteItems`.
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::codec::Item;
use super::{Store, StoreError};
use crate::domain::events::{DomainEvent, EventKind};

/// What a transaction item is, for the caller reading a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The trial item.
    Trial,
    /// The org guard: one trial per org, ever.
    OrgGuard,
    /// The request's idempotency record.
    Idempotency,
    /// A domain event item (`EVENT#<id>`), published through the table's stream.
    Event(EventKind),
    /// The Stripe event id already processed (webhook dedupe).
    StripeEvent,
    /// A Checkout Session to expire at Stripe (`SESSION_EXPIRE#<cs_id>`).
    SessionExpiry,
    /// An API key record (`APIKEY#<key_id>`).
    ApiKey,
    /// An API key's listing entry under its org.
    ApiKeyListing,
    /// A funnel counter (`store::stats`): unconditional, it never rejects.
    Stats,
    /// The marker of a funnel event already counted (`COUNTED#<event_id>`, `store::stats`).
    Counted,
    /// A trial's reminder cursor (`REMIND#<trial_id>`).
    Reminder,
    /// An abuse signal's item (`SIGNAL#<kind>#<hmac>`): its condition fails when another org
    /// used the signal within the window.
    Signal(crate::domain::signals::SignalKind),
    /// The operator's one-off allowance for an org (`trialctl trials allow`), consumed by a start.
    Allowance,
    /// Why the org's last start was refused.
    Refusal,
    /// A trial's timeline entry (`store::timeline`): unconditional, it never rejects.
    Timeline,
    /// The reservation of a new trial's integer id (`TRIALNUM#<n>`, [`TrialId::number`]):
    /// fails only if another trial has the same number (never expected: 52 random bits).
    ///
    /// [`TrialId::number`]: crate::domain::TrialId::number
    TrialNumber,
}

/// The conditions that failed, each with its item as it was (`None`: there was no item).
#[derive(Debug, Clone)]
pub struct Rejection {
    failed: Vec<(Slot, Option<Item>)>,
}

impl Rejection {
    /// Whether `slot`'s condition failed.
    pub fn failed(&self, slot: Slot) -> bool {
        self.failed.iter().any(|(s, _)| *s == slot)
    }

    /// The item in `slot` as it was when its condition failed; `None` if the condition did not
    /// fail or no item existed.
    pub fn old(&self, slot: Slot) -> Option<&Item> {
        self.failed
            .iter()
            .find(|(s, _)| *s == slot)
            .and_then(|(_, item)| item.as_ref())
    }

    /// The slots whose conditions failed.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.failed.iter().map(|(s, _)| *s)
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Committed,
    Rejected(Rejection),
}

impl Outcome {
    pub fn committed(&self) -> bool {
        matches!(self, Outcome::Committed)
    }
}

const ALL_OLD: ReturnValuesOnConditionCheckFailure = ReturnValuesOnConditionCheckFailure::AllOld;

/// Attempts at a transaction that DynamoDB cancelled for a conflict with another transaction
/// (real DynamoDB; dynoxide serialises writes and never conflicts).
///
/// **Worst case, stated once.** Conflicts are ours to retry (the SDK does not retry
/// `TransactionCanceledException`); throttles and 5xx are the SDK's
/// ([`crate::aws::dynamodb_retry_config`]: 3 attempts, backoff ≤ 25 then 50 ms). The two never
/// multiply past 4 × 3 = 12 HTTP requests per commit, with at most 140 ms of our pauses
/// (≤ 20 + 40 + 80, each at least half of that) and 4 × 75 ms of the SDK's: well under a second besides
/// DynamoDB's own latency, inside the API functions' 10 s timeout. What still fails is a 503
/// with `Retry-After`, and the client's retry with the same `Idempotency-Key` is safe.
const ATTEMPTS: u32 = 4;

/// A transaction being built: see the module docs.
#[must_use = "a transaction does nothing until it is committed"]
pub struct Tx<'a> {
    store: &'a Store,
    items: Vec<(Slot, TransactWriteItem)>,
    /// The events whose timeline entries the commit adds, with their write time.
    entries: Vec<(DomainEvent, i64)>,
    /// Who makes the change, for the timeline ([`Tx::by`]).
    actor: Option<String>,
}

impl Store {
    pub fn tx(&self) -> Tx<'_> {
        Tx {
            store: self,
            items: Vec::new(),
            entries: Vec::new(),
            actor: None,
        }
    }
}

impl<'a> Tx<'a> {
    /// The store the transaction writes to, for the slot builders other modules add to `Tx`
    /// (`answer` in `idempotency`, `reminder` in `reminders`).
    pub(super) fn store(&self) -> &'a Store {
        self.store
    }

    // Every slot asks for its item as it was when its condition fails (`Rejection::old`).

    pub fn put(self, slot: Slot, mut put: Put) -> Tx<'a> {
        put.return_values_on_condition_check_failure = Some(ALL_OLD);
        self.push(slot, TransactWriteItem::builder().put(put).build())
    }

    pub fn update(self, slot: Slot, mut update: Update) -> Tx<'a> {
        update.return_values_on_condition_check_failure = Some(ALL_OLD);
        self.push(slot, TransactWriteItem::builder().update(update).build())
    }

    pub fn delete(self, slot: Slot, mut delete: Delete) -> Tx<'a> {
        delete.return_values_on_condition_check_failure = Some(ALL_OLD);
        self.push(slot, TransactWriteItem::builder().delete(delete).build())
    }

    pub fn check(self, slot: Slot, mut check: ConditionCheck) -> Tx<'a> {
        check.return_values_on_condition_check_failure = Some(ALL_OLD);
        let item = TransactWriteItem::builder().condition_check(check).build();
        self.push(slot, item)
    }

    fn push(mut self, slot: Slot, item: TransactWriteItem) -> Tx<'a> {
        self.items.push((slot, item));
        self
    }

    /// The domain event's item, in slot `Event(kind)`: it exists exactly when the change does,
    /// and the stream publishes it. Its condition makes a repeated transition unable to write
    /// the same event twice.
    ///
    /// The commit adds the event's timeline entry (`store::timeline`), by [`Tx::by`]'s actor.
    pub fn event(self, event: &DomainEvent, now: i64) -> Result<Tx<'a>, StoreError> {
        let put = self.store.event_put(event, now)?;
        let mut tx = self.put(Slot::Event(event.kind), put);
        tx.entries.push((event.clone(), now));
        Ok(tx)
    }

    /// The API key id that makes this change, for its timeline entries. Unset: `stripe` when
    /// the transaction records a Stripe event (the webhook), else `job`.
    pub fn by(mut self, actor: &str) -> Tx<'a> {
        self.actor = Some(actor.to_owned());
        self
    }

    /// The events' timeline entries, as slots.
    fn add_entries(mut self) -> Result<Tx<'a>, StoreError> {
        let stripe = self.items.iter().any(|(s, _)| *s == Slot::StripeEvent);
        let actor = match self.actor.take() {
            Some(actor) => actor,
            None if stripe => "stripe".to_owned(),
            None => "job".to_owned(),
        };
        for (event, now) in std::mem::take(&mut self.entries) {
            if let Some(put) = self.store.timeline_put(&event, now, &actor)? {
                self = self.put(Slot::Timeline, put);
            }
        }
        Ok(self)
    }

    /// Writes every slot, or none, in one attempt: `Ok(None)` when a transaction was cancelled
    /// for a conflict (nothing written), for a caller that reads again rather than send the
    /// same transaction (`api::usage`: a transaction decided on a read that is likely stale).
    pub async fn commit_once(self) -> Result<Option<Outcome>, StoreError> {
        let tx = self.add_entries()?;
        match tx.items.len() {
            0 | 1 => tx.send().await.map(Some),
            _ => Ok(tx.store.transact_attempts(tx.items, 1).await?.ok()),
        }
    }

    /// Writes every slot, or none.
    pub async fn commit(self) -> Result<Outcome, StoreError> {
        self.add_entries()?.send().await
    }

    async fn send(mut self) -> Result<Outcome, StoreError> {
        match self.items.len() {
            0 => Ok(Outcome::Committed),
            1 => {
                let (slot, item) = self.items.remove(0);
                self.store.write_one(slot, item).await
            }
            _ => self.store.transact(self.items).await,
        }
    }
}

impl Store {
    async fn transact(&self, items: Vec<(Slot, TransactWriteItem)>) -> Result<Outcome, StoreError> {
        self.transact_attempts(items, ATTEMPTS)
            .await?
            .map_err(|detail| {
                StoreError::Unavailable(format!(
                    "transaction still conflicting after {ATTEMPTS} attempts: {detail}"
                ))
            })
    }

    /// The transaction, sent up to `attempts` times while it is cancelled for a conflict;
    /// `Ok(Err(detail))` when the last attempt still conflicted.
    async fn transact_attempts(
        &self,
        items: Vec<(Slot, TransactWriteItem)>,
        attempts: u32,
    ) -> Result<Result<Outcome, String>, StoreError> {
        let (slots, items): (Vec<Slot>, Vec<TransactWriteItem>) = items.into_iter().unzip();
        // Bounded by construction: a conflict that persists ends as a retryable failure.
        let mut last_conflict = String::new();
        for attempt in 1..=attempts {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Ok(Outcome::Committed)),
                Err(e) => e,
            };
            let reasons: Vec<(Option<String>, Option<Item>)> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| (r.code().map(str::to_owned), r.item().cloned()))
                    .collect(),
                _ => return Err(StoreError::from_sdk(err)),
            };
            match classify(&slots, reasons) {
                Verdict::Rejected(rejection) => return Ok(Ok(Outcome::Rejected(rejection))),
                Verdict::Conflict(detail) => {
                    tracing::debug!(attempt, detail, "transaction conflict; retrying");
                    last_conflict = detail;
                    if attempt < attempts {
                        tokio::time::sleep(conflict_backoff(attempt)).await;
                    }
                }
                Verdict::Failed(e) => return Err(e),
            }
        }
        Ok(Err(last_conflict))
    }

    /// One slot as a single-item write: same condition, same answer, half the cost.
    async fn write_one(&self, slot: Slot, item: TransactWriteItem) -> Result<Outcome, StoreError> {
        use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        // The part every single-item write shares: the condition, asking for the old item, and
        // reading a failure as (code, old item on a failed condition, detail).
        macro_rules! send {
            ($request:expr, $write:ident, $error:ident) => {
                $request
                    .table_name($write.table_name)
                    .set_condition_expression($write.condition_expression)
                    .set_expression_attribute_names($write.expression_attribute_names)
                    .set_expression_attribute_values($write.expression_attribute_values)
                    .return_values_on_condition_check_failure(ALL_OLD)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        failure(e, |se| match se {
                            $error::ConditionalCheckFailedException(c) => Some(c.item.clone()),
                            _ => None,
                        })
                    })
            };
        }
        let sent = if let Some(p) = item.put {
            send!(
                self.client.put_item().set_item(Some(p.item)),
                p,
                PutItemError
            )
        } else if let Some(u) = item.update {
            let request = self.client.update_item().set_key(Some(u.key));
            send!(
                request.update_expression(u.update_expression),
                u,
                UpdateItemError
            )
        } else if let Some(d) = item.delete {
            send!(
                self.client.delete_item().set_key(Some(d.key)),
                d,
                DeleteItemError
            )
        } else {
            // A lone condition check writes nothing: it has to go as a transaction.
            return self.transact(vec![(slot, item)]).await;
        };
        match sent {
            Ok(()) => Ok(Outcome::Committed),
            Err((Some(code), old, _)) if code == CONDITION_FAILED => {
                Ok(Outcome::Rejected(Rejection {
                    failed: vec![(slot, old)],
                }))
            }
            Err((code, _, detail)) => Err(StoreError::from_code(code.as_deref(), detail)),
        }
    }
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

impl Store {
    /// One conditional `UpdateItem` that answers with the attributes it set (`UPDATED_NEW`), or
    /// with the item as it was when its condition failed (`Err(old)`, `None`: no item). A
    /// `TransactionConflictException` (a transaction held the item: the update was not
    /// applied) is retried like a cancelled transaction, [`ATTEMPTS`] times at most.
    pub async fn update_returning(
        &self,
        update: Update,
    ) -> Result<Result<Item, Option<Item>>, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::ReturnValue;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .update_item()
                .table_name(update.table_name.clone())
                .set_key(Some(update.key.clone()))
                .update_expression(update.update_expression.clone())
                .set_condition_expression(update.condition_expression.clone())
                .set_expression_attribute_names(update.expression_attribute_names.clone())
                .set_expression_attribute_values(update.expression_attribute_values.clone())
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ALL_OLD)
                .send()
                .await;
            let err = match sent {
                Ok(out) => return Ok(Ok(out.attributes.unwrap_or_default())),
                Err(e) => failure(e, |se| match se {
                    UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item.clone()),
                    _ => None,
                }),
            };
            match err {
                (Some(code), old, _) if code == CONDITION_FAILED => return Ok(Err(old)),
                (Some(code), _, detail)
                    if code == "TransactionConflictException" && attempt < ATTEMPTS =>
                {
                    tracing::debug!(attempt, detail, "update conflicts with a transaction");
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                (code, _, detail) => return Err(StoreError::from_code(code.as_deref(), detail)),
            }
        }
    }
}

/// An SDK failure of a single write as (code, old item on a failed condition, detail).
/// `failed_condition` answers `Some(old item)` for a failed condition, `None` for any other
/// service error.
fn failure<E, R>(
    err: SdkError<E, R>,
    failed_condition: impl Fn(&E) -> Option<Option<Item>>,
) -> (Option<String>, Option<Item>, String)
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let detail = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    match err.as_service_error() {
        Some(se) => match failed_condition(se) {
            Some(old) => (Some(CONDITION_FAILED.to_owned()), old, detail),
            None => (se.code().map(str::to_owned), None, detail),
        },
        None => (None, None, detail),
    }
}

enum Verdict {
    Rejected(Rejection),
    Conflict(String),
    Failed(StoreError),
}

/// Reads a cancelled transaction's reasons, item by item: any reason other than a failed
/// condition (or `None`, an item that was fine) is a store failure, even when some condition
/// failed too; conflicts and throttling are retried.
fn classify(slots: &[Slot], reasons: Vec<(Option<String>, Option<Item>)>) -> Verdict {
    let mut failed = Vec::new();
    let mut conflict = None;
    for (slot, (code, item)) in slots.iter().zip(reasons) {
        match code.as_deref() {
            None | Some("None") => {}
            Some(CONDITION_FAILED) => failed.push((*slot, item)),
            Some(
                c @ ("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"),
            ) => {
                conflict = Some(format!("{slot:?}: {c}"));
            }
            Some(other) => {
                return Verdict::Failed(StoreError::from_code(
                    Some(other),
                    format!("transaction cancelled: {slot:?}: {other}"),
                ))
            }
        }
    }
    match conflict {
        Some(detail) => Verdict::Conflict(detail),
        None if !failed.is_empty() => Verdict::Rejected(Rejection { failed }),
        None => Verdict::Failed(StoreError::Unavailable(
            "transaction cancelled without a reason".into(),
        )),
    }
}

/// The most the pause after the `attempt`-th conflicting attempt may be: 20, 40, 80 ms
/// (doubling).
fn conflict_backoff_cap(attempt: u32) -> Duration {
    Duration::from_millis(10 * 2u64.pow(attempt))
}

/// The pause after the `attempt`-th conflicting attempt: between half its cap and its cap
/// ("equal jitter"). Jittered, so the transactions that conflicted spread out instead of
/// meeting again after the same pause; never near zero, because what they conflicted with
/// holds its items for the length of a transaction (tens of milliseconds), and a retry sooner
/// only meets it again (full jitter did, under `make chaos`).
pub fn conflict_backoff(attempt: u32) -> Duration {
    let cap = conflict_backoff_cap(attempt).as_micros() as u64;
    let half = cap / 2;
    let mut bytes = [0u8; 8];
    // The OS's randomness; should it ever fail, the cap itself is still a valid pause.
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => Duration::from_micros(half + u64::from_le_bytes(bytes) % (cap - half).max(1)),
        Err(_) => Duration::from_micros(cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transaction_with_nothing_in_it_commits_without_a_request() {
        // A client that cannot reach anything: a request would fail, not commit.
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let store = Store::new(client, "trials", 1);
        assert!(matches!(store.tx().commit().await, Ok(Outcome::Committed)));
    }

    #[test]
    fn conflicts_back_off_between_half_a_doubling_cap_and_the_cap() {
        let caps: Vec<u128> = (1..ATTEMPTS)
            .map(|a| conflict_backoff_cap(a).as_millis())
            .collect();
        assert_eq!(caps, [20, 40, 80]);
        for attempt in 1..ATTEMPTS {
            let pauses: Vec<Duration> = (0..64).map(|_| conflict_backoff(attempt)).collect();
            let cap = conflict_backoff_cap(attempt);
            assert!(
                pauses.iter().all(|p| *p >= cap / 2 && *p < cap),
                "{pauses:?}"
            );
            // Jittered: 64 draws below the cap are not all one value.
            assert!(pauses.iter().any(|p| *p != pauses[0]), "{pauses:?}");
        }
    }

    fn reason(code: &str) -> (Option<String>, Option<Item>) {
        (Some(code.to_owned()), None)
    }

    #[test]
    fn a_failed_condition_is_named_by_its_slot_not_its_position() {
        let slots = [Slot::OrgGuard, Slot::Trial, Slot::Idempotency];
        let Verdict::Rejected(r) = classify(
            &slots,
            vec![reason("None"), reason("None"), reason(CONDITION_FAILED)],
        ) else {
            panic!("expected a rejection");
        };
        assert!(r.failed(Slot::Idempotency));
        assert!(!r.failed(Slot::OrgGuard));
        assert_eq!(r.slots().collect::<Vec<_>>(), vec![Slot::Idempotency]);
    }

    #[test]
    fn any_other_cancellation_reason_is_a_store_failure_not_an_answer() {
        let slots = [Slot::OrgGuard, Slot::Trial];
        for code in ["ValidationError", "ItemCollectionSizeLimitExceeded"] {
            // Even beside a failed condition: the outcome of the request is unknown.
            match classify(&slots, vec![reason(CONDITION_FAILED), reason(code)]) {
                Verdict::Failed(e) => assert!(!e.retryable(), "{code}"),
                _ => panic!("{code} must be a store failure"),
            }
        }
        assert!(matches!(
            classify(&slots, vec![reason("None"), reason("TransactionConflict")]),
            Verdict::Conflict(_)
        ));
        assert!(matches!(
            classify(&slots, vec![reason("None"), reason("None")]),
            Verdict::Failed(_)
        ));
    }
}
