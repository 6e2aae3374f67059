//! The trial: what is stored about it, the views the API shows, and its pure lifecycle moves
//! (pause, resume, extend) that return the trial as it is after the move. Each move checks the
//! state machine first and keeps the active-range invariants of [`super::lifecycle`]; none
//! reads a clock or writes anything: the caller supplies `now` and stores the result with a
//! condition on what it read.
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::active_ranges::{bound_ranges, total_active_secs, ActiveRange, LifecycleTerms};
use super::applicant::{Applicant, Privilege};
use super::catalog::{options_view, TrialTerms};
use super::extension::Extension;
use super::state_machine::{
    Billing, ExtendFrom, ExtensionRefusal, Lifecycle, Phase, TransitionError, TrialStatus,
};
use super::time::rfc3339;
use super::{OrgId, Plan, ProjectId, TrialId};

const DAY_SECS: i64 = 86_400;

/// Trial length and grace period: a trial's own, from the terms it started with
/// ([`Trial::policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialPolicy {
    pub length_secs: i64,
    pub grace_secs: i64,
}

impl Default for TrialPolicy {
    fn default() -> Self {
        TrialPolicy {
            length_secs: 7 * DAY_SECS,
            grace_secs: 3 * DAY_SECS,
        }
    }
}

/// A Stripe Checkout Session opened for a trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub session_id: String,
    pub url: String,
    pub expires_at: i64,
    /// The `subscription_data[trial_end]` the session was created with: the subscription's
    /// first charge. `None`: billing starts when the customer pays.
    pub trial_end: Option<i64>,
}

/// A payment Stripe reported as on its way (a bank debit: SEPA, ACH, Bacs take days): the
/// session completed unpaid, and `async_payment_succeeded` or `_failed` follows. While it is
/// pending, the trial is not purged and convert answers this session instead of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPayment {
    pub session_id: String,
    pub since: i64,
}

/// How long a payment on its way holds a trial by default (`PENDING_PAYMENT_MAX_AGE`): Stripe
/// documents SEPA Direct Debit, its slowest delayed method, as settling within 14 business days
/// (about 20 calendar days); a day more for the last event's delivery.
pub const PENDING_MAX_AGE_SECS: i64 = 21 * DAY_SECS;

impl PendingPayment {
    /// Whether the payment still holds the trial at `now`: younger than `max_age_secs`. An
    /// older one is presumed lost (its last event never came): convert may open a new session,
    /// cancel and purge no longer wait for it.
    pub fn holds_at(&self, now: i64, max_age_secs: i64) -> bool {
        self.since > now - max_age_secs
    }
}

/// What a Checkout Session must match to pay for a trial: the trial, org and plan that convert
/// wrote into its metadata (only the merchant sets metadata; a Payment Link's buyer can put
/// anything in `client_reference_id`, nothing in metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBinding {
    pub trial_id: TrialId,
    pub org_id: OrgId,
    pub plan: Plan,
}

/// What Stripe told us when the payment completed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payment {
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
}

/// The Stripe subscription a conversion created, as its events last told it (see
/// [`crate::domain::state_machine::Billing`]). Recorded only for the subscription the trial
/// holds (`stripe_subscription_id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub id: String,
    /// Stripe's `status` (`trialing`, `active`, `past_due`, `canceled`, ...), once an event said.
    pub status: Option<String>,
    pub current_period_end: Option<i64>,
    /// When the first invoice paid with money was paid (a trial's 0-amount invoice is not).
    pub first_paid_at: Option<i64>,
    /// When it ended before any paid invoice (the conversion lapsed).
    pub lapsed_at: Option<i64>,
}

impl Subscription {
    pub fn billing(&self) -> Billing {
        Billing::of(self.first_paid_at, self.lapsed_at)
    }

    /// `{id, status, current_period_end, first_paid_at, billing, lapsed_at}` of `GET`.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "current_period_end": self.current_period_end.map(rfc3339),
            "first_paid_at": self.first_paid_at.map(rfc3339),
            "billing": self.billing().as_str(),
            // Only while lapsed: a payment from before the end, delivered late, revokes it.
            "lapsed_at": self.lapsed_at.filter(|_| self.billing() == Billing::Lapsed).map(rfc3339),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub id: TrialId,
    pub org_id: OrgId,
    /// The project the trial was started under (`X-Project-Id` of the start): only API keys
    /// allowed that project act on it. `None` for trials stored before projects were recorded,
    /// which only keys for all projects act on.
    pub project_id: Option<ProjectId>,
    pub plan: Plan,
    pub status: TrialStatus,
    pub started_at: i64,
    pub expires_at: i64,
    pub canceled_at: Option<i64>,
    pub converted_at: Option<i64>,
    pub checkout: Option<Checkout>,
    pub pending: Option<PendingPayment>,
    pub payment: Option<Payment>,
    /// When the current pause began: set while PAUSED. After a cancel or a conversion from
    /// PAUSED it stays as the record of the last pause.
    pub paused_at: Option<i64>,
    /// When the trial was (or is planned to be) active; see [`super::lifecycle`]. Never empty
    /// for a trial built by [`Trial::start`]; an empty list reads as `[started_at, expires_at]`.
    pub active_ranges: Vec<ActiveRange>,
    /// How many times the trial has paused, as stored (`None`: never written, an item from
    /// before the count or never paused; [`Trial::pause_count`] reads it). It names the pause
    /// and resume events, so unlike the ranges (bounded, see
    /// [`super::active_ranges::MAX_RANGES`]) it only grows, and every move's write pins it.
    pub pauses: Option<i64>,
    /// The plan's terms when the trial started (length, grace, options): editing the catalog
    /// never changes a running trial.
    pub terms: TrialTerms,
    /// Usage recorded against each limited option, by internal name (absent: 0).
    pub used: BTreeMap<String, i64>,
    /// The keys of the latest usage recordings, by [`super::usage::key_id`] (see
    /// [`super::usage`]); `None` for an item stored before keys were recorded there.
    pub usage_keys: Option<BTreeMap<String, super::usage::RecordedKey>>,
    /// Why an EXPIRED trial ended before its time (`limit_reached`); `None` otherwise.
    pub expiry_reason: Option<String>,
    /// Who asked for the trial ([`Applicant::to_json`]'s fields: never the client IP or device
    /// id, which exist only as signal HMACs).
    pub applicant: Option<Applicant>,
    /// An admin key's free-text notes (set at start or by `PATCH`).
    pub notes: Option<String>,
    /// Started by `POST /v1/trials/skip`: no free days, straight to a paid checkout.
    pub is_trial_skipped: bool,
    /// The subscription the conversion created, once Stripe told us about it.
    pub subscription: Option<Subscription>,
    /// Never activated: the activation deadline a PENDING trial was started with (`expires_at`
    /// holds it too while PENDING, for the `due` index and the state machine's clock). Kept
    /// by a trial that lapsed, was canceled or converted without activating (it never had an
    /// active range); `None` once activated, and for every trial that started ACTIVE.
    pub activate_by: Option<i64>,
    /// A reverse trial that ended on its free plan (DOWNGRADED): the plan it trialled (what
    /// convert buys) and when it downgraded (its `expires_at`). `None` otherwise.
    pub downgraded_from: Option<Plan>,
    pub downgraded_at: Option<i64>,
}

