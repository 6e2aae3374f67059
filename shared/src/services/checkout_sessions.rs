//! Checkout Sessions at Stripe, for both layers that touch them: creating one for a trial
//! (convert and skip, in `api`) and expiring the one a canceled trial left open (cancel right
//! after its commit, and the expire function's `expire-sessions` run in `jobs` for what cancel
//! could not finish).
//!
//! **Creating.** The session's parameters are a pure function of the trial and when billing
//! starts, and Stripe gets an `Idempotency-Key` derived from the caller's
//! ([`stripe_idempotency_key`]): a retry after a crash between Stripe's answer and our write
//! gets Stripe's same session, not a second one. The one input that moves is the clock, across
//! the 48-hour line of `subscription_data[trial_end]`: [`create_checkout`] then asks once more
//! as the first attempt asked (see `api::convert` for the whole story). Cost: one Stripe call,
//! two in that retry; no DynamoDB request (the caller writes the session on the trial).
//!
//! **Expiring. Invariant: the work exists exactly when the cancel does.** Cancel writes a work
//! item (`SESSION_EXPIRE#<cs_id>`, in the `due` index's sharded `SESSION_EXPIRE#<s>` queue, due
//! at once) in the same transaction as the transition ([`SessionToExpire::put`]). After the
//! commit it asks Stripe to expire the session within the invocation's deadline
//! ([`expire_now`]) and deletes the item when Stripe confirms, or answers that the session is no
//! longer open (expired, or complete: paid before the cancel). If Stripe cannot be reached,
//! answers late, or the function dies right after the commit, the item stays, and the job
//! retries it with a growing back-off ([`backoff_secs`]: 1, 2, 4... minutes, at most an hour).
//! An item is moot once the session's own `expires_at` has passed (Stripe then expires it by
//! itself, 24 hours after creation at most): the job deletes it without calling Stripe, and the
//! item's TTL removes any leftover. So retries end by themselves within a day. Cost: one more
//! item in the cancel's transaction, one `DeleteItem` when Stripe confirms; each retry is one
//! Stripe call (two when Stripe refuses because the session is no longer open) and one write.
use std::time::Duration;

use aws_sdk_dynamodb::types::{Delete, Put, Update};

use crate::crypto;
use crate::domain::trial::Checkout;
use crate::domain::{Trial, TrialId, TrialStatus};
use crate::store::codec::{get_n, get_s, key, n, s, Item, Values};
use crate::store::idempotency::IdemScope;
use crate::store::schema::{session_expiry_pk, DueQueue, DUE_AT, DUE_PK, SESSION_EXPIRY_SK, TTL};
use crate::store::{Slot, Store, StoreError};
use crate::stripe::client::{NewCheckoutSession, SessionExpiry, StripeError};
use crate::App;

/// Stripe's minimum lead of `subscription_data[trial_end]` over the time of the call.
pub const TRIAL_END_MIN_LEAD_SECS: i64 = 48 * 3_600;
/// Kept on top of Stripe's minimum: Stripe checks against its own clock when the request
/// arrives, a little after ours was read.
pub const TRIAL_END_MARGIN_SECS: i64 = 600;

/// When the subscription's first charge happens, as the caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingStarts {
    /// At the trial's end, if Stripe allows it (see the module docs); else as `Now`.
    TrialEnd,
    /// When the customer pays.
    Now,
}

impl BillingStarts {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingStarts::TrialEnd => "trial_end",
            BillingStarts::Now => "now",
        }
    }

    /// How the session `checkout` bills: from its trial end if it has one, else at payment.
    pub fn of(checkout: &Checkout) -> BillingStarts {
        match checkout.trial_end {
            Some(_) => BillingStarts::TrialEnd,
            None => BillingStarts::Now,
        }
    }
}

/// Why no session was created. The api maps these to its error catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutError {
    /// The catalog has no Stripe price for the trial's plan (409 `plan_not_purchasable`).
    NotPurchasable(String),
    /// Stripe failed, refused or timed out (502 `payment_provider_error`, retryable).
    Provider,
}

/// What one session request brings besides the trial: the caller's idempotency scope (Stripe's
/// key derives from it) and when billing is to start.
pub struct SessionRequest<'a> {
    pub scope: &'a IdemScope,
    pub billing: BillingStarts,
}

