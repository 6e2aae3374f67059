//! The abuse-signal check of a start ([`crate::domain::signals`] for what a signal is and the
//! policy; [`crate::store::signals`] for the items).
//!
//! Optimistic, so a start stays one round trip when nothing is reused: every signal whose kind
//! blocks or flags is put with the condition "no other org used it within the window" in the
//! start's own transaction. When conditions fail, [`SignalCheck::after`] decides with the
//! policy: a blocking kind refuses the start (unless the operator's allowance is there, which
//! the next attempt consumes); only flagging kinds: the next attempt writes those signals
//! without their condition and the start is marked flagged. Each attempt is the whole
//! transaction again, so a race is decided by DynamoDB, never by a read.
use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::domain::applicant::Applicant;
use crate::domain::catalog::ProductKey;
use crate::domain::signals::{
    email_signal, signals_for, Signal, SignalAction, SignalKind, SignalSecret, Verdict,
};
use crate::domain::OrgId;
use crate::store::signals::signal_owner;
use crate::store::{Rejection, Slot, Store, StoreError, Tx};
use crate::App;

/// Attempts at a start's transaction: the first, one after flagged kinds, one with the
/// allowance (and once more if a concurrent start changed the picture).
pub const ATTEMPTS: usize = 4;

/// The state of one start's signal check across its attempts.
#[derive(Debug)]
pub struct SignalCheck {
    signals: Vec<Signal>,
    /// Kinds written without their condition on the next attempt (reuse accepted).
    let_through: BTreeSet<SignalKind>,
    /// Reused kinds, for `trial.started`.
    matched: BTreeSet<SignalKind>,
    /// Consume the operator's allowance on the next attempt.
    use_allowance: bool,
    /// The product the start is for: signals are keyed per product (see
    /// [`crate::store::signals`]).
    product: ProductKey,
}

/// What to do after a rejected attempt whose failed slots include signals.
#[derive(Debug)]
pub enum Next {
    /// Try the transaction again with the check's new state.
    Retry,
    /// Refused: a reused signal of a blocking kind, `matched_org` the org that used it.
    Blocked {
        kind: SignalKind,
        matched_org: Option<String>,
    },
}

impl SignalCheck {
    /// The applicant's signals for a start of `product`. When `SIGNAL_SECRET` is unset, the
    /// email signal only, under the deployment's fallback key (the table name: see
    /// [`SignalSecret::fallback`]), so one trial per person holds without a secret; the rest
    /// of the check is the same.
    pub fn new(app: &App, applicant: &Applicant, product: ProductKey) -> SignalCheck {
        let config = &app.config.applicant;
        let signals = match &config.signal_secret {
            Some(secret) => signals_for(applicant, secret, &config.public_domains),
            None => email_signal(applicant, &SignalSecret::fallback(&app.store.table)),
        };
        SignalCheck {
            signals,
            let_through: BTreeSet::new(),
            matched: BTreeSet::new(),
            use_allowance: false,
            product,
        }
    }

    /// Adds this attempt's signal items (and the allowance's consumption) to `tx`.
    pub fn add_to<'a>(
        &self,
        app: &App,
        mut tx: Tx<'a>,
        store: &'a Store,
        org: &OrgId,
        now: i64,
    ) -> Result<Tx<'a>, StoreError> {
        let policy = app.config.applicant.policy;
        for signal in &self.signals {
            let checked = policy.action(signal.kind) != SignalAction::Ignore
                && !self.let_through.contains(&signal.kind);
            let window = checked.then(|| policy.window_start(now));
            tx = tx.put(
                Slot::Signal(signal.kind),
                store.signal_put(signal, &self.product, org, now, window)?,
            );
        }
        if self.use_allowance {
            tx = tx.delete(Slot::Allowance, store.allowance_delete(org)?);
        }
        Ok(tx)
    }

    /// What `trial.started` says about the check: the matched kinds, if any.
    pub fn event_fields(&self, extra: &mut Value) {
        if !self.matched.is_empty() {
            extra["matched_signals"] =
                json!(self.matched.iter().map(|k| k.as_str()).collect::<Vec<_>>());
            extra["flagged"] = true.into();
        }
        if self.use_allowance {
            extra["allowed_by_operator"] = true.into();
        }
    }

    /// Whether any signal or the allowance failed its condition in `rejection`.
    pub fn involved(rejection: &Rejection) -> bool {
        rejection
            .slots()
            .any(|s| matches!(s, Slot::Signal(_) | Slot::Allowance))
    }

    /// Decides after a rejection that [`SignalCheck::involved`] the signals.
    pub async fn after(
        &mut self,
        app: &App,
        org: &OrgId,
        rejection: &Rejection,
    ) -> Result<Next, StoreError> {
        if rejection.failed(Slot::Allowance) {
            // Another start of this org consumed it first: decide again without it.
            self.use_allowance = false;
        }
        let reused: Vec<(SignalKind, bool)> = rejection
            .slots()
            .filter_map(|s| match s {
                Slot::Signal(kind) => Some((kind, true)),
                _ => None,
            })
            .collect();
        self.matched.extend(reused.iter().map(|(k, _)| *k));
        match app.config.applicant.policy.decide(&reused) {
            Verdict::Blocked(kind) => {
                if !self.use_allowance && app.store.has_allowance(org).await? {
                    self.use_allowance = true;
                    self.let_through.extend(reused.iter().map(|(k, _)| *k));
                    return Ok(Next::Retry);
                }
                let matched_org = rejection
                    .old(Slot::Signal(kind))
                    .and_then(signal_owner)
                    .map(str::to_owned);
                Ok(Next::Blocked { kind, matched_org })
            }
            Verdict::Flagged(kinds) => {
                self.let_through.extend(kinds);
                Ok(Next::Retry)
            }
            // Only the allowance failed: try again without it.
            Verdict::Allow => Ok(Next::Retry),
        }
    }
}
