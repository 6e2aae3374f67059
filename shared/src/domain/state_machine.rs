//! The trial state machine: which transitions are legal at a given instant, and the error each
//! illegal one answers with. Pure functions of (stored state, timestamps, now).
//!
//! ```text
//! ACTIVE ──► EXPIRED    at expires_at (reported at once, written by the expire job)
//! ACTIVE ──► CONVERTED  Stripe checkout completed
//! ACTIVE ──► CANCELED   the customer cancels
//! ACTIVE ──► ACTIVE     extend: expires_at moves later (the current active range grows)
//! ACTIVE ──► PAUSED     pause: the remaining time freezes, the current active range closes
//! PAUSED ──► ACTIVE     resume (asked, or by itself once the plan's pause maximum has passed):
//!                       expires_at moves by the time spent paused, a new active range opens
//! PAUSED ──► CONVERTED  Stripe checkout completed
//! PAUSED ──► CANCELED   the customer cancels
//! ACTIVE ──► ACTIVE     change-plan: another plan of the product (options re-snapshotted)
//! PAUSED ──► PAUSED     change-plan, likewise
//! EXPIRED ─► CONVERTED  while now < expires_at + grace
//! EXPIRED ─► ACTIVE     extend while now < expires_at + grace (a new active range opens)
//! EXPIRED, CANCELED ──► purged  once their grace has passed
//! PENDING ─► ACTIVE     activate, or the first usage call: the clock starts then
//! PENDING ─► EXPIRED    at its activation deadline (`expires_at` while PENDING), unused:
//!                       reported at once, written by the expire job (`activation_window`)
//! PENDING ─► CONVERTED, CANCELED  as from ACTIVE
//! ACTIVE ──► DOWNGRADED at expires_at, on a plan whose end behavior is `downgrade` (a reverse
//!                       trial; reported at once, written by the expire job): the free plan
//! DOWNGRADED ──► CONVERTED  Stripe checkout completed (it buys the trialled plan)
//! ```
//! A PENDING trial keeps its activation deadline in `expires_at`, so the `due` index, the
//! expire job and every clock clause treat it as an ACTIVE trial's end; the API shows it as
//! `activate_by`, never as the trial's end. A PENDING trial never downgrades: unused, it lapses.
//! A DOWNGRADED trial is on its free plan for good: it is never expired again nor purged, its
//! usage counts against the free plan's limits, and it stays the org's one trial.
//! A CONVERTED trial then follows its Stripe subscription: [`Billing`], the second table.
//! A PAUSED trial never expires and is never purged: its clock is stopped. Its automatic resume
//! is not visible here ([`Lifecycle`] does not know the pause maximum): settle the trial first
//! (`Trial::settled_at`), then ask the machine.
//!
//! Money is never refused: a completed payment converts any trial that is not yet CONVERTED.
//!
//! **The rules are written once**, as two tables: [`Action::rule`] (what a caller may ask of
//! a trial in the status it reports) and [`Job::window`] (when a job's move is due, by the
//! stored status). Everything else reads them: the `check_*` methods of [`Lifecycle`], and the
//! store, which turns each row into the DynamoDB condition of its write
//! (`store::state_condition`), so the condition re-checked at the moment of the write is the
//! rule itself, not a second copy of it. A new state or action is a variant plus its row; the
//! integration test `state_machine` proves, for every pair, that the store's writes and these
//! tables agree.

use super::ErrorCode;

/// Stored status of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialStatus {
    Active,
    Paused,
    Expired,
    Converted,
    Canceled,
    /// Started on activation: the clock has not started yet (see [`Phase::Pending`]).
    Pending,
    /// A reverse trial past its end: on its free plan, for good (until it converts).
    Downgraded,
}

impl TrialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Active => "ACTIVE",
            TrialStatus::Paused => "PAUSED",
            TrialStatus::Expired => "EXPIRED",
            TrialStatus::Converted => "CONVERTED",
            TrialStatus::Canceled => "CANCELED",
            TrialStatus::Pending => "PENDING",
            TrialStatus::Downgraded => "DOWNGRADED",
        }
    }

    pub const ALL: [TrialStatus; 7] = [
        TrialStatus::Active,
        TrialStatus::Paused,
        TrialStatus::Expired,
        TrialStatus::Converted,
        TrialStatus::Canceled,
        TrialStatus::Pending,
        TrialStatus::Downgraded,
    ];

    pub fn parse(s: &str) -> Option<TrialStatus> {
        TrialStatus::ALL.into_iter().find(|st| st.as_str() == s)
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
    /// 409 `trial_already_expired`: cancel, pause or resume of a trial that has already run out.
    AlreadyExpired,
    /// 409 `trial_not_active`: pause or extend of a PAUSED trial (the terminal states answer with
    /// their own codes above, so a client learns what happened to the trial).
    NotActive,
    /// 409 `trial_not_paused`: resume of an ACTIVE trial.
    NotPaused,
    /// 422 `invalid_extension`: the requested end is not acceptable for this trial.
    InvalidExtension(ExtensionRefusal),
    /// 409 `trial_not_pending`: activate of a trial whose clock already runs (ACTIVE, PAUSED).
    NotPending,
    /// 409 `trial_pending`: pause, resume, extend, an admin change or a plan change of a trial
    /// not activated yet.
    Pending,
    /// 409 `trial_downgraded`: a reverse trial that ended on its free plan (it may only
    /// convert, be paid for and record usage).
    Downgraded,
}