/// The `subscription_data[trial_end]` a convert asked at `now` sends: the trial's end when
/// billing is to start there and Stripe accepts it, else none (billing starts at payment).
pub fn trial_end_for(expires_at: i64, billing: BillingStarts, now: i64) -> Option<i64> {
    let far_enough = expires_at - now >= TRIAL_END_MIN_LEAD_SECS + TRIAL_END_MARGIN_SECS;
    (billing == BillingStarts::TrialEnd && far_enough).then_some(expires_at)
}

/// Asks Stripe for a subscription checkout of the trial's plan, billing as the request asks at
/// `now` (see the module docs for the retry across the 48-hour line). Any failure (4xx, 5xx,
/// timeout) is the provider's: 502, retryable, the trial untouched.
pub async fn create_checkout(
    app: &App,
    trial: &Trial,
    request: &SessionRequest<'_>,
    now: i64,
    budget: Duration,
) -> Result<Checkout, CheckoutError> {
    // A PAUSED trial's `expires_at` is the end before the pause: it bills from its time left,
    // counted from now. That end moves with the clock, so it is part of Stripe's key: a retry
    // gets a session of its own (the first one's page was never handed out, it expires unpaid)
    // rather than Stripe's `idempotency_error`. Whether there is a trial end at all does not
    // move: the time left is frozen.
    let free_until = trial.billing_end(now);
    let key = match trial.status {
        TrialStatus::Paused => format!(
            "{}-{free_until}",
            stripe_idempotency_key(request.scope, &trial.id)
        ),
        _ => stripe_idempotency_key(request.scope, &trial.id),
    };
    let ends = tokio::time::Instant::now() + budget;
    let mut trial_end = trial_end_for(free_until, request.billing, now);
    let mut created = app
        .stripe
        .create_checkout_session(&new_session(app, trial, trial_end)?, &key, Some(budget))
        .await;
    if request.billing == BillingStarts::TrialEnd && is_idempotency_error(&created) {
        // This request was first sent on the other side of the 48-hour line: ask again as it
        // was asked then, and Stripe answers with the session it saved for it.
        trial_end = match trial_end {
            Some(_) => None,
            None => Some(free_until),
        };
        let left = ends.saturating_duration_since(tokio::time::Instant::now());
        created = app
            .stripe
            .create_checkout_session(&new_session(app, trial, trial_end)?, &key, Some(left))
            .await;
    }
    match created {
        Ok(created) => Ok(Checkout {
            session_id: created.id,
            url: created.url,
            expires_at: created.expires_at,
            trial_end,
        }),
        Err(e) => {
            tracing::warn!(error = %e, trial_id = %trial.id, "Stripe checkout session not created");
            Err(CheckoutError::Provider)
        }
    }
}

fn is_idempotency_error<T>(result: &Result<T, StripeError>) -> bool {
    matches!(result, Err(StripeError::Api(e)) if e.error_type == "idempotency_error")
}

/// The session's parameters: a pure function of the trial and `trial_end` (and the plan's price
/// today: a price is not part of a trial's terms; none means the catalog offers the plan for
/// trial only).
fn new_session(
    app: &App,
    trial: &Trial,
    trial_end: Option<i64>,
) -> Result<NewCheckoutSession, CheckoutError> {
    let stripe = &app.config.stripe;
    // A DOWNGRADED trial buys the plan it trialled, not its free plan.
    let plan = trial.trialled_plan();
    let price = app
        .config
        .catalog
        .get(plan.as_str())
        .and_then(|p| p.stripe_price.clone())
        .ok_or_else(|| CheckoutError::NotPurchasable(plan.to_string()))?;
    Ok(NewCheckoutSession {
        price,
        quantity: 1,
        success_url: stripe.success_url.clone(),
        cancel_url: stripe.cancel_url.clone(),
        client_reference_id: trial.id.to_string(),
        metadata: vec![
            ("trial_id".to_owned(), trial.id.to_string()),
            ("org_id".to_owned(), trial.org_id.to_string()),
            ("plan".to_owned(), plan.as_str().to_owned()),
            ("trial_started_at".to_owned(), trial.started_at.to_string()),
        ],
        trial_end,
    })
}