/// `expiry_reason` of a trial an `ends_trial` limit ended.
pub const EXPIRY_LIMIT_REACHED: &str = "limit_reached";
/// `expiry_reason` of a PENDING trial that lapsed unactivated (its activation window passed).
pub const EXPIRY_ACTIVATION_WINDOW: &str = "activation_window";

impl Trial {
    /// A new ACTIVE trial of `terms.plan`, on those terms.
    pub fn start(id: TrialId, org_id: OrgId, now: i64, terms: TrialTerms) -> Trial {
        let expires_at = now + terms.trial_length_secs;
        Trial {
            id,
            org_id,
            project_id: None,
            plan: terms.plan.clone(),
            status: TrialStatus::Active,
            started_at: now,
            expires_at,
            canceled_at: None,
            converted_at: None,
            checkout: None,
            pending: None,
            payment: None,
            paused_at: None,
            active_ranges: vec![ActiveRange::new(now, expires_at)],
            pauses: None,
            terms,
            used: BTreeMap::new(),
            usage_keys: Some(BTreeMap::new()),
            expiry_reason: None,
            applicant: None,
            notes: None,
            is_trial_skipped: false,
            subscription: None,
            activate_by: None,
            downgraded_from: None,
            downgraded_at: None,
        }
    }

    /// A new PENDING trial of `terms.plan`: its clock starts on activation, at the latest by
    /// `now + activation_window_secs` (after which it lapses unused). No active range yet.
    pub fn start_pending(
        id: TrialId,
        org_id: OrgId,
        now: i64,
        terms: TrialTerms,
        activation_window_secs: i64,
    ) -> Trial {
        let deadline = now + activation_window_secs;
        Trial {
            status: TrialStatus::Pending,
            expires_at: deadline,
            active_ranges: Vec::new(),
            activate_by: Some(deadline),
            ..Trial::start(id, org_id, now, terms)
        }
    }

    /// Activate: PENDING only, before its deadline. The clock starts at `now`: `expires_at` is
    /// `now` + the trial's length and the first active range opens.
    pub fn activate(&self, now: i64, policy: TrialPolicy) -> Result<Trial, TransitionError> {
        self.lifecycle(policy).check_activate(now)?;
        let expires_at = now + policy.length_secs;
        Ok(Trial {
            status: TrialStatus::Active,
            expires_at,
            active_ranges: vec![ActiveRange::new(now, expires_at)],
            activate_by: None,
            ..self.clone()
        })
    }

    /// The same trial, started under `project`.
    pub fn in_project(mut self, project: ProjectId) -> Trial {
        self.project_id = Some(project);
        self
    }

    /// The same trial, ending at `expires_at` (an admin's date, checked by the caller): the
    /// current active range ends there too.
    pub fn ending_at(mut self, expires_at: i64) -> Trial {
        self.active_ranges = self.ranges();
        if let Some(current) = self.active_ranges.last_mut() {
            current.end = expires_at;
        }
        self.expires_at = expires_at;
        self
    }

    /// The trial's own length and grace, from its terms.
    pub fn policy(&self) -> TrialPolicy {
        TrialPolicy {
            length_secs: self.terms.trial_length_secs,
            grace_secs: self.terms.grace_secs,
        }
    }

    /// Gcore's `active_ranges`: the periods the trial ran or runs. A canceled or converted
    /// trial's ranges end when it stopped (see [`Trial::lifecycle_fields`]).
    pub fn active_ranges_view(&self) -> Value {
        let mut shown = self.clone();
        if let Some(stopped) = match self.status {
            TrialStatus::Converted => self.converted_at,
            TrialStatus::Canceled => self.canceled_at,
            _ => None,
        } {
            shown.close_active_range(stopped);
        }
        Value::Array(shown.ranges().iter().map(ActiveRange::view).collect())
    }