/// Why an extension's new end is refused (all answer 422 `invalid_extension`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionRefusal {
    /// The new end is not later than the current end (or, for an expired trial, than now).
    NotLater,
    /// The trial's active time would exceed the plan's maximum total trial length.
    BeyondMaximum,
}

impl TransitionError {
    pub fn code(self) -> ErrorCode {
        match self {
            TransitionError::AlreadyConverted => ErrorCode::TrialAlreadyConverted,
            TransitionError::Canceled => ErrorCode::TrialCanceled,
            TransitionError::Expired => ErrorCode::TrialExpired,
            TransitionError::AlreadyExpired => ErrorCode::TrialAlreadyExpired,
            TransitionError::NotActive => ErrorCode::TrialNotActive,
            TransitionError::NotPaused => ErrorCode::TrialNotPaused,
            TransitionError::InvalidExtension(_) => ErrorCode::InvalidExtension,
            TransitionError::NotPending => ErrorCode::TrialNotPending,
            TransitionError::Pending => ErrorCode::TrialPending,
            TransitionError::Downgraded => ErrorCode::TrialDowngraded,
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
            TransitionError::NotActive => {
                "Trial is paused; only an active trial can be paused, extended or record usage"
            }
            TransitionError::NotPaused => "Trial is not paused",
            TransitionError::InvalidExtension(ExtensionRefusal::NotLater) => {
                "The new end must be later than the trial's current end and than now"
            }
            TransitionError::InvalidExtension(ExtensionRefusal::BeyondMaximum) => {
                "The extension would exceed the plan's maximum total trial length"
            }
            TransitionError::NotPending => "Trial is already activated",
            TransitionError::Pending => {
                "Trial has not been activated yet; activate it (or record usage) first"
            }
            TransitionError::Downgraded => {
                "Trial has ended on its free plan; it can still be converted to the trialled plan"
            }
        }
    }
}

/// Where an extension starts from, which decides how the active ranges change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendFrom {
    /// ACTIVE: the current range continues to the new end.
    Continuing,
    /// EXPIRED within grace: the trial becomes ACTIVE again in a new range from now.
    Revived,
}

/// Where a trial stands, by its stored status and, for an ACTIVE one, its clock: the states
/// the tables are written over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// ACTIVE and `now < expires_at`.
    Active,
    /// ACTIVE in the table but `now >= expires_at`: EXPIRED to every caller, not yet written
    /// by the expire job.
    Lapsed,
    Paused,
    Expired,
    Converted,
    Canceled,
    /// PENDING and `now < expires_at` (the activation deadline).
    Pending,
    /// PENDING in the table but `now >= expires_at`: never activated, EXPIRED to every caller,
    /// not yet written by the expire job.
    PendingLapsed,
    /// ACTIVE in the table, `now >= expires_at`, on a plan that downgrades (the item carries
    /// `downgrade_to`): DOWNGRADED to every caller, not yet written by the expire job.
    Ending,
    Downgraded,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Active,
        Phase::Lapsed,
        Phase::Paused,
        Phase::Expired,
        Phase::Converted,
        Phase::Canceled,
        Phase::Pending,
        Phase::PendingLapsed,
        Phase::Ending,
        Phase::Downgraded,
    ];

    /// The status stored in the table.
    pub fn stored(self) -> TrialStatus {
        match self {
            Phase::Active | Phase::Lapsed | Phase::Ending => TrialStatus::Active,
            Phase::Paused => TrialStatus::Paused,
            Phase::Expired => TrialStatus::Expired,
            Phase::Converted => TrialStatus::Converted,
            Phase::Canceled => TrialStatus::Canceled,
            Phase::Pending | Phase::PendingLapsed => TrialStatus::Pending,
            Phase::Downgraded => TrialStatus::Downgraded,
        }
    }

    /// The status a caller sees: an ACTIVE trial past its end is EXPIRED (the one place that
    /// says so).
    pub fn reported(self) -> TrialStatus {
        match self {
            Phase::Lapsed | Phase::PendingLapsed => TrialStatus::Expired,
            Phase::Ending => TrialStatus::Downgraded,
            other => other.stored(),
        }
    }
}

