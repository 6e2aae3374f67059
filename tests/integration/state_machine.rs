//! The store's conditions and the state machine agree: for every transition, every stored
//! status and every time around `expires_at`, the grace end and the cancellation's grace end,
//! the item is written to dynoxide, the store's actual write for that transition is sent, and
//! whether it committed is compared with the domain's answer (`Lifecycle::check` / `is_due`,
//! `Trial::pause`/`resume`/`extend`). A new action or state fails `every_transition_has_a_write`
//! until it has its row here.
use aws_sdk_dynamodb::types::Put;
use trials::domain::plan_change::change_plan;
use trials::domain::state_machine::{Action, Job, Transition};
use trials::domain::trial::{Checkout, Payment, SessionBinding};
use trials::domain::{Extension, OrgId, Trial, TrialId, TrialStatus};
use trials::store::admin::AdminChange;
use trials::store::codec::{n, s};
use trials::store::usage::UsageWrite;
use trials::store::{Outcome, Slot};
use trials_tests::requests::ORG;
use trials_tests::{TestApp, DAY, T0};

/// The store write sent for a transition (a payment is two writes: the webhook writes a
/// CANCELED trial's payment apart; a payment on its way and a forgotten session share its row).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Write {
    Checkout,
    Cancel,
    Usage,
    Pause,
    Resume,
    Extend,
    Admin,
    Payment,
    PaymentAfterCancel,
    Pending,
    ClearSession,
    Expire,
    Purge,
    ChangePlan,
    Activate,
}

const WRITES: [Write; 15] = [
    Write::Checkout,
    Write::Cancel,
    Write::Usage,
    Write::Pause,
    Write::Resume,
    Write::Extend,
    Write::Admin,
    Write::Payment,
    Write::PaymentAfterCancel,
    Write::Pending,
    Write::ClearSession,
    Write::Expire,
    Write::Purge,
    Write::ChangePlan,
    Write::Activate,
];

impl Write {
    fn transition(self) -> Transition {
        match self {
            Write::Checkout => Action::Convert.into(),
            Write::Cancel => Action::Cancel.into(),
            Write::Usage => Action::Usage.into(),
            Write::Pause => Action::Pause.into(),
            Write::Resume => Action::Resume.into(),
            Write::Extend => Action::Extend.into(),
            Write::Admin => Action::AdminChange.into(),
            Write::Payment | Write::PaymentAfterCancel | Write::Pending | Write::ClearSession => {
                Action::Payment.into()
            }
            Write::Expire => Job::Expire.into(),
            Write::Purge => Job::Purge.into(),
            Write::ChangePlan => Action::ChangePlan.into(),
            Write::Activate => Action::Activate.into(),
        }
    }
}

const SEEDED_SESSION: &str = "cs_seeded";

/// A trial of `plan` in `status` started at `T0` (paused a day in; canceled a day before its
/// end, or, as an item from before `canceled_at` was kept, without it; PENDING with a 7-day
/// window; a reverse trial's DOWNGRADED at its end).
fn trial_in(t: &TestApp, status: TrialStatus, canceled_at: bool, plan: &str) -> Trial {
    let (id, org) = (TrialId::generate(), OrgId::parse(ORG).unwrap());
    if status == TrialStatus::Pending {
        return Trial::start_pending(id, org, T0, t.terms(plan), 7 * DAY);
    }
    let start = Trial::start(id, org, T0, t.terms(plan));
    let mut trial = match status {
        TrialStatus::Paused => start.pause(T0 + DAY, start.policy()).expect("pause"),
        TrialStatus::Downgraded => start.downgraded().expect("a reverse trial"),
        _ => start,
    };
    trial.status = status;
    if status == TrialStatus::Canceled && canceled_at {
        trial.canceled_at = Some(trial.expires_at - DAY);
    }
    trial
}