    /// Gcore's `options`, with this trial's usage.
    pub fn options_view(&self) -> Value {
        let used: HashMap<String, i64> = self.used.clone().into_iter().collect();
        options_view(&self.terms, &used)
    }

    /// The body of `GET /v1/trials/{id}/data`: Gcore's trial data, with Gcore's names and JSON
    /// types (our ids are strings where Gcore's are integers: `api::gcore` renders them as
    /// integers). `company_name` is the applicant's; `days_limit` the trial's current length
    /// ([`Trial::current_days_limit`]).
    pub fn data_view(&self, now: i64, company_name: Option<&str>, skipped: bool) -> Value {
        json!({
            "id": self.id.as_str(),
            "client_id": self.org_id.as_str(),
            "client": { "id": self.org_id.as_str(), "company_name": company_name },
            "product": {
                "id": self.terms.product.id,
                "name": self.terms.product.name,
                "internal_name": self.terms.product.internal_name,
            },
            "plan": { "id": self.plan.as_str(), "name": self.terms.name },
            "days_limit": self.current_days_limit(),
            "active_ranges": self.active_ranges_view(),
            "created_at": rfc3339(self.started_at),
            "options": self.options_view(),
            "remaining_duration": self.remaining_duration(now),
            "is_trial_skipped": skipped,
        })
    }

    /// Gcore's `days_limit`: the trial's length as it stands, in whole days rounded up: from its
    /// start to its end less the gaps between its active ranges (pauses, the wait before an
    /// extension revived it). An extension or an admin's date moves it; a pause does not
    /// (its end moves by the pause).
    pub fn current_days_limit(&self) -> i64 {
        if self.activate_by.is_some() {
            // Never activated: the length the activation will give.
            return self.terms.days_limit();
        }
        let ranges = self.ranges();
        let gaps: i64 = ranges
            .windows(2)
            .map(|pair| (pair[1].start - pair[0].end).max(0))
            .sum();
        // From the first range's start: a trial that waited PENDING counts from its activation.
        let began = ranges.first().map_or(self.started_at, |r| r.start);
        let secs = (self.expires_at - began - gaps).max(0);
        (secs + DAY_SECS - 1) / DAY_SECS
    }

    pub fn lifecycle(&self, policy: TrialPolicy) -> Lifecycle {
        Lifecycle {
            status: self.status,
            expires_at: self.expires_at,
            canceled_at: self.canceled_at,
            grace_secs: policy.grace_secs,
            downgrades: self.terms.downgrade_to.is_some(),
        }
    }

    /// Whole days left, rounded up, of [`Trial::remaining_duration`]; 0 when that is `None`.
    /// Frozen while PAUSED.
    pub fn days_remaining(&self, now: i64) -> i64 {
        self.remaining_duration(now)
            .map_or(0, |secs| (secs + DAY_SECS - 1) / DAY_SECS)
    }

    /// Whole seconds until the trial ends (Gcore's `remaining_duration`): `expires_at - now`
    /// while ACTIVE at `now`; while PAUSED the time that was left when it paused,
    /// `expires_at - paused_at`, which is what resuming gives back; `None` otherwise (pending:
    /// not started, as Gcore's seed says; expired, converted, canceled). Ask a settled trial ([`Trial::settled_at`]).
    pub fn remaining_duration(&self, now: i64) -> Option<i64> {
        match self.status {
            TrialStatus::Active if now < self.expires_at => Some(self.expires_at - now),
            TrialStatus::Paused => Some((self.expires_at - self.paused_since()).max(0)),
            _ => None,
        }
    }

    /// The ranges, with an empty list read as the single range a trial starts with (none for a
    /// trial never activated).
    pub fn ranges(&self) -> Vec<ActiveRange> {
        if self.active_ranges.is_empty() && self.activate_by.is_none() {
            vec![ActiveRange::new(self.started_at, self.expires_at)]
        } else {
            self.active_ranges.clone()
        }
    }

    /// How many times the trial has paused: the stored count, else (an item from before the
    /// count) what the ranges imply, the numbering event ids had then: each pause closed a
    /// range and each resume opened one, so a PAUSED trial has paused once per range, any
    /// other once per range but the current one. That keeps the next ids clear of the old.
    pub fn pause_count(&self) -> i64 {
        self.pauses.unwrap_or_else(|| {
            let ranges = self.ranges().len() as i64;
            match self.status {
                TrialStatus::Paused => ranges,
                _ => ranges - 1,
            }
        })
    }

    /// When the current pause began. A PAUSED trial without `paused_at` (not one this code
    /// writes) counts from the end of its last range, which pausing set to the same instant.
    fn paused_since(&self) -> i64 {
        self.paused_at
            .or_else(|| self.active_ranges.last().map(|r| r.end))
            .unwrap_or(self.expires_at)
    }

    /// When a PAUSED trial resumes by itself: `pause_max_secs` after it paused.
    pub fn auto_resume_at(&self, terms: &LifecycleTerms) -> Option<i64> {
        (self.status == TrialStatus::Paused).then(|| self.paused_since() + terms.pause_max_secs)
    }

    /// Whether the resume job should resume this trial at `now`.
    pub fn is_auto_resume_due(&self, now: i64, terms: &LifecycleTerms) -> bool {
        self.auto_resume_at(terms).is_some_and(|at| now >= at)
    }