/// The time qualifier of an allowed cell: when, on the trial's clock, it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Whenever the trial is in the state.
    Always,
    /// While `now < expires_at + grace`; after it a caller is answered `Expired`.
    UntilGraceEnds,
    /// Once `now >= expires_at + grace`.
    AfterGrace,
    /// Once `now >= canceled_at + grace` (never without a `canceled_at`).
    AfterCancelGrace,
}

/// One cell of [`Action::rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Allowed(Window),
    Refused(TransitionError),
}

/// What a caller asks of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create a checkout session.
    Convert,
    Cancel,
    /// Record usage against a limit.
    Usage,
    Pause,
    Resume,
    Extend,
    /// An admin's `PATCH` of `expires_at` or `notes`.
    AdminChange,
    /// A completed payment (the Stripe webhook); also a payment on its way.
    Payment,
    /// Another plan of the same product, during the trial (`change-plan`, or convert with
    /// another `plan`).
    ChangePlan,
    /// Start the clock of a PENDING trial (`activate`, or its first usage call).
    Activate,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Convert,
        Action::Cancel,
        Action::Usage,
        Action::Pause,
        Action::Resume,
        Action::Extend,
        Action::AdminChange,
        Action::Payment,
        Action::ChangePlan,
        Action::Activate,
    ];

    /// **The table**: `self` asked of a trial that reports `status`.
    #[rustfmt::skip]
    pub fn rule(self, status: TrialStatus) -> Rule {
        use TransitionError::{
            AlreadyConverted, AlreadyExpired, Canceled, Downgraded, NotActive, NotPaused,
            NotPending, Pending,
        };
        const OK: Rule = Rule::Allowed(Window::Always);
        const IN_GRACE: Rule = Rule::Allowed(Window::UntilGraceEnds);
        const fn no(err: TransitionError) -> Rule {
            Rule::Refused(err)
        }
        // DOWNGRADED: it can convert later through the same checkout (buying the trialled plan)
        // and records usage against its free plan's limits; nothing else moves it.
        let row: [Rule; 7] = match self {
            //                  ACTIVE          PAUSED         EXPIRED             CONVERTED             CANCELED      PENDING       DOWNGRADED
            Action::Convert => [OK,             OK,            IN_GRACE,           no(AlreadyConverted), no(Canceled), OK,           OK],
            Action::Cancel =>  [OK,             OK,            no(AlreadyExpired), no(AlreadyConverted), no(Canceled), OK,           no(Downgraded)],
            // Usage of a PENDING trial activates it (the same write).
            Action::Usage =>   [OK,             no(NotActive), no(AlreadyExpired), no(AlreadyConverted), no(Canceled), OK,           OK],
            // A PAUSED trial's time and usage are frozen; an admin changes a running trial only.
            Action::Pause | Action::AdminChange =>
                               [OK,             no(NotActive), no(AlreadyExpired), no(AlreadyConverted), no(Canceled), no(Pending),  no(Downgraded)],
            Action::Resume =>  [no(NotPaused),  OK,            no(AlreadyExpired), no(AlreadyConverted), no(Canceled), no(Pending),  no(Downgraded)],
            Action::Extend =>  [OK,             no(NotActive), IN_GRACE,           no(AlreadyConverted), no(Canceled), no(Pending),  no(Downgraded)],
            // Money is never refused, but it converts only once.
            Action::Payment => [OK,             OK,            OK,                 no(AlreadyConverted), OK,           OK,           OK],
            // A running trial only: its options re-snapshotted, its use kept.
            Action::ChangePlan => [OK,          OK,            no(AlreadyExpired), no(AlreadyConverted), no(Canceled), no(Pending),  no(Downgraded)],
            Action::Activate => [no(NotPending), no(NotPending), no(AlreadyExpired), no(AlreadyConverted), no(Canceled), OK,       no(Downgraded)],
        };
        row[match status {
            TrialStatus::Active => 0,
            TrialStatus::Paused => 1,
            TrialStatus::Expired => 2,
            TrialStatus::Converted => 3,
            TrialStatus::Canceled => 4,
            TrialStatus::Pending => 5,
            TrialStatus::Downgraded => 6,
        }]
    }
}