/// Stores `trial` as it is, with a checkout session that Stripe no longer accepts (so that
/// the one-open-session and payable-session parts of the conditions hold, and a session to
/// forget exists).
async fn seed(t: &TestApp, trial: &Trial) {
    let store = &t.app.store;
    let mut item = store.trial_item(trial, trial.policy());
    item.insert("checkout_session_id".into(), s(SEEDED_SESSION));
    item.insert(
        "checkout_url".into(),
        s("https://checkout.stripe.com/c/pay/x"),
    );
    item.insert("checkout_expires_at".into(), n(0));
    if let Some(at) = trial.canceled_at {
        item.insert("canceled_at".into(), n(at));
    }
    let put = Put::builder()
        .table_name(store.table_name())
        .set_item(Some(item))
        .build()
        .unwrap();
    let outcome = store.tx().put(Slot::Trial, put).commit().await.unwrap();
    assert!(outcome.committed());
}

/// The domain's answer for `write` on `trial` at `now`, and for a move the trial it computed.
fn domain_allows(t: &TestApp, write: Write, trial: &Trial, now: i64) -> (bool, Option<Trial>) {
    let policy = trial.policy();
    let lifecycle = trial.lifecycle(policy);
    let terms = t.app.config.lifecycle_terms(trial);
    let canceled = trial.status == TrialStatus::Canceled;
    if write == Write::ChangePlan {
        // The write is sent even where the domain refuses: its condition must refuse too.
        let to = t.terms("pro");
        let decided = change_plan(trial, &to, false, now, DAY);
        let after = decided.clone().unwrap_or_else(|_| Trial {
            plan: to.plan.clone(),
            terms: to,
            ..trial.clone()
        });
        return (decided.is_ok(), Some(after));
    }
    let moved = match write {
        Write::Pause => Some(trial.pause(now, policy)),
        Write::Resume => Some(trial.resume(now, policy, &terms)),
        Write::Extend => Some(trial.extend(Extension::Days(1), now, policy, &terms)),
        Write::Activate => Some(trial.activate(now, policy)),
        _ => None,
    };
    if let Some(moved) = moved {
        return (moved.is_ok(), moved.ok());
    }
    let allowed = match write.transition() {
        Transition::Asked(action) => lifecycle.check(action, now).is_ok(),
        Transition::Job(job) => lifecycle.is_due(job, now),
    };
    let allowed = match write {
        Write::Payment => allowed && !canceled,
        Write::PaymentAfterCancel => allowed && canceled,
        _ => allowed,
    };
    (allowed, None)
}

/// Sends the store's write for `write` on the seeded `trial` at `now` (`moved`: the trial a
/// move computed); `None` when there is nothing to send (a move the domain refused).
async fn store_commits(
    t: &TestApp,
    write: Write,
    trial: &Trial,
    moved: Option<&Trial>,
    now: i64,
) -> Option<bool> {
    let store = &t.app.store;
    let policy = trial.policy();
    let binding = SessionBinding {
        trial_id: trial.id.clone(),
        org_id: trial.org_id.clone(),
        plan: trial.plan.clone(),
    };
    let tx = store.tx();
    let tx = match write {
        Write::Checkout => {
            let checkout = Checkout {
                session_id: "cs_new".into(),
                url: "https://checkout.stripe.com/c/pay/new".into(),
                expires_at: now + DAY,
                trial_end: None,
            };
            tx.update(
                Slot::Trial,
                store
                    .checkout_update(trial, &checkout, now, policy)
                    .unwrap(),
            )
        }
        Write::Cancel => tx.update(
            Slot::Trial,
            store.cancel_update(trial, None, now, policy).unwrap(),
        ),
        Write::Usage => {
            let usage = UsageWrite {
                trial,
                option: "api_calls",
                value: 100,
                before: 0,
                quantity: 1,
                ends_trial: false,
                key_id: "k",
                fingerprint: "f",
            };
            tx.update(Slot::Trial, store.usage_update(&usage, now).unwrap())
        }
        Write::Pause | Write::Resume | Write::Extend => {
            let terms = t.app.config.lifecycle_terms(trial);
            tx.update(
                Slot::Trial,
                store.lifecycle_update(trial, moved?, &terms).unwrap(),
            )
        }
        Write::Admin => {
            let change = AdminChange {
                expires_at: None,
                notes: Some(Some("checked".into())),
            };
            tx.update(
                Slot::Trial,
                store.admin_update(trial, trial, &change, now).unwrap(),
            )
        }
        Write::Payment | Write::PaymentAfterCancel => {
            let after_cancel = write == Write::PaymentAfterCancel;
            let update = store
                .convert_update(&binding, &Payment::default(), now, after_cancel)
                .unwrap();
            tx.update(Slot::Trial, update)
        }
        Write::Pending => tx.update(
            Slot::Trial,
            // Only the trial's current session can become pending.
            store.pending_update(&binding, SEEDED_SESSION, now).unwrap(),
        ),
        Write::ClearSession => tx.update(
            Slot::Trial,
            store
                .clear_session_update(&trial.id, SEEDED_SESSION)
                .unwrap(),
        ),
        Write::Expire => tx.update(
            Slot::Trial,
            store.expire_update(trial, now, policy).unwrap(),
        ),
        Write::Purge => tx.delete(Slot::Trial, store.purge_delete(trial, now, policy).unwrap()),
        Write::Activate => {
            let terms = t.app.config.lifecycle_terms(trial);
            let update = store.activation_update(trial, moved?, now, &terms);
            tx.update(Slot::Trial, update.unwrap())
        }
        Write::ChangePlan => {
            let after = moved?;
            let terms = t.app.config.lifecycle_terms(after);
            let update = store.plan_change_update(trial, after, false, now, &terms);
            tx.update(Slot::Trial, update.unwrap())
        }
    };
    match tx.commit().await.expect("a store write never fails here") {
        Outcome::Committed => Some(true),
        Outcome::Rejected(r) => {
            assert!(r.failed(Slot::Trial), "{r:?}");
            Some(false)
        }
    }
}