    /// The trial as it is at `now`: a pause past its maximum has resumed, as of the moment the
    /// maximum was reached, even before the resume job has written it (as an ACTIVE trial past
    /// its end is EXPIRED before the expire job runs). Reads and moves should start from here.
    pub fn settled_at(self, now: i64, policy: TrialPolicy, terms: &LifecycleTerms) -> Trial {
        // A reverse trial past its end is on its free plan, as the expire job will write it.
        if self.lifecycle(policy).phase(now) == Phase::Ending {
            if let Some(downgraded) = self.downgraded() {
                return downgraded;
            }
        }
        if self.is_auto_resume_due(now, terms) {
            if let Ok(resumed) = self.resume(now, policy, terms) {
                return resumed;
            }
        }
        self
    }

    /// The plan the trial trialled: what convert buys (a DOWNGRADED trial's is the plan it
    /// downgraded from, not its free plan).
    pub fn trialled_plan(&self) -> &Plan {
        self.downgraded_from.as_ref().unwrap_or(&self.plan)
    }

    /// The trial on its free plan (a reverse trial's end, `None` for a plan that expires): the
    /// free plan's terms (snapshotted at the start) with the use so far kept by option name,
    /// DOWNGRADED as of `expires_at`, the trialled plan kept as `downgraded_from`. What the
    /// expire job writes (`Store::expire_update`) and what readers see before it has. `None`
    /// too for a trial never activated: unused, it lapses whatever its plan's ending.
    pub fn downgraded(&self) -> Option<Trial> {
        if self.activate_by.is_some() {
            return None;
        }
        let free = self.terms.downgrade_to.as_deref()?.clone();
        let mut after = self.clone();
        after.close_active_range(self.expires_at);
        after.status = TrialStatus::Downgraded;
        after.plan = free.plan.clone();
        after.terms = free;
        after.downgraded_from = Some(self.plan.clone());
        after.downgraded_at = Some(self.expires_at);
        Some(after)
    }

    /// Pause: ACTIVE only. The current range closes at `now` and the remaining time freezes
    /// (`expires_at` stays the planned end; resuming moves it).
    pub fn pause(&self, now: i64, policy: TrialPolicy) -> Result<Trial, TransitionError> {
        self.lifecycle(policy).check_pause(now)?;
        let mut paused = self.clone();
        paused.active_ranges = self.ranges();
        if let Some(current) = paused.active_ranges.last_mut() {
            current.end = now.max(current.start);
        }
        paused.status = TrialStatus::Paused;
        paused.paused_at = Some(now);
        paused.pauses = Some(self.pause_count() + 1);
        Ok(paused)
    }

    /// Resume: PAUSED only. The trial resumes at `now`, or at its automatic resume time if that
    /// came first (a late job or a late request gives no more than the pause maximum):
    /// `expires_at` moves by the time spent paused and a new range opens to it, as long as the
    /// time that was left.
    pub fn resume(
        &self,
        now: i64,
        policy: TrialPolicy,
        terms: &LifecycleTerms,
    ) -> Result<Trial, TransitionError> {
        self.lifecycle(policy).check_resume(now)?;
        let paused_at = self.paused_since();
        let at = now.min(paused_at + terms.pause_max_secs).max(paused_at);
        let mut resumed = self.clone();
        resumed.expires_at = self.expires_at + (at - paused_at);
        resumed.active_ranges = self.ranges();
        resumed
            .active_ranges
            .push(ActiveRange::new(at, resumed.expires_at));
        resumed.active_ranges = bound_ranges(std::mem::take(&mut resumed.active_ranges));
        // Counted before the status changes (a legacy count depends on it).
        resumed.pauses = Some(self.pause_count());
        resumed.status = TrialStatus::Active;
        resumed.paused_at = None;
        Ok(resumed)
    }

    /// Extend: from ACTIVE (the current range continues to the new end) or from EXPIRED within
    /// grace (the trial is ACTIVE again, in a new range from `now`; its purge time moves with
    /// `expires_at`). The new end must be later than the current end (and than `now`), and the
    /// total active time after the change, [`total_active_secs`], at most the plan's
    /// `max_total_secs`: else 422 `invalid_extension`.
    pub fn extend(
        &self,
        extension: Extension,
        now: i64,
        policy: TrialPolicy,
        terms: &LifecycleTerms,
    ) -> Result<Trial, TransitionError> {
        let from = self.lifecycle(policy).check_extend(now)?;
        let new_end = extension.new_end(from, self.expires_at, now);
        let floor = match from {
            ExtendFrom::Continuing => self.expires_at,
            ExtendFrom::Revived => self.expires_at.max(now),
        };
        if new_end <= floor {
            return Err(TransitionError::InvalidExtension(
                ExtensionRefusal::NotLater,
            ));
        }
        let mut extended = self.clone();
        extended.active_ranges = self.ranges();
        match from {
            ExtendFrom::Continuing => {
                if let Some(current) = extended.active_ranges.last_mut() {
                    current.end = new_end;
                }
            }
            ExtendFrom::Revived => extended.active_ranges.push(ActiveRange::new(now, new_end)),
        }
        extended.active_ranges = bound_ranges(std::mem::take(&mut extended.active_ranges));
        if total_active_secs(&extended.active_ranges) > terms.max_total_secs {
            return Err(TransitionError::InvalidExtension(
                ExtensionRefusal::BeyondMaximum,
            ));
        }
        extended.status = TrialStatus::Active;
        extended.expires_at = new_end;
        // A trial that lapsed unactivated, revived: it has an active range now.
        extended.activate_by = None;
        Ok(extended)
    }

    /// The trial stops being active at `now` (canceled or converted): the current range ends at
    /// `now` if it was planned to end later. A paused or expired trial's ranges are already
    /// closed and stay as they are.
    pub fn close_active_range(&mut self, now: i64) {
        self.active_ranges = self.ranges();
        if let Some(current) = self.active_ranges.last_mut() {
            if current.end > now {
                current.end = now.max(current.start);
            }
        }
    }