/// A move the jobs make on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// ACTIVE -> EXPIRED, written once the end has come; ACTIVE -> DOWNGRADED for a trial of
    /// a plan that downgrades.
    Expire,
    /// The item's delete once its grace has passed.
    Purge,
}

impl Job {
    pub const ALL: [Job; 2] = [Job::Expire, Job::Purge];

    /// **The jobs' table**: when `self` is due for a trial in `phase` (`None`: never). A
    /// PAUSED trial is in neither: its clock is stopped. A DOWNGRADED one (or one ending so)
    /// is never purged: it stays on its free plan.
    pub fn window(self, phase: Phase) -> Option<Window> {
        match (self, phase) {
            (Job::Expire, Phase::Lapsed | Phase::PendingLapsed | Phase::Ending) => {
                Some(Window::Always)
            }
            (Job::Purge, Phase::Lapsed | Phase::PendingLapsed | Phase::Expired) => {
                Some(Window::AfterGrace)
            }
            (Job::Purge, Phase::Canceled) => Some(Window::AfterCancelGrace),
            _ => None,
        }
    }
}

/// A row of either table, for what reads both (the store's conditions, the agreement test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    Asked(Action),
    Job(Job),
}

impl From<Action> for Transition {
    fn from(action: Action) -> Transition {
        Transition::Asked(action)
    }
}

impl From<Job> for Transition {
    fn from(job: Job) -> Transition {
        Transition::Job(job)
    }
}

impl Transition {
    /// When the transition is allowed (or due) for a trial in `phase`; `None`: never.
    pub fn window(self, phase: Phase) -> Option<Window> {
        match self {
            Transition::Asked(action) => match action.rule(phase.reported()) {
                Rule::Allowed(window) => Some(window),
                Rule::Refused(_) => None,
            },
            Transition::Job(job) => job.window(phase),
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
    /// The trial's plan downgrades at its end (a reverse trial): past `expires_at` an ACTIVE
    /// trial is [`Phase::Ending`], not [`Phase::Lapsed`].
    pub downgrades: bool,
}

impl Lifecycle {
    /// Where the trial stands at `now` (see [`Phase`]).
    pub fn phase(&self, now: i64) -> Phase {
        match self.status {
            TrialStatus::Active if now >= self.expires_at && self.downgrades => Phase::Ending,
            TrialStatus::Active if now >= self.expires_at => Phase::Lapsed,
            TrialStatus::Active => Phase::Active,
            TrialStatus::Paused => Phase::Paused,
            TrialStatus::Expired => Phase::Expired,
            TrialStatus::Converted => Phase::Converted,
            TrialStatus::Canceled => Phase::Canceled,
            TrialStatus::Pending if now >= self.expires_at => Phase::PendingLapsed,
            TrialStatus::Pending => Phase::Pending,
            TrialStatus::Downgraded => Phase::Downgraded,
        }
    }

    /// What the trial is at `now`: an ACTIVE trial past `expires_at` is EXPIRED even before the
    /// expire job has written it. A PAUSED trial stays PAUSED past `expires_at`: its clock is
    /// stopped.
    pub fn status_at(&self, now: i64) -> TrialStatus {
        self.phase(now).reported()
    }

    pub fn grace_ends_at(&self) -> i64 {
        self.expires_at + self.grace_secs
    }

    /// When `window` opens for this trial (`i64::MIN`: it is open from the start; `None`:
    /// never). Every window but [`Window::UntilGraceEnds`] stays open once open.
    fn opens_at(&self, window: Window) -> Option<i64> {
        match window {
            Window::Always | Window::UntilGraceEnds => Some(i64::MIN),
            Window::AfterGrace => Some(self.grace_ends_at()),
            Window::AfterCancelGrace => self.canceled_at.map(|at| at + self.grace_secs),
        }
    }

    fn holds(&self, window: Window, now: i64) -> bool {
        let closed = window == Window::UntilGraceEnds && now >= self.grace_ends_at();
        !closed && self.opens_at(window).is_some_and(|at| now >= at)
    }

    /// `action` at `now`, as [`Action::rule`] says. A window that has closed on a caller is
    /// the grace period: `Expired`.
    pub fn check(&self, action: Action, now: i64) -> Result<(), TransitionError> {
        match action.rule(self.status_at(now)) {
            Rule::Allowed(window) if self.holds(window, now) => Ok(()),
            Rule::Allowed(_) => Err(TransitionError::Expired),
            Rule::Refused(err) => Err(err),
        }
    }

    /// Whether `job` is due at `now`, as [`Job::window`] says.
    pub fn is_due(&self, job: Job, now: i64) -> bool {
        job.window(self.phase(now))
            .is_some_and(|window| self.holds(window, now))
    }

    /// Convert (create a checkout): from ACTIVE or PAUSED, or from EXPIRED within the grace
    /// period.
    pub fn check_convert(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Convert, now)
    }

    /// Cancel: from ACTIVE or PAUSED.
    pub fn check_cancel(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Cancel, now)
    }