/// Time kept back from the invocation's deadline to write the outcome (or release the key)
/// after Stripe answers or the call is abandoned.
pub const WRITE_MARGIN_MS: i64 = 1_000;

/// How long the Stripe call may take: the configured timeout, cut short so that the answer can
/// still be written, or the key released with a 502, before the invocation is killed (a killed
/// invocation leaves its lease to run out and API Gateway answers for us). With no usable
/// deadline (local server, a deadline already past) the configured timeout applies.
pub fn stripe_budget(configured: Duration, deadline_ms: Option<i64>, now_ms: i64) -> Duration {
    match deadline_ms.map(|d| d - now_ms) {
        Some(remaining) if remaining > 0 => {
            let usable = (remaining - WRITE_MARGIN_MS).max(1) as u64;
            configured.min(Duration::from_millis(usable))
        }
        _ => configured,
    }
}

/// Stripe's key for our request: the same for every retry of it, different for any other.
pub fn stripe_idempotency_key(scope: &IdemScope, trial: &TrialId) -> String {
    format!(
        "trials-convert-{}",
        crypto::sha256_hex(format!("{}\n{}\n{}", scope.org, scope.key, trial).as_bytes())
    )
}

/// How long an item outlives the session it is about (DynamoDB's TTL sweep then removes it,
/// should the job never get to it).
const KEEP_AFTER_SESSION_SECS: i64 = 86_400;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 3_600;

/// A Checkout Session to expire at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToExpire {
    pub session_id: String,
    /// The canceled trial the session was opened for (for the log).
    pub trial_id: TrialId,
    /// When Stripe expires the session by itself: after that, nothing is left to do.
    pub session_expires_at: i64,
    /// Attempts that failed so far.
    pub attempts: i64,
}

impl SessionToExpire {
    pub fn new(trial: &Trial, checkout: &Checkout) -> SessionToExpire {
        SessionToExpire {
            session_id: checkout.session_id.clone(),
            trial_id: trial.id.clone(),
            session_expires_at: checkout.expires_at,
            attempts: 0,
        }
    }

    /// The item, due at `now`, for the cancel's transaction ([`Slot::SessionExpiry`]). No
    /// condition: writing it twice (a cancel retried after a store failure) is harmless.
    pub fn put(&self, store: &Store, now: i64) -> Result<Put, StoreError> {
        let mut item = key(session_expiry_pk(&self.session_id), SESSION_EXPIRY_SK);
        item.insert("session_id".into(), s(&self.session_id));
        item.insert("trial_id".into(), s(self.trial_id.as_str()));
        item.insert("session_expires_at".into(), n(self.session_expires_at));
        item.insert("attempts".into(), n(self.attempts));
        item.insert(
            DUE_PK.into(),
            s(DueQueue::SessionExpire.partition_for(&self.session_id, store.shards())),
        );
        item.insert(DUE_AT.into(), n(now));
        item.insert(
            TTL.into(),
            n(self.session_expires_at + KEEP_AFTER_SESSION_SECS),
        );
        Ok(Put::builder()
            .table_name(store.table_name())
            .set_item(Some(item))
            .build()?)
    }

    pub fn from_item(item: &Item) -> Result<SessionToExpire, StoreError> {
        let corrupt = |what: &str| StoreError::corrupt(format!("session to expire without {what}"));
        Ok(SessionToExpire {
            session_id: get_s(item, "session_id")
                .ok_or_else(|| corrupt("session_id"))?
                .to_owned(),
            trial_id: get_s(item, "trial_id")
                .and_then(TrialId::parse)
                .ok_or_else(|| corrupt("trial_id"))?,
            session_expires_at: get_n(item, "session_expires_at")
                .ok_or_else(|| corrupt("session_expires_at"))?,
            attempts: get_n(item, "attempts").unwrap_or(0),
        })
    }