    /// The open checkout session, if Stripe still accepts it at `now`.
    pub fn open_checkout(&self, now: i64) -> Option<&Checkout> {
        self.checkout.as_ref().filter(|c| now < c.expires_at)
    }

    /// The payment on its way that still holds the trial at `now` (see
    /// [`PendingPayment::holds_at`]); never for a CONVERTED trial.
    pub fn pending_at(&self, now: i64, max_age_secs: i64) -> Option<&PendingPayment> {
        self.pending
            .as_ref()
            .filter(|p| self.status != TrialStatus::Converted && p.holds_at(now, max_age_secs))
    }

    /// When the trial's free time ends for billing, asked at `now`: `expires_at`, except while
    /// PAUSED, where the end before the pause is stale (resuming moves it): the time that was
    /// left, counted from `now`.
    pub fn billing_end(&self, now: i64) -> i64 {
        match self.status {
            TrialStatus::Paused => now + self.remaining_duration(now).unwrap_or(0),
            // Not started: its whole length, as if activated now (the deadline is no end). One
            // past its deadline has lapsed (EXPIRED before the job writes it): no free time left.
            TrialStatus::Pending if now < self.expires_at => now + self.terms.trial_length_secs,
            _ => self.expires_at,
        }
    }

    /// The body of `POST /v1/trials/start`: exactly the fields of the API reference, as
    /// `reader` may read them (`notes` only for [`Privilege::Admin`]).
    pub fn started_view(&self, reader: Privilege) -> Value {
        let mut view = json!({
            "id": self.id.as_str(),
            "plan": self.plan.as_str(),
            "status": self.status.as_str(),
            "started_at": rfc3339(self.started_at),
            "expires_at": rfc3339(self.expires_at),
            "org_id": self.org_id.as_str(),
        });
        self.add_activation_fields(&mut view);
        self.add_applicant_fields(&mut view, reader);
        view
    }

    /// A trial never activated: `activate_by` (its deadline) and, while it is PENDING, no end
    /// (`expires_at` null: the deadline is not the trial's end).
    fn add_activation_fields(&self, view: &mut Value) {
        if let Some(at) = self.activate_by {
            view["activate_by"] = rfc3339(at).into();
            if self.status == TrialStatus::Pending {
                view["expires_at"] = Value::Null;
            }
        }
    }

    /// `applicant` (the org's own data, returned to it) when the trial has it, and `notes` when
    /// it has them and `reader` is an admin key: an operator's notes about the org are written
    /// and read by admin keys only (issue 26), as they are set.
    fn add_applicant_fields(&self, view: &mut Value, reader: Privilege) {
        if let Some(applicant) = &self.applicant {
            view["applicant"] = applicant.to_json();
        }
        if let (Some(notes), Privilege::Admin) = (&self.notes, reader) {
            view["notes"] = Value::String(notes.clone());
        }
        if self.is_trial_skipped {
            view["is_trial_skipped"] = true.into();
        }
    }

    /// The body of `GET /v1/trials/{id}`, cancel, extend, pause and resume: the status as of
    /// `now`, plus what happened to the trial since it started, as `reader` may read it (see
    /// [`Trial::started_view`]).
    pub fn view_at(&self, now: i64, policy: TrialPolicy, reader: Privilege) -> Value {
        let mut view = match self.started_view(reader) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let status = self.lifecycle(policy).status_at(now);
        view.insert("status".into(), status.as_str().into());
        // Not started yet: no days to count down (null, not 0).
        let days = match status {
            TrialStatus::Pending => Value::Null,
            _ => self.days_remaining(now).into(),
        };
        view.insert("days_remaining".into(), days);
        if status != TrialStatus::Pending && self.status == TrialStatus::Pending {
            // Lapsed unactivated before the expire job wrote it: the deadline was its end.
            view.insert("expires_at".into(), rfc3339(self.expires_at).into());
        }
        // The one-trial rule is per product: say which product's trial this is.
        view.insert("product".into(), self.terms.product.id.clone().into());
        if let Some(at) = self.canceled_at {
            view.insert("canceled_at".into(), rfc3339(at).into());
        }
        if let Some(at) = self.converted_at {
            view.insert("converted_at".into(), rfc3339(at).into());
        }
        if status == TrialStatus::Paused {
            if let Some(at) = self.paused_at {
                view.insert("paused_at".into(), rfc3339(at).into());
            }
        }
        if status == TrialStatus::Expired {
            view.insert(
                "grace_period_ends_at".into(),
                rfc3339(self.expires_at + policy.grace_secs).into(),
            );
        }
        // Gcore's fields that do not clash with this shape (`plan` stays a string).
        view.insert("days_limit".into(), self.terms.days_limit().into());
        view.extend(self.lifecycle_fields(now));
        view.insert("options".into(), self.options_view());
        if let Some(reason) = &self.expiry_reason {
            view.insert("expiry_reason".into(), reason.as_str().into());
        }
        // A reverse trial on its free plan: the plan it trialled, and when it downgraded.
        if let (Some(from), Some(at)) = (&self.downgraded_from, self.downgraded_at) {
            view.insert("downgraded_from".into(), from.as_str().into());
            view.insert("downgraded_at".into(), rfc3339(at).into());
        }
        view.insert("subscription".into(), self.subscription_view());
        Value::Object(view)
    }

    /// The subscription a conversion created: null before the conversion (events that came
    /// before the checkout's completion are kept, and shown once it converts).
    pub fn subscription_view(&self) -> Value {
        match (&self.subscription, self.status) {
            (Some(sub), TrialStatus::Converted) => sub.view(),
            _ => Value::Null,
        }
    }