#[test]
fn every_transition_has_a_write() {
    let covered: Vec<Transition> = WRITES.iter().map(|w| w.transition()).collect();
    for action in Action::ALL {
        assert!(covered.contains(&action.into()), "{action:?} has no write");
    }
    for job in Job::ALL {
        assert!(covered.contains(&job.into()), "{job:?} has no write");
    }
}

/// The built-in catalog with a reverse trial's plan (`pro-reverse`, growth's terms, downgrading
/// to `free`) and its free plan.
async fn with_reverse_trial() -> TestApp {
    let catalog = trials_tests::builtin_catalog_with(|v| {
        let mut reverse = v["plans"][1].clone();
        reverse["id"] = "pro-reverse".into();
        reverse["stripe_price"] = "price_pro_reverse".into();
        reverse["end_behavior"] = "downgrade".into();
        reverse["downgrade_to"] = "free".into();
        let mut free = v["plans"][1].clone();
        free["id"] = "free".into();
        free["trialable"] = false.into();
        free.as_object_mut().unwrap().remove("stripe_price");
        let plans = v["plans"].as_array_mut().unwrap();
        plans.push(reverse);
        plans.push(free);
    });
    TestApp::with_config(|c| c.catalog = catalog).await
}

#[tokio::test]
async fn the_store_commits_exactly_what_the_state_machine_allows() {
    let t = with_reverse_trial().await;
    let grace = t.policy().grace_secs;
    assert!(
        grace > DAY,
        "the times below need a grace longer than a day"
    );
    let statuses = [
        (TrialStatus::Active, true, "growth"),
        (TrialStatus::Paused, true, "growth"),
        (TrialStatus::Expired, true, "growth"),
        (TrialStatus::Converted, true, "growth"),
        (TrialStatus::Canceled, true, "growth"),
        (TrialStatus::Canceled, false, "growth"),
        (TrialStatus::Pending, true, "growth"),
        // A reverse trial: ACTIVE (ending, DOWNGRADED to callers, from its end), PAUSED and
        // DOWNGRADED; PENDING (it lapses unused, whatever its ending).
        (TrialStatus::Active, true, "pro-reverse"),
        (TrialStatus::Paused, true, "pro-reverse"),
        (TrialStatus::Downgraded, true, "pro-reverse"),
        (TrialStatus::Pending, true, "pro-reverse"),
    ];
    // Around the end, the cancellation's grace end (a day earlier) and the grace end.
    let offsets = [
        -1,
        0,
        grace - DAY - 1,
        grace - DAY,
        grace - 1,
        grace,
        grace + DAY,
    ];
    let mut disagreements = Vec::new();
    let (mut committed, mut rejected) = (0, 0);
    for write in WRITES {
        for (status, canceled_at, plan) in statuses {
            for offset in offsets {
                let trial = trial_in(&t, status, canceled_at, plan);
                let now = trial.expires_at + offset;
                let (allowed, moved) = domain_allows(&t, write, &trial, now);
                seed(&t, &trial).await;
                let Some(commits) = store_commits(&t, write, &trial, moved.as_ref(), now).await
                else {
                    // A move the domain refused: it never reaches the store.
                    assert!(!allowed);
                    rejected += 1;
                    continue;
                };
                if commits != allowed {
                    disagreements.push(format!(
                        "{write:?} on {status:?} of {plan} (canceled_at: {canceled_at}) at end{offset:+}: \
                         store {commits}, domain {allowed}"
                    ));
                }
                if commits {
                    committed += 1;
                } else {
                    rejected += 1;
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    // Both answers occur: the comparison is not vacuous.
    assert!(committed > 50 && rejected > 50, "{committed} / {rejected}");
}

/// A trial at its bound of ranges (`MAX_RANGES`): a pause and a resume in the same second leave
/// its status, end and number of ranges as they were, so only the last range's start tells a
/// move decided on the trial as it was before them from one decided now; after a second such
/// pair, only the pause count does. The stale moves must not commit.
#[tokio::test]
async fn a_move_decided_before_a_same_second_pause_and_resume_does_not_commit() {
    use trials::domain::active_ranges::{ActiveRange, MAX_RANGES};
    let t = TestApp::new().await;
    let store = &t.app.store;
    let mut trial = Trial::start(
        TrialId::generate(),
        OrgId::parse(ORG).unwrap(),
        T0,
        t.terms("growth"),
    );
    // MAX_RANGES ranges of an hour each, a day apart, the last one current.
    let now = T0 + MAX_RANGES as i64 * DAY;
    trial.active_ranges = (0..MAX_RANGES as i64)
        .map(|i| ActiveRange::new(T0 + i * DAY, T0 + i * DAY + 3_600))
        .collect();
    trial.active_ranges.last_mut().unwrap().end = now + DAY;
    trial.expires_at = now + DAY;
    seed(&t, &trial).await;
    let terms = t.app.config.lifecycle_terms(&trial);
    let policy = trial.policy();
    let stale = trial.pause(now, policy).unwrap();

    let paused = trial.pause(now, policy).unwrap();
    let resumed = paused.resume(now, policy, &terms).unwrap();
    for (before, after) in [(&trial, &paused), (&paused, &resumed)] {
        let update = store.lifecycle_update(before, after, &terms).unwrap();
        let outcome = store
            .tx()
            .update(Slot::Trial, update)
            .commit()
            .await
            .unwrap();
        assert!(outcome.committed());
    }
    assert_eq!(
        (
            resumed.status,
            resumed.expires_at,
            resumed.active_ranges.len()
        ),
        (trial.status, trial.expires_at, trial.active_ranges.len()),
        "the same status, end and count: only the last range's start differs"
    );

    let update = store.lifecycle_update(&trial, &stale, &terms).unwrap();
    let outcome = store
        .tx()
        .update(Slot::Trial, update)
        .commit()
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");

    // Once more in the same second: now the ranges' count and last start are as they were
    // too, and only the pause count (which names the events) tells the stale move apart.
    let stale = resumed.pause(now, policy).unwrap();
    let paused = resumed.pause(now, policy).unwrap();
    let again = paused.resume(now, policy, &terms).unwrap();
    for (before, after) in [(&resumed, &paused), (&paused, &again)] {
        let update = store.lifecycle_update(before, after, &terms).unwrap();
        let outcome = store.tx().update(Slot::Trial, update).commit().await;
        assert!(outcome.unwrap().committed());
    }
    let pinned = |t: &Trial| {
        let last = t.active_ranges.last().map(|r| r.start);
        (t.status, t.expires_at, t.active_ranges.len(), last)
    };
    assert_eq!(
        pinned(&again),
        pinned(&resumed),
        "the ranges' count and last start too"
    );
    assert_ne!(again.pauses, resumed.pauses);
    let update = store.lifecycle_update(&resumed, &stale, &terms).unwrap();
    let outcome = store.tx().update(Slot::Trial, update).commit().await;
    assert!(matches!(outcome, Ok(Outcome::Rejected(_))), "{outcome:?}");
}
