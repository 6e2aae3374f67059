//! The trial state machine: which transitions are legal at a given instant, and the error each
//! illegal one answers with. Pure functions of (stored state, timestamps, now).
//!
//! ```text
//! ACTIVE ──► EXPIRED    at expires_at (reported at once, written by the expire job)
//! ACTIVE ──► CONVERTED  Stripe checkout completed
//! ACTIVE ──► CANCELED   the customer cancels
//! EXPIRED ─► CONVERTED  while now < expires_at + grace
//! EXPIRED, CANCELED ──► purged  once their grace has passed
//! ```
//! Money is never refused: a completed payment converts any trial that is not yet CONVERTED.

use super::ErrorCode;

/// Stored status of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialStatus {
    Active,
    Expired,
    Converted,
    Canceled,
}

impl TrialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Active => "ACTIVE",
            TrialStatus::Expired => "EXPIRED",
            TrialStatus::Converted => "CONVERTED",
            TrialStatus::Canceled => "CANCELED",
        }
    }

    pub fn parse(s: &str) -> Option<TrialStatus> {
        [
            TrialStatus::Active,
            TrialStatus::Expired,
            TrialStatus::Converted,
            TrialStatus::Canceled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Why a requested transition is refused. Each maps to one stable API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// 409 `trial_already_converted`
    AlreadyConverted,
    /// 409 `trial_canceled`
    Canceled,
    /// 410 `trial_expired`: past the grace period (or purged).
    Expired,
    /// 409 `trial_already_expired`: cancel of a trial that has already run out.
    AlreadyExpired,
}

impl TransitionError {
    pub fn code(self) -> ErrorCode {
        match self {
            TransitionError::AlreadyConverted => ErrorCode::TrialAlreadyConverted,
            TransitionError::Canceled => ErrorCode::TrialCanceled,
            TransitionError::Expired => ErrorCode::TrialExpired,
            TransitionError::AlreadyExpired => ErrorCode::TrialAlreadyExpired,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            TransitionError::AlreadyConverted => "Trial has already been converted to a paid plan",
            TransitionError::Canceled => "Trial was canceled and cannot be converted",
            TransitionError::Expired => "Trial has expired beyond the grace period",
            TransitionError::AlreadyExpired => {
                "Trial has already expired; it can still be converted during the grace period"
            }
        }
    }
}

/// The timestamps the machine needs, in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub status: TrialStatus,
    pub expires_at: i64,
    pub canceled_at: Option<i64>,
    pub grace_secs: i64,
}

impl Lifecycle {
    /// What the trial is at `now`: an ACTIVE trial past `expires_at` is EXPIRED even before the
    /// expire job has written it.
    pub fn status_at(&self, now: i64) -> TrialStatus {
        match self.status {
            TrialStatus::Active if now >= self.expires_at => TrialStatus::Expired,
            other => other,
        }
    }

    pub fn grace_ends_at(&self) -> i64 {
        self.expires_at + self.grace_secs
    }

    /// Convert (create a checkout): from ACTIVE, or from EXPIRED within the grace period.
    pub fn check_convert(&self, now: i64) -> Result<(), TransitionError> {
        match self.status_at(now) {
            TrialStatus::Active => Ok(()),
            TrialStatus::Expired if now < self.grace_ends_at() => Ok(()),
            TrialStatus::Expired => Err(TransitionError::Expired),
            TrialStatus::Converted => Err(TransitionError::AlreadyConverted),
            TrialStatus::Canceled => Err(TransitionError::Canceled),
        }
    }

    /// Cancel: only from ACTIVE.
    pub fn check_cancel(&self, now: i64) -> Result<(), TransitionError> {
        match self.status_at(now) {
            TrialStatus::Active => Ok(()),
            TrialStatus::Expired => Err(TransitionError::AlreadyExpired),
            TrialStatus::Converted => Err(TransitionError::AlreadyConverted),
            TrialStatus::Canceled => Err(TransitionError::Canceled),
        }
    }

    /// A completed payment: accepted from every state but CONVERTED.
    pub fn check_payment(&self) -> Result<(), TransitionError> {
        match self.status {
            TrialStatus::Converted => Err(TransitionError::AlreadyConverted),
            _ => Ok(()),
        }
    }