    /// Gcore's history fields, part of every view ([`Trial::view_at`]):
    /// `remaining_duration` (seconds, or null) and `active_ranges`.
    ///
    /// A canceled or converted trial's ranges end when it stopped: the webhook converts without
    /// reading the trial, so the stored ranges may still show the planned end, and the view
    /// closes them at `converted_at` / `canceled_at` instead (the same as
    /// [`Trial::close_active_range`] would have written).
    pub fn lifecycle_fields(&self, now: i64) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert(
            "remaining_duration".into(),
            self.remaining_duration(now).into(),
        );
        fields.insert("active_ranges".into(), self.active_ranges_view());
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;

    fn trial(now: i64) -> Trial {
        Trial::start(
            TrialId::generate(),
            OrgId::parse("org_a").unwrap(),
            now,
            Catalog::builtin().get("growth").unwrap().snapshot(),
        )
    }

    #[test]
    fn an_activated_trials_days_limit_counts_from_its_activation() {
        let terms = Catalog::builtin().get("growth").unwrap().snapshot();
        let org = OrgId::parse("org_a").unwrap();
        let pending = Trial::start_pending(TrialId::generate(), org, 0, terms, 10 * DAY_SECS);
        assert_eq!(pending.current_days_limit(), 7);
        let policy = pending.policy();
        let active = pending.activate(2 * DAY_SECS, policy).expect("PENDING");
        assert_eq!(
            active.current_days_limit(),
            7,
            "not 9: the wait is no trial time"
        );
    }

    #[test]
    fn a_pending_trial_bills_its_whole_length_from_now_until_it_lapses() {
        let terms = Catalog::builtin().get("growth").unwrap().snapshot();
        let length = terms.trial_length_secs;
        let org = OrgId::parse("org_a").unwrap();
        let pending = Trial::start_pending(TrialId::generate(), org, 0, terms, 10 * DAY_SECS);
        assert_eq!(pending.billing_end(DAY_SECS), DAY_SECS + length);
        // Past its deadline it has lapsed (EXPIRED before the job writes it): no free time.
        assert_eq!(pending.billing_end(10 * DAY_SECS), 10 * DAY_SECS);
        assert_eq!(pending.billing_end(11 * DAY_SECS), 10 * DAY_SECS);
    }

    #[test]
    fn days_remaining_rounds_up_and_is_zero_when_not_active() {
        let t = trial(0);
        assert_eq!(t.days_remaining(0), 7);
        assert_eq!(t.days_remaining(1), 7);
        assert_eq!(t.days_remaining(DAY_SECS), 6);
        assert_eq!(t.days_remaining(7 * DAY_SECS - 1), 1);
        assert_eq!(t.days_remaining(7 * DAY_SECS), 0);
        let canceled = Trial {
            status: TrialStatus::Canceled,
            ..t
        };
        assert_eq!(canceled.days_remaining(0), 0);
    }

    #[test]
    fn view_reports_expired_once_the_clock_passes_expires_at() {
        let t = trial(1_775_469_600);
        let policy = TrialPolicy::default();
        let before = t.view_at(t.expires_at - 1, policy, Privilege::Admin);
        assert_eq!(before["status"], "ACTIVE");
        assert_eq!(before["days_remaining"], 1);
        let after = t.view_at(t.expires_at, policy, Privilege::Admin);
        assert_eq!(after["status"], "EXPIRED");
        assert_eq!(after["days_remaining"], 0);
        assert_eq!(after["expires_at"], "2026-04-13T10:00:00Z");
        assert_eq!(after["grace_period_ends_at"], "2026-04-16T10:00:00Z");
    }

    const DAY: i64 = DAY_SECS;

    fn policy() -> TrialPolicy {
        TrialPolicy {
            length_secs: 7 * DAY,
            grace_secs: 3 * DAY,
        }
    }

    fn ranges(t: &Trial) -> Vec<(i64, i64)> {
        t.active_ranges.iter().map(|r| (r.start, r.end)).collect()
    }

    fn refused(e: ExtensionRefusal) -> Result<Trial, TransitionError> {
        Err(TransitionError::InvalidExtension(e))
    }

    #[test]
    fn a_trial_starts_with_one_range_to_its_end() {
        let t = trial(100);
        assert_eq!(ranges(&t), vec![(100, 100 + 7 * DAY)]);
        assert_eq!(t.paused_at, None);
        assert_eq!(t.remaining_duration(100), Some(7 * DAY));
        assert_eq!(t.remaining_duration(100 + 7 * DAY), None);
    }

    #[test]
    fn pause_closes_the_range_and_freezes_the_remaining_time() {
        let t = trial(0);
        let paused = t.pause(2 * DAY + 5, policy()).unwrap();
        assert_eq!(paused.status, TrialStatus::Paused);
        assert_eq!(paused.paused_at, Some(2 * DAY + 5));
        assert_eq!(paused.expires_at, t.expires_at);
        assert_eq!(ranges(&paused), vec![(0, 2 * DAY + 5)]);
        for now in [2 * DAY + 5, 6 * DAY, 40 * DAY] {
            assert_eq!(paused.remaining_duration(now), Some(5 * DAY - 5));
            assert_eq!(paused.days_remaining(now), 5);
        }
        let view = paused.view_at(40 * DAY, policy(), Privilege::Admin);
        assert_eq!(view["status"], "PAUSED");
        assert_eq!(view["days_remaining"], 5);
        assert_eq!(view["paused_at"], rfc3339(2 * DAY + 5));
        assert!(view.get("grace_period_ends_at").is_none());
        assert_eq!(
            paused.pause(3 * DAY, policy()),
            Err(TransitionError::NotActive)
        );
        assert_eq!(
            t.pause(7 * DAY, policy()),
            Err(TransitionError::AlreadyExpired)
        );
    }