    /// Usage against a limit: only while ACTIVE (a PAUSED trial's time and usage are frozen).
    pub fn check_usage(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Usage, now)
    }

    /// Pause: only from ACTIVE (an ACTIVE trial whose end has come is EXPIRED).
    pub fn check_pause(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Pause, now)
    }

    /// Resume: only from PAUSED.
    pub fn check_resume(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Resume, now)
    }

    /// Extend: from ACTIVE, or from EXPIRED within the grace period. Whether the new end itself
    /// is acceptable is the trial's question (`Trial::extend`): it needs the active ranges.
    pub fn check_extend(&self, now: i64) -> Result<ExtendFrom, TransitionError> {
        self.check(Action::Extend, now)?;
        Ok(match self.status_at(now) {
            TrialStatus::Active => ExtendFrom::Continuing,
            _ => ExtendFrom::Revived,
        })
    }

    /// An admin's change of `expires_at` or `notes` (`PATCH`): only from ACTIVE, as pause.
    pub fn check_admin_change(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::AdminChange, now)
    }

    /// Activate: from PENDING only, before its activation deadline.
    pub fn check_activate(&self, now: i64) -> Result<(), TransitionError> {
        self.check(Action::Activate, now)
    }

    /// A completed payment: accepted from every state but CONVERTED. Its row has no time
    /// qualifier, so any instant gives the same answer.
    pub fn check_payment(&self) -> Result<(), TransitionError> {
        self.check(Action::Payment, self.expires_at)
    }

    /// The expire job's transition: ACTIVE whose `expires_at` has come.
    pub fn is_expiry_due(&self, now: i64) -> bool {
        self.is_due(Job::Expire, now)
    }

    /// When the purge job may delete the trial, if ever. Never while PAUSED: the time a paused
    /// trial will end is not known until it resumes. (An ACTIVE trial is asked as it will be
    /// once lapsed: the clock alone takes it there.)
    pub fn purge_due_at(&self) -> Option<i64> {
        let phase = self.phase(self.expires_at);
        Job::Purge
            .window(phase)
            .and_then(|window| self.opens_at(window))
    }

    /// The purge job's check. An ACTIVE trial past grace counts as expired: the expire job may
    /// simply not have run yet.
    pub fn is_purge_due(&self, now: i64) -> bool {
        self.is_due(Job::Purge, now)
    }
}

/// A CONVERTED trial's billing: what became of the Stripe subscription its checkout created,
/// followed through Stripe's subscription and invoice events (the trial stays CONVERTED; this
/// is its second table, as small as the first).
///
/// ```text
/// AWAITING_FIRST_PAYMENT ──► PAID     an invoice of the subscription paid with money (amount_paid > 0)
/// AWAITING_FIRST_PAYMENT ──► LAPSED   the subscription ended (canceled, incomplete_expired) first
/// LAPSED ──► PAID   an invoice paid before the end (by Stripe's `created`), delivered after it
/// PAID: final (a paid subscription that ends later is churn, not a lapse; an ended
///       subscription never starts again, Stripe's own rule)
/// ```
/// The store writes each arrow as a conditional update (`store::subscriptions`): PAID only
/// while no `first_paid_at` is stored, and no `lapsed_at`, or one not before the payment;
/// LAPSED only on a CONVERTED trial with neither stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Billing {
    AwaitingFirstPayment,
    Paid,
    Lapsed,
}

/// What a subscription or invoice event can do to [`Billing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillingChange {
    /// An invoice of the subscription was paid with money.
    FirstPaidInvoice,
    /// The subscription ended (status `canceled` or `incomplete_expired`).
    Ended,
    /// An invoice paid before the subscription ended, delivered after the end.
    PaidBeforeTheEnd,
}

