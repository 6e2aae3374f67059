//! The handlers' own writes, made directly (the transition with its event, as the route or job
//! commits it), for tests that set a trial up in a state or race a job against a write.
use serde_json::json;
use trials::domain::events::{DomainEvent, EventKind};
use trials::domain::trial::{Checkout, Payment, SessionBinding};
use trials::domain::{OrgId, Trial, TrialId};
use trials::store::Slot;

use crate::{TestApp, DAY};

/// Writes a trial started at `started_at` the way start does (trial + org guard, in the due
/// index), without the API's idempotency record and event: seeding thousands stays quick.
pub async fn seed_trial(t: &TestApp, org: &str, started_at: i64) -> Trial {
    let trial = Trial::start(
        TrialId::generate(),
        OrgId::parse(org).expect("org id"),
        started_at,
        t.terms("growth"),
    );
    let policy = trial.policy();
    let store = &t.app.store;
    let outcome = store
        .tx()
        .put(Slot::OrgGuard, store.guard_put(&trial).expect("guard"))
        .put(Slot::Trial, store.trial_put(&trial, policy).expect("trial"))
        .commit()
        .await
        .expect("store");
    assert!(outcome.committed(), "seeded trial");
    trial
}

/// Cancels `trial` at `now` with the cancel handler's write (the transition and its event):
/// `true` if this cancel won.
pub async fn cancel(t: &TestApp, trial: &Trial, now: i64) -> bool {
    let event = DomainEvent::for_trial(EventKind::Canceled, trial, now, None, json!({}));
    let store = &t.app.store;
    store
        .tx()
        .update(
            Slot::Trial,
            store
                .cancel_update(
                    trial,
                    trial.open_checkout(now).map(|c| c.session_id.as_str()),
                    now,
                    trial.policy(),
                )
                .expect("update"),
        )
        .event(&event, now)
        .expect("event")
        .commit()
        .await
        .expect("store")
        .committed()
}

/// Converts `trial` at `now` with the webhook's write for a payment of a session bound to it
/// (the transition and its event): `true` if the payment converted it.
pub async fn convert(t: &TestApp, trial: &Trial, now: i64) -> bool {
    let binding = SessionBinding {
        trial_id: trial.id.clone(),
        org_id: trial.org_id.clone(),
        plan: trial.plan.clone(),
    };
    let event = DomainEvent::for_binding(EventKind::Converted, &binding, now, None, json!({}));
    let store = &t.app.store;
    store
        .tx()
        .update(
            Slot::Trial,
            store
                .convert_update(&binding, &Payment::default(), now, false)
                .expect("update"),
        )
        .event(&event, now)
        .expect("event")
        .commit()
        .await
        .expect("store")
        .committed()
}

pub async fn stored(t: &TestApp, id: &str) -> Option<Trial> {
    t.app
        .store
        .get_trial(&TrialId::parse(id).expect("trial id"))
        .await
        .expect("store")
}

/// The id of the Checkout Session trial `id` holds open (panics when it holds none).
pub async fn open_session(t: &TestApp, id: &str) -> String {
    let trial = stored(t, id).await.expect("trial");
    trial.checkout.expect("an open session").session_id
}

/// Stores an open checkout session on the trial as the convert route does.
pub async fn open_checkout(t: &TestApp, id: &str, session_id: &str) {
    let trial = stored(t, id).await.expect("trial exists");
    let now = t.now();
    let store = &t.app.store;
    let checkout = Checkout {
        session_id: session_id.into(),
        url: format!("https://checkout.stripe.com/c/pay/{session_id}"),
        expires_at: now + DAY,
        trial_end: None,
    };
    let created = DomainEvent::for_trial(
        EventKind::CheckoutCreated,
        &trial,
        now,
        Some(session_id),
        json!({}),
    );
    let outcome = store
        .tx()
        .update(
            Slot::Trial,
            store
                .checkout_update(&trial, &checkout, now, trial.policy())
                .unwrap(),
        )
        .event(&created, now)
        .unwrap()
        .commit()
        .await
        .unwrap();
    assert!(outcome.committed(), "checkout recorded");
}

/// Runs the expire job's write for `trial` at `now` (without the job): `true` if it expired.
pub async fn expire_write(t: &TestApp, trial: &Trial, now: i64) -> bool {
    let store = &t.app.store;
    store
        .tx()
        .update(
            Slot::Trial,
            store.expire_update(trial, now, trial.policy()).unwrap(),
        )
        .commit()
        .await
        .unwrap()
        .committed()
}