    #[test]
    fn pause_across_the_old_expiry_then_resume_moves_expires_at() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        let t = trial(0);
        let paused = t.pause(5 * DAY, policy).unwrap();
        // Well past the old end: still PAUSED, not due for expiry nor purge.
        let late = 12 * DAY;
        let lifecycle = paused.lifecycle(policy);
        assert_eq!(lifecycle.status_at(late), TrialStatus::Paused);
        assert!(!lifecycle.is_expiry_due(late));
        assert!(!lifecycle.is_purge_due(late));
        let resumed = paused.resume(late, policy, &terms).unwrap();
        assert_eq!(resumed.status, TrialStatus::Active);
        assert_eq!(resumed.paused_at, None);
        assert_eq!(resumed.expires_at, 7 * DAY + 7 * DAY);
        assert_eq!(ranges(&resumed), vec![(0, 5 * DAY), (12 * DAY, 14 * DAY)]);
        assert_eq!(resumed.remaining_duration(late), Some(2 * DAY));
        // Pausing and resuming leaves the total active time unchanged.
        assert_eq!(total_active_secs(&resumed.active_ranges), 7 * DAY);
        assert_eq!(
            resumed.resume(late, policy, &terms),
            Err(TransitionError::NotPaused)
        );
    }

    #[test]
    fn a_pause_past_its_maximum_resumes_as_of_the_maximum() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        let paused = trial(0).pause(DAY, policy).unwrap();
        let max_at = DAY + 30 * DAY;
        assert_eq!(paused.auto_resume_at(&terms), Some(max_at));
        assert!(!paused.is_auto_resume_due(max_at - 1, &terms));
        assert!(paused.is_auto_resume_due(max_at, &terms));
        assert_eq!(
            paused.clone().settled_at(max_at - 1, policy, &terms),
            paused
        );
        // The job runs two days late; a manual resume as late gets the same answer.
        let settled = paused.clone().settled_at(max_at + 2 * DAY, policy, &terms);
        assert_eq!(settled.status, TrialStatus::Active);
        assert_eq!(settled.expires_at, 7 * DAY + 30 * DAY);
        assert_eq!(ranges(&settled), vec![(0, DAY), (max_at, max_at + 6 * DAY)]);
        assert_eq!(
            paused.resume(max_at + 2 * DAY, policy, &terms),
            Ok(settled.clone())
        );
        assert_eq!(settled.auto_resume_at(&terms), None);
    }

    #[test]
    fn paused_trials_can_be_canceled_and_converted() {
        let paused = trial(0).pause(DAY, policy()).unwrap();
        let lifecycle = paused.lifecycle(policy());
        assert_eq!(lifecycle.check_cancel(20 * DAY), Ok(()));
        assert_eq!(lifecycle.check_convert(20 * DAY), Ok(()));
        let mut canceled = Trial {
            status: TrialStatus::Canceled,
            canceled_at: Some(20 * DAY),
            ..paused
        };
        canceled.close_active_range(20 * DAY);
        assert_eq!(ranges(&canceled), vec![(0, DAY)]);
        assert_eq!(canceled.remaining_duration(20 * DAY), None);
        assert_eq!(canceled.days_remaining(20 * DAY), 0);
    }

    #[test]
    fn cancel_of_an_active_trial_ends_its_range_then() {
        let mut t = trial(0);
        t.close_active_range(2 * DAY);
        assert_eq!(ranges(&t), vec![(0, 2 * DAY)]);
        t.close_active_range(3 * DAY);
        assert_eq!(ranges(&t), vec![(0, 2 * DAY)]);
    }

    #[test]
    fn extend_an_active_trial_continues_its_range() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        let t = trial(0);
        let by_days = t.extend(Extension::Days(3), DAY, policy, &terms).unwrap();
        assert_eq!(by_days.expires_at, 10 * DAY);
        assert_eq!(ranges(&by_days), vec![(0, 10 * DAY)]);
        let until = t
            .extend(Extension::Until(8 * DAY), DAY, policy, &terms)
            .unwrap();
        assert_eq!(until.expires_at, 8 * DAY);
        assert_eq!(
            t.extend(Extension::Until(7 * DAY), DAY, policy, &terms),
            refused(ExtensionRefusal::NotLater)
        );
        assert_eq!(
            t.extend(Extension::Until(6 * DAY), DAY, policy, &terms),
            refused(ExtensionRefusal::NotLater)
        );
        // After a pause and resume, the current (second) range is the one that grows.
        let resumed = t
            .pause(DAY, policy)
            .unwrap()
            .resume(3 * DAY, policy, &terms)
            .unwrap();
        let extended = resumed
            .extend(Extension::Days(1), 4 * DAY, policy, &terms)
            .unwrap();
        assert_eq!(ranges(&extended), vec![(0, DAY), (3 * DAY, 10 * DAY)]);
    }

    #[test]
    fn extend_during_grace_revives_the_trial_in_a_new_range() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        for status in [TrialStatus::Active, TrialStatus::Expired] {
            // Stored ACTIVE past its end (expire job not yet run) or stored EXPIRED: the same.
            let t = Trial { status, ..trial(0) };
            let now = 8 * DAY;
            let revived = t.extend(Extension::Days(2), now, policy, &terms).unwrap();
            assert_eq!(revived.status, TrialStatus::Active);
            assert_eq!(revived.expires_at, 10 * DAY);
            assert_eq!(ranges(&revived), vec![(0, 7 * DAY), (8 * DAY, 10 * DAY)]);
            let lifecycle = revived.lifecycle(policy);
            assert_eq!(lifecycle.status_at(now), TrialStatus::Active);
            // Purge moves with the new end.
            assert_eq!(lifecycle.purge_due_at(), Some(13 * DAY));
            // `until` must be later than now, not only than the old end.
            assert_eq!(
                t.extend(Extension::Until(7 * DAY + 1), now, policy, &terms),
                refused(ExtensionRefusal::NotLater)
            );
            assert_eq!(
                t.extend(Extension::Days(2), 10 * DAY, policy, &terms),
                Err(TransitionError::Expired)
            );
        }
    }

    #[test]
    fn extend_beyond_the_maximum_total_is_refused() {
        let policy = policy();
        let terms = LifecycleTerms {
            max_total_secs: 10 * DAY,
            ..LifecycleTerms::default()
        };
        let t = trial(0);
        assert!(t.extend(Extension::Days(3), DAY, policy, &terms).is_ok());
        assert_eq!(
            t.extend(Extension::Days(4), DAY, policy, &terms),
            refused(ExtensionRefusal::BeyondMaximum)
        );
        // Time spent expired or paused does not count: 7 d used, revived at 9 d for 3 d more.
        let expired = Trial {
            status: TrialStatus::Expired,
            ..t.clone()
        };
        assert!(expired
            .extend(Extension::Days(3), 9 * DAY, policy, &terms)
            .is_ok());
        assert_eq!(
            expired.extend(Extension::Until(12 * DAY + 1), 9 * DAY, policy, &terms),
            refused(ExtensionRefusal::BeyondMaximum)
        );
        let resumed = t
            .pause(DAY, policy)
            .unwrap()
            .resume(20 * DAY, policy, &terms)
            .unwrap();
        assert!(resumed
            .extend(Extension::Days(3), 21 * DAY, policy, &terms)
            .is_ok());
        assert_eq!(
            resumed.extend(Extension::Days(4), 21 * DAY, policy, &terms),
            refused(ExtensionRefusal::BeyondMaximum)
        );
    }

    #[test]
    fn extend_is_refused_when_paused_converted_or_canceled() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        let t = trial(0);
        let cases = [
            (t.pause(DAY, policy).unwrap(), TransitionError::NotActive),
            (
                Trial {
                    status: TrialStatus::Converted,
                    ..t.clone()
                },
                TransitionError::AlreadyConverted,
            ),
            (
                Trial {
                    status: TrialStatus::Canceled,
                    canceled_at: Some(DAY),
                    ..t.clone()
                },
                TransitionError::Canceled,
            ),
        ];
        for (trial, err) in cases {
            assert_eq!(
                trial.extend(Extension::Days(1), 2 * DAY, policy, &terms),
                Err(err)
            );
        }
    }

    #[test]
    fn an_extension_or_a_resume_re_arms_the_reminders_under_new_ids() {
        let (policy, terms) = (policy(), LifecycleTerms::default());
        let t = trial(0);
        let ids = |t: &Trial, from: i64| -> Vec<String> {
            t.reminder_schedule(from, &terms, policy)
                .iter()
                .map(|r| r.event_id(&t.id))
                .collect()
        };
        let before = ids(&t, 0);
        assert_eq!(before, ids(&t, 0));
        assert_eq!(before.len(), 3);
        // At 5 d both ending-soon reminders (4 d, 6 d) were armed; extended to 10 d at 5 d:
        // 72 h and 24 h before 10 d, both new.
        let extended = t
            .extend(Extension::Days(3), 5 * DAY, policy, &terms)
            .unwrap();
        let after = ids(&extended, 5 * DAY);
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|id| !before.contains(id)), "{after:?}");
        assert_eq!(
            extended
                .next_reminder(5 * DAY, &terms, policy)
                .map(|r| r.at()),
            Some(7 * DAY)
        );
        // Paused at 6 d + 1 h (1 d - 1 h left), resumed at 9 d: the 24 h reminder is past at
        // the resume, so only the grace warning is armed for the new end.
        let resumed = t
            .pause(6 * DAY + 3_600, policy)
            .unwrap()
            .resume(9 * DAY, policy, &terms)
            .unwrap();
        let armed = ids(&resumed, 9 * DAY);
        assert_eq!(
            armed,
            vec![format!(
                "{}.grace_ending.{}",
                t.id,
                resumed.expires_at + 3 * DAY
            )]
        );
        assert_ne!(resumed.expires_at, t.expires_at);
    }

    #[test]
    fn lifecycle_fields_show_gcore_ranges_and_remaining_duration() {
        let t = trial(1_775_469_600);
        let fields = t.lifecycle_fields(t.expires_at - 60);
        assert_eq!(fields["remaining_duration"], 60);
        assert_eq!(
            fields["active_ranges"],
            json!([{ "start": "2026-04-06T10:00:00Z", "end": "2026-04-13T10:00:00Z" }])
        );
        assert_eq!(
            t.lifecycle_fields(t.expires_at)["remaining_duration"],
            Value::Null
        );
        // A trial stored before ranges existed reads as its one range.
        let legacy = Trial {
            active_ranges: Vec::new(),
            ..t.clone()
        };
        assert_eq!(legacy.lifecycle_fields(0), t.lifecycle_fields(0));
        let paused = legacy
            .pause(t.started_at + 10, TrialPolicy::default())
            .unwrap();
        assert_eq!(ranges(&paused), vec![(t.started_at, t.started_at + 10)]);
    }
}