impl Billing {
    pub fn as_str(self) -> &'static str {
        match self {
            Billing::AwaitingFirstPayment => "awaiting_first_payment",
            Billing::Paid => "paid",
            Billing::Lapsed => "lapsed",
        }
    }

    /// From what the trial stores: when the first paid invoice came, when the subscription
    /// lapsed.
    pub fn of(first_paid_at: Option<i64>, lapsed_at: Option<i64>) -> Billing {
        match (first_paid_at, lapsed_at) {
            (Some(paid), Some(lapsed)) if paid <= lapsed => Billing::Paid,
            (_, Some(_)) => Billing::Lapsed,
            (Some(_), None) => Billing::Paid,
            (None, None) => Billing::AwaitingFirstPayment,
        }
    }

    /// **The table**: where `change` takes `self`; `None`: nowhere (the event changes nothing).
    pub fn after(self, change: BillingChange) -> Option<Billing> {
        match (self, change) {
            (Billing::AwaitingFirstPayment, BillingChange::FirstPaidInvoice) => Some(Billing::Paid),
            (Billing::AwaitingFirstPayment, BillingChange::Ended) => Some(Billing::Lapsed),
            (Billing::Lapsed, BillingChange::PaidBeforeTheEnd) => Some(Billing::Paid),
            (Billing::AwaitingFirstPayment, BillingChange::PaidBeforeTheEnd) => None,
            (Billing::Lapsed, _) | (Billing::Paid, _) => None,
        }
    }
}

/// Stripe subscription statuses after which the subscription never bills again (Stripe: a
/// canceled subscription cannot be reactivated; `incomplete_expired` is an incomplete one whose
/// first invoice went unpaid for 23 hours).
pub const SUBSCRIPTION_ENDED: [&str; 2] = ["canceled", "incomplete_expired"];