    /// The expire job's transition: ACTIVE whose `expires_at` has come.
    pub fn is_expiry_due(&self, now: i64) -> bool {
        self.status == TrialStatus::Active && now >= self.expires_at
    }

    /// When the purge job may delete the trial, if ever.
    pub fn purge_due_at(&self) -> Option<i64> {
        match self.status {
            TrialStatus::Active | TrialStatus::Expired => Some(self.grace_ends_at()),
            TrialStatus::Canceled => self.canceled_at.map(|at| at + self.grace_secs),
            TrialStatus::Converted => None,
        }
    }

    /// The purge job's check. An ACTIVE trial past grace counts as expired: the expire job may
    /// simply not have run yet.
    pub fn is_purge_due(&self, now: i64) -> bool {
        self.purge_due_at().is_some_and(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrialStatus::*;

    const DAY: i64 = 86_400;
    const EXPIRES: i64 = 10 * DAY;

    fn trial(status: TrialStatus) -> Lifecycle {
        Lifecycle {
            status,
            expires_at: EXPIRES,
            canceled_at: (status == Canceled).then_some(EXPIRES - DAY),
            grace_secs: 3 * DAY,
        }
    }

    #[test]
    fn active_becomes_expired_exactly_at_expires_at() {
        assert_eq!(trial(Active).status_at(EXPIRES - 1), Active);
        assert_eq!(trial(Active).status_at(EXPIRES), Expired);
        assert!(!trial(Active).is_expiry_due(EXPIRES - 1));
        assert!(trial(Active).is_expiry_due(EXPIRES));
        assert!(!trial(Expired).is_expiry_due(EXPIRES));
    }

    #[test]
    fn convert_is_allowed_until_the_grace_period_ends() {
        assert_eq!(trial(Active).check_convert(EXPIRES - 1), Ok(()));
        assert_eq!(trial(Active).check_convert(EXPIRES + 3 * DAY - 1), Ok(()));
        assert_eq!(trial(Expired).check_convert(EXPIRES + 3 * DAY - 1), Ok(()));
        assert_eq!(
            trial(Expired).check_convert(EXPIRES + 3 * DAY),
            Err(TransitionError::Expired)
        );
        assert_eq!(
            trial(Converted).check_convert(0),
            Err(TransitionError::AlreadyConverted)
        );
        assert_eq!(
            trial(Canceled).check_convert(0),
            Err(TransitionError::Canceled)
        );
    }

    #[test]
    fn cancel_only_from_active() {
        assert_eq!(trial(Active).check_cancel(EXPIRES - 1), Ok(()));
        assert_eq!(
            trial(Active).check_cancel(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Canceled).check_cancel(0),
            Err(TransitionError::Canceled)
        );
        assert_eq!(
            trial(Converted).check_cancel(0),
            Err(TransitionError::AlreadyConverted)
        );
    }

    #[test]
    fn payment_converts_everything_but_a_converted_trial() {
        for st in [Active, Expired, Canceled] {
            assert_eq!(trial(st).check_payment(), Ok(()));
        }
        assert_eq!(
            trial(Converted).check_payment(),
            Err(TransitionError::AlreadyConverted)
        );
    }

    #[test]
    fn purge_after_grace_of_expiry_or_cancellation_never_converted() {
        assert!(!trial(Expired).is_purge_due(EXPIRES + 3 * DAY - 1));
        assert!(trial(Expired).is_purge_due(EXPIRES + 3 * DAY));
        assert!(trial(Active).is_purge_due(EXPIRES + 3 * DAY));
        assert!(!trial(Canceled).is_purge_due(EXPIRES + 2 * DAY - 1));
        assert!(trial(Canceled).is_purge_due(EXPIRES + 2 * DAY));
        assert!(!trial(Converted).is_purge_due(i64::MAX / 2));
    }

    #[test]
    fn error_codes_and_statuses_are_stable() {
        assert_eq!(TransitionError::Expired.code().status(), 410);
        assert_eq!(TransitionError::Expired.code().as_str(), "trial_expired");
        assert_eq!(TransitionError::Canceled.code().status(), 409);
        assert_eq!(
            TransitionError::AlreadyExpired.code().as_str(),
            "trial_already_expired"
        );
        assert_eq!(TrialStatus::parse("CANCELED"), Some(Canceled));
        assert_eq!(TrialStatus::parse("active"), None);
    }
}