    /// The item gone: the session can no longer be paid.
    pub fn delete(&self, store: &Store) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(store.table_name())
            .set_key(Some(key(
                session_expiry_pk(&self.session_id),
                SESSION_EXPIRY_SK,
            )))
            .build()?)
    }

    /// One more failed attempt: the next one after [`backoff_secs`]. Conditioned on the count
    /// as read, so two overlapping runs cannot both push it.
    pub fn retry_later(&self, store: &Store, now: i64) -> Result<Update, StoreError> {
        let attempts = self.attempts + 1;
        Ok(Update::builder()
            .table_name(store.table_name())
            .set_key(Some(key(
                session_expiry_pk(&self.session_id),
                SESSION_EXPIRY_SK,
            )))
            .update_expression("SET attempts = :next, due_at = :due")
            .condition_expression("attempts = :attempts")
            .set_expression_attribute_values(
                Values::new()
                    .n(":next", attempts)
                    .n(":attempts", self.attempts)
                    .n(":due", now + backoff_secs(attempts))
                    .build(),
            )
            .build()?)
    }
}

/// The wait after the `attempts`-th failure: 1 minute, doubling, at most an hour.
pub fn backoff_secs(attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 7) - 1;
    (60 * (1i64 << doublings)).min(MAX_BACKOFF_SECS)
}

/// Asks Stripe to expire the session, within `timeout`; logs the outcome (ids only).
pub async fn ask_stripe(
    app: &App,
    work: &SessionToExpire,
    timeout: Duration,
) -> Result<SessionExpiry, StripeError> {
    let answer = app
        .stripe
        .expire_checkout_session(&work.session_id, Some(timeout))
        .await;
    match &answer {
        Ok(SessionExpiry::Missing) => tracing::warn!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            "Stripe does not know the canceled trial's checkout session: nothing to expire"
        ),
        Ok(done) => tracing::info!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            outcome = ?done,
            "canceled trial's checkout session can no longer be paid"
        ),
        Err(e) => tracing::warn!(
            checkout_session_id = %work.session_id,
            trial_id = %work.trial_id,
            attempts = work.attempts + 1,
            error = %e,
            "checkout session not expired at Stripe; retried later"
        ),
    }
    answer
}

/// Right after a cancel committed `work`: one attempt within `budget`, the item deleted if it
/// worked. Never fails the cancel: whatever goes wrong here, the item stays and the job
/// retries. Returns whether the session is known to be unpayable now.
pub async fn expire_now(app: &App, work: &SessionToExpire, budget: Duration) -> bool {
    if ask_stripe(app, work, budget).await.is_err() {
        return false;
    }
    let deleted = async {
        let store = &app.store;
        store
            .tx()
            .delete(Slot::SessionExpiry, work.delete(store)?)
            .commit()
            .await
    };
    if let Err(e) = deleted.await {
        // Stripe did it; the job will find the session no longer open and delete the item.
        tracing::warn!(error = %e, checkout_session_id = %work.session_id, "session to expire not deleted");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_starts_at_the_trial_end_only_when_stripe_allows_it() {
        let end = 1_776_074_400;
        let line = end - TRIAL_END_MIN_LEAD_SECS - TRIAL_END_MARGIN_SECS;
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, line), Some(end));
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, line + 1), None);
        assert_eq!(trial_end_for(end, BillingStarts::TrialEnd, end + 60), None);
        assert_eq!(trial_end_for(end, BillingStarts::Now, line - 86_400), None);
    }

    #[test]
    fn the_stripe_call_ends_before_the_invocation_does() {
        let six = Duration::from_secs(6);
        let now = 1_775_469_600_000;
        // Plenty of time: the configured timeout.
        assert_eq!(stripe_budget(six, Some(now + 9_500), now), six);
        // Little left: what remains minus the margin for the write.
        assert_eq!(
            stripe_budget(six, Some(now + 3_000), now),
            Duration::from_millis(2_000)
        );
        // Less than the margin left: the call still gets a (tiny) budget and fails as a 502.
        assert_eq!(
            stripe_budget(six, Some(now + 500), now),
            Duration::from_millis(1)
        );
        // No deadline, or one that reads 0 or has passed: the configured timeout.
        for deadline in [None, Some(0), Some(now), Some(now - 1)] {
            assert_eq!(stripe_budget(six, deadline, now), six, "{deadline:?}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_a_minute_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(backoff_secs).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(backoff_secs(0), 60);
        assert_eq!(backoff_secs(i64::MAX), 3600);
    }
}