/// Whether `status` (a Stripe subscription status) is one that ends it for good.
pub fn subscription_ended(status: &str) -> bool {
    SUBSCRIPTION_ENDED.contains(&status)
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
            downgrades: false,
        }
    }

    #[test]
    fn usage_and_admin_changes_are_for_active_trials_only() {
        let now = EXPIRES - DAY;
        for check in [Lifecycle::check_usage, Lifecycle::check_admin_change] {
            assert_eq!(check(&trial(Active), now), Ok(()));
            assert_eq!(check(&trial(Paused), now), Err(TransitionError::NotActive));
            assert_eq!(
                check(&trial(Active), EXPIRES),
                Err(TransitionError::AlreadyExpired)
            );
            assert_eq!(
                check(&trial(Converted), now),
                Err(TransitionError::AlreadyConverted)
            );
            assert_eq!(check(&trial(Canceled), now), Err(TransitionError::Canceled));
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
    fn a_paused_trial_never_expires_nor_is_purged() {
        let paused = trial(Paused);
        assert_eq!(paused.status_at(EXPIRES - 1), Paused);
        assert_eq!(paused.status_at(EXPIRES + 100 * DAY), Paused);
        assert!(!paused.is_expiry_due(EXPIRES + 100 * DAY));
        assert_eq!(paused.purge_due_at(), None);
        assert!(!paused.is_purge_due(EXPIRES + 100 * DAY));
    }

    #[test]
    fn a_paused_trial_can_be_canceled_converted_and_paid_for() {
        let late = EXPIRES + 100 * DAY;
        assert_eq!(trial(Paused).check_cancel(late), Ok(()));
        assert_eq!(trial(Paused).check_convert(late), Ok(()));
        assert_eq!(trial(Paused).check_payment(), Ok(()));
    }

    #[test]
    fn pause_only_from_active() {
        assert_eq!(trial(Active).check_pause(EXPIRES - 1), Ok(()));
        assert_eq!(
            trial(Active).check_pause(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Paused).check_pause(0),
            Err(TransitionError::NotActive)
        );
        assert_eq!(
            trial(Expired).check_pause(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Converted).check_pause(0),
            Err(TransitionError::AlreadyConverted)
        );
        assert_eq!(
            trial(Canceled).check_pause(0),
            Err(TransitionError::Canceled)
        );
    }

    #[test]
    fn resume_only_from_paused() {
        assert_eq!(trial(Paused).check_resume(EXPIRES + 100 * DAY), Ok(()));
        assert_eq!(
            trial(Active).check_resume(0),
            Err(TransitionError::NotPaused)
        );
        assert_eq!(
            trial(Active).check_resume(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Expired).check_resume(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Converted).check_resume(0),
            Err(TransitionError::AlreadyConverted)
        );
        assert_eq!(
            trial(Canceled).check_resume(0),
            Err(TransitionError::Canceled)
        );
    }

    #[test]
    fn extend_from_active_or_from_expired_within_grace() {
        assert_eq!(
            trial(Active).check_extend(EXPIRES - 1),
            Ok(ExtendFrom::Continuing)
        );
        // Expired by the clock only, or written by the expire job: the same answer.
        assert_eq!(trial(Active).check_extend(EXPIRES), Ok(ExtendFrom::Revived));
        assert_eq!(
            trial(Expired).check_extend(EXPIRES + 3 * DAY - 1),
            Ok(ExtendFrom::Revived)
        );
        assert_eq!(
            trial(Expired).check_extend(EXPIRES + 3 * DAY),
            Err(TransitionError::Expired)
        );
        assert_eq!(
            trial(Paused).check_extend(0),
            Err(TransitionError::NotActive)
        );
        assert_eq!(
            trial(Converted).check_extend(0),
            Err(TransitionError::AlreadyConverted)
        );
        assert_eq!(
            trial(Canceled).check_extend(0),
            Err(TransitionError::Canceled)
        );
    }

    #[test]
    fn lifecycle_error_codes_and_statuses_are_stable() {
        let cases = [
            (TransitionError::NotActive, "trial_not_active", 409),
            (TransitionError::NotPaused, "trial_not_paused", 409),
            (
                TransitionError::InvalidExtension(ExtensionRefusal::NotLater),
                "invalid_extension",
                422,
            ),
            (
                TransitionError::InvalidExtension(ExtensionRefusal::BeyondMaximum),
                "invalid_extension",
                422,
            ),
            (
                TransitionError::AlreadyConverted,
                "trial_already_converted",
                409,
            ),
            (TransitionError::Canceled, "trial_canceled", 409),
            (TransitionError::Expired, "trial_expired", 410),
        ];
        for (err, code, status) in cases {
            assert_eq!(
                (err.code().as_str(), err.code().status()),
                (code, status),
                "{err:?}"
            );
        }
        assert_ne!(
            TransitionError::InvalidExtension(ExtensionRefusal::NotLater).message(),
            TransitionError::InvalidExtension(ExtensionRefusal::BeyondMaximum).message()
        );
        assert_eq!(TrialStatus::parse("PAUSED"), Some(Paused));
        assert_eq!(Paused.as_str(), "PAUSED");
    }

    #[test]
    fn every_action_answers_a_lapsed_active_trial_as_an_expired_one() {
        for action in Action::ALL {
            for now in [EXPIRES, EXPIRES + 3 * DAY - 1, EXPIRES + 3 * DAY] {
                assert_eq!(
                    trial(Active).check(action, now),
                    trial(Expired).check(action, now),
                    "{action:?} at {now}"
                );
            }
        }
    }

    #[test]
    fn a_refused_cell_answers_its_error_at_any_time_and_the_grace_closes_with_expired() {
        for action in Action::ALL {
            for status in [Active, Paused, Expired, Converted, Canceled] {
                let lifecycle = trial(status);
                let now = if status == Active {
                    EXPIRES - 1
                } else {
                    EXPIRES
                };
                match action.rule(status) {
                    Rule::Refused(err) => assert_eq!(lifecycle.check(action, now), Err(err)),
                    Rule::Allowed(Window::Always) => {
                        assert_eq!(lifecycle.check(action, now), Ok(()));
                        // Outside ACTIVE, whose own clock moves it on, at any time.
                        let later = now + 100 * DAY;
                        if status != Active {
                            assert_eq!(lifecycle.check(action, later), Ok(()), "{action:?}");
                        }
                    }
                    Rule::Allowed(window) => {
                        assert_eq!(window, Window::UntilGraceEnds, "{action:?}");
                        assert_eq!(lifecycle.check(action, now), Ok(()));
                        assert_eq!(
                            lifecycle.check(action, EXPIRES + 3 * DAY),
                            Err(TransitionError::Expired)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_jobs_are_due_from_the_stored_status_only() {
        // The expire job writes what callers already see: only a stored ACTIVE trial is due.
        assert!(trial(Active).is_due(Job::Expire, EXPIRES));
        assert!(!trial(Expired).is_due(Job::Expire, EXPIRES));
        let legacy_cancel = Lifecycle {
            canceled_at: None,
            ..trial(Canceled)
        };
        assert!(!legacy_cancel.is_purge_due(i64::MAX / 2));
        assert_eq!(legacy_cancel.purge_due_at(), None);
        assert_eq!(trial(Active).purge_due_at(), Some(EXPIRES + 3 * DAY));
        assert_eq!(trial(Canceled).purge_due_at(), Some(EXPIRES + 2 * DAY));
        for phase in Phase::ALL {
            let asked = Transition::from(Action::Cancel).window(phase);
            assert_eq!(
                asked.is_some(),
                matches!(phase, Phase::Active | Phase::Paused | Phase::Pending)
            );
        }
    }

    #[test]
    fn a_pending_trial_activates_or_lapses_at_its_deadline() {
        let pending = trial(Pending);
        assert_eq!(pending.status_at(EXPIRES - 1), Pending);
        assert_eq!(pending.status_at(EXPIRES), Expired);
        assert_eq!(pending.check_activate(EXPIRES - 1), Ok(()));
        assert_eq!(
            pending.check_activate(EXPIRES),
            Err(TransitionError::AlreadyExpired)
        );
        assert_eq!(
            trial(Active).check_activate(0),
            Err(TransitionError::NotPending)
        );
        assert_eq!(
            trial(Paused).check_activate(0),
            Err(TransitionError::NotPending)
        );
        for ok in [
            Action::Usage,
            Action::Convert,
            Action::Cancel,
            Action::Payment,
        ] {
            assert_eq!(pending.check(ok, EXPIRES - 1), Ok(()), "{ok:?}");
        }
        for refused in [
            Action::Pause,
            Action::Resume,
            Action::Extend,
            Action::AdminChange,
            Action::ChangePlan,
        ] {
            assert_eq!(
                pending.check(refused, EXPIRES - 1),
                Err(TransitionError::Pending),
                "{refused:?}"
            );
        }
        assert!(!pending.is_expiry_due(EXPIRES - 1));
        assert!(pending.is_expiry_due(EXPIRES));
        assert_eq!(pending.purge_due_at(), Some(EXPIRES + 3 * DAY));
        assert_eq!(TrialStatus::parse("PENDING"), Some(Pending));
        assert_eq!(
            (
                TransitionError::Pending.code().as_str(),
                TransitionError::NotPending.code().as_str()
            ),
            ("trial_pending", "trial_not_pending")
        );
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

    #[test]
    fn a_reverse_trial_is_downgraded_from_its_end_converts_records_usage_and_is_never_purged() {
        let reverse = Lifecycle {
            downgrades: true,
            ..trial(Active)
        };
        assert_eq!(reverse.phase(EXPIRES - 1), Phase::Active);
        assert_eq!(reverse.phase(EXPIRES), Phase::Ending);
        assert_eq!(reverse.status_at(EXPIRES), Downgraded, "reported at once");
        assert!(reverse.is_expiry_due(EXPIRES), "the expire job writes it");
        assert_eq!(reverse.purge_due_at(), None);
        let downgraded = Lifecycle {
            downgrades: false,
            ..trial(Downgraded)
        };
        let never = i64::MAX / 2;
        assert!(!downgraded.is_expiry_due(never) && !downgraded.is_purge_due(never));
        assert_eq!(downgraded.purge_due_at(), None);
        for lifecycle in [reverse, downgraded] {
            let late = EXPIRES + 100 * DAY;
            for action in [Action::Convert, Action::Usage] {
                assert_eq!(lifecycle.check(action, late), Ok(()), "{action:?}");
            }
            assert_eq!(lifecycle.check_payment(), Ok(()));
            for action in [
                Action::Cancel,
                Action::Pause,
                Action::Resume,
                Action::Extend,
                Action::AdminChange,
                Action::ChangePlan,
            ] {
                assert_eq!(
                    lifecycle.check(action, late),
                    Err(TransitionError::Downgraded),
                    "{action:?}"
                );
            }
        }
        let code = TransitionError::Downgraded.code();
        assert_eq!((code.as_str(), code.status()), ("trial_downgraded", 409));
        assert_eq!(TrialStatus::parse("DOWNGRADED"), Some(Downgraded));
    }

    #[test]
    fn billing_moves_once_and_only_from_awaiting_its_first_payment() {
        use Billing::*;
        use BillingChange::*;
        assert_eq!(Billing::of(None, None), AwaitingFirstPayment);
        assert_eq!(Billing::of(Some(1), None), Paid);
        assert_eq!(Billing::of(Some(1), Some(2)), Paid, "paid before the end");
        assert_eq!(Billing::of(Some(3), Some(2)), Lapsed);
        assert_eq!(Billing::of(None, Some(2)), Lapsed);
        assert_eq!(AwaitingFirstPayment.after(FirstPaidInvoice), Some(Paid));
        assert_eq!(AwaitingFirstPayment.after(Ended), Some(Lapsed));
        assert_eq!(Lapsed.after(PaidBeforeTheEnd), Some(Paid));
        for (from, change) in [
            (Paid, FirstPaidInvoice),
            (Paid, Ended),
            (Paid, PaidBeforeTheEnd),
            (Lapsed, FirstPaidInvoice),
            (Lapsed, Ended),
            (AwaitingFirstPayment, PaidBeforeTheEnd),
        ] {
            assert_eq!(from.after(change), None, "{from:?} {change:?}");
        }
        assert!(subscription_ended("canceled") && subscription_ended("incomplete_expired"));
        assert!(!subscription_ended("past_due") && !subscription_ended("trialing"));
    }
}
