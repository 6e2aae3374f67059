//! The trial follows the Stripe subscription its conversion created: the stand-in makes the
//! subscription (with convert's `subscription_data[metadata]`) and its events as Stripe renders
//! them (API 2025-03-31.basil), and the tests deliver them signed, in order, reversed,
//! duplicated, late, or about another subscription.
use aws_sdk_dynamodb::types::Put;
use serde_json::{json, Value};
use trials::domain::events::EventKind;
use trials::domain::state_machine::{Billing, BillingChange};
use trials::domain::time::rfc3339;
use trials::domain::trial::SessionBinding;
use trials::domain::TrialStatus;
use trials::store::codec::{n, s};
use trials::store::stats::day_of;
use trials::store::subscriptions::{watermark, SubscriptionWrite};
use trials::store::Slot;
use trials_local::ctl::stats::Report;
use trials_local::stripe_standin::{PayMethod, StripeStandIn, SubscriptionChange};
use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{writes, Call, TestApp, T0};

use SubscriptionChange::{Canceled, Created, InvoicePaid, InvoicePaymentFailed, Status};

/// A trial converted through the stand-in's checkout with billing at the trial's end (the
/// default): nothing is paid at checkout (`no_payment_required`). The trial and its
/// subscription.
async fn converted(t: &TestApp, stripe: &StripeStandIn) -> (String, String) {
    let id = t.start_trial(ORG, "growth").await;
    let (session, sub) = pay(t, stripe, &id).await;
    assert_eq!(
        t.deliver_from(stripe, "checkout.session.completed", &session)
            .await,
        "converted"
    );
    let made = stripe.subscription(&sub).expect("the stand-in keeps it");
    assert_eq!(made.status, "trialing");
    assert_eq!(made.metadata["trial_id"], id, "subscription_data[metadata]");
    (id, sub)
}

/// Convert (billing at the trial's end) and pay its session with a card at the stand-in: the
/// session and the subscription it created (nothing delivered yet).
async fn pay(t: &TestApp, stripe: &StripeStandIn, id: &str) -> (String, String) {
    let res = t.send(Call::convert(id, "k1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["billing_starts"], "trial_end");
    let session = writes::open_session(t, id).await;
    let paid = stripe.pay(&session, PayMethod::Card).await.expect("paid");
    (session, paid.subscription.expect("a subscription"))
}

async fn status(t: &TestApp, id: &str) -> Value {
    let res = t.send(Call::status(id)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn subscription(t: &TestApp, id: &str) -> Value {
    status(t, id).await["subscription"].clone()
}

/// The funnel's total from `GET /v1/stats` over the days so far, after publishing.
async fn funnel(t: &TestApp) -> Value {
    t.publish_events().await;
    let query = format!("/v1/stats?from={}&to={}", day_of(T0), day_of(t.now()));
    let res = t.send(Call::get(&query).admin()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["total"].clone()
}

fn billing_counts(total: &Value) -> [u64; 4] {
    ["converted", "paid", "awaiting_first_payment", "lapsed"].map(|k| {
        total[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {total}"))
    })
}

/// The stand-in's event of `change`, one minute after the last.
async fn next(t: &TestApp, stripe: &StripeStandIn, sub: &str, change: SubscriptionChange) -> Value {
    t.clock.advance(60);
    stripe
        .subscription_event(sub, change)
        .await
        .expect("the subscription exists")
}

/// A subscription's life in five events, a minute apart: created (trialing), the charge at the
/// trial's end fails, its retry is paid, updated (active), and canceled later (churn).
async fn a_life(t: &TestApp, stripe: &StripeStandIn, sub: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for change in [
        Created,
        InvoicePaymentFailed,
        InvoicePaid,
        Status("active".into()),
        Canceled,
    ] {
        events.push(next(t, stripe, sub, change).await);
    }
    events
}

/// Delivers `events` in order, each twice: the outcomes of the first deliveries.
async fn deliver_twice(t: &TestApp, events: &[Value]) -> Vec<String> {
    let mut outcomes = Vec::new();
    for event in events {
        outcomes.push(t.deliver_event(event).await);
        assert_eq!(t.deliver_event(event).await, "duplicate", "{event}");
    }
    outcomes
}

#[tokio::test]
async fn the_five_events_in_order_reversed_and_duplicated_end_the_same() {
    let mut ends = Vec::new();
    for reversed in [false, true] {
        let (t, stripe) = with_stripe(|_| {}).await;
        let (id, sub) = converted(&t, &stripe).await;
        assert_eq!(
            subscription(&t, &id).await["billing"],
            "awaiting_first_payment"
        );
        let mut events = a_life(&t, &stripe, &sub).await;
        if reversed {
            events.reverse();
        }
        let outcomes = deliver_twice(&t, &events).await;
        let expected = if reversed {
            // The end first (a lapse, as far as anyone knows), then older news: the paid
            // invoice from before the end revokes the lapse; nothing older undoes the end.
            [
                "subscription_lapsed",
                "subscription_unchanged",
                "first_payment",
                "payment_failed",
                "subscription_unchanged",
            ]
        } else {
            [
                "subscription_updated",
                "payment_failed",
                "first_payment",
                "subscription_updated",
                "subscription_updated",
            ]
        };
        assert_eq!(outcomes, expected, "reversed: {reversed}");
        let paid_at = T0 + 3 * 60;
        let made = stripe.subscription(&sub).unwrap();
        assert_eq!(
            subscription(&t, &id).await,
            json!({
                "id": sub,
                "status": "canceled",
                "current_period_end": rfc3339(made.current_period_end),
                "first_paid_at": rfc3339(paid_at),
                "billing": "paid",
                "lapsed_at": null,
            }),
            "reversed: {reversed}"
        );
        // Converted and paid: the funnel counts it once, whatever the order (a lapse that was
        // counted is taken back).
        assert_eq!(billing_counts(&funnel(&t).await), [1, 1, 0, 0]);
        let mut end = subscription(&t, &id).await;
        end["id"] = json!("each run's own");
        ends.push(end);
    }
    assert_eq!(ends[0], ends[1]);
}

#[tokio::test]
async fn an_old_update_after_a_newer_delete_does_not_revive() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    let active = next(&t, &stripe, &sub, Status("active".into())).await;
    let deleted = next(&t, &stripe, &sub, Canceled).await;
    t.dynamo.reset();
    assert_eq!(t.deliver_event(&deleted).await, "subscription_lapsed");
    assert_eq!(
        t.dynamo.total(),
        1,
        "one transaction: {:?}",
        t.dynamo.by_operation()
    );
    // Its redelivery: the lapse's refusal names the dedupe record, nothing else is tried.
    t.dynamo.reset();
    assert_eq!(t.deliver_event(&deleted).await, "duplicate");
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    t.dynamo.reset();
    assert_eq!(t.deliver_event(&active).await, "subscription_unchanged");
    // The write (refused: ALL_OLD says why), then the dedupe record alone.
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
    // Even one that claims to be newer: an ended subscription never starts again.
    let newer = next(&t, &stripe, &sub, Status("active".into())).await;
    assert_eq!(t.deliver_event(&newer).await, "subscription_unchanged");
    let view = subscription(&t, &id).await;
    assert_eq!(view["status"], "canceled");
    assert_eq!(view["billing"], "lapsed");
    assert_eq!(status(&t, &id).await["status"], "CONVERTED");
}

/// `event` as if it were about `other` (another subscription, same metadata), with a new id.
fn about(event: &Value, other: &str) -> Value {
    let mut event = event.clone();
    event["id"] = json!(format!("{}_other", event["id"].as_str().unwrap()));
    if event["data"]["object"]["object"] == "invoice" {
        event["data"]["object"]["parent"]["subscription_details"]["subscription"] = json!(other);
    } else {
        event["data"]["object"]["id"] = json!(other);
    }
    event
}

#[tokio::test]
async fn an_event_for_another_subscription_than_the_trial_holds_does_nothing() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    let before = subscription(&t, &id).await;
    let deleted = about(&next(&t, &stripe, &sub, Canceled).await, "sub_other");
    let res = t.deliver(&deleted.to_string()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["outcome"], "ignored");
    assert_eq!(res.json()["reason"], "not_the_trials_subscription");
    assert_eq!(subscription(&t, &id).await, before);
    // Nor does its failed payment (not answered as a duplicate: nothing was recorded yet).
    let failed = about(
        &next(&t, &stripe, &sub, InvoicePaymentFailed).await,
        "sub_other",
    );
    let res = t.deliver(&failed.to_string()).await;
    assert_eq!(
        (&res.json()["outcome"], &res.json()["reason"]),
        (&json!("ignored"), &json!("not_the_trials_subscription")),
        "{}",
        res.body
    );
    assert_eq!(t.deliver_event(&failed).await, "duplicate");
    assert_eq!(subscription(&t, &id).await, before);
    // Money for it is never dropped: recorded unmatched, for review.
    let paid = about(&next(&t, &stripe, &sub, InvoicePaid).await, "sub_other");
    assert_eq!(t.deliver_event(&paid).await, "unmatched");
    let events = t.app.store.events_since(0).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::UnmatchedPayment));
    assert!(!events.iter().any(|e| e.kind == EventKind::FirstPayment));
    assert_eq!(subscription(&t, &id).await, before);
    // A subscription that is not ours (no metadata): ignored, with the reason.
    let mut foreign = about(&next(&t, &stripe, &sub, Created).await, "sub_foreign");
    foreign["data"]["object"]["metadata"] = json!({});
    let res = t.deliver(&foreign.to_string()).await;
    assert_eq!(res.json()["reason"], "not_our_subscription", "{}", res.body);
}

/// An event about the trial's own subscription whose metadata names another org: nothing
/// changes (the write's condition checks the org) and the answer says why (a mutant that
/// checked the org only together with the plan went unnoticed, MUTANTS.md).
#[tokio::test]
async fn an_event_bound_to_another_org_is_a_binding_mismatch() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    let before = subscription(&t, &id).await;
    let mut other_org = next(&t, &stripe, &sub, Canceled).await;
    other_org["id"] = json!("evt_other_org");
    other_org["data"]["object"]["metadata"]["org_id"] = json!("org_someone_else");
    let res = t.deliver(&other_org.to_string()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (&res.json()["outcome"], &res.json()["reason"]),
        (&json!("ignored"), &json!("binding_mismatch")),
        "{}",
        res.body
    );
    assert_eq!(subscription(&t, &id).await, before);
}

/// The reproduction 3: billing at the trial's end, `no_payment_required`, then the
/// customer cancels the subscription in Stripe before the first charge. On main every later
/// event was `ignored` and the trial stayed converted for ever with nothing to show.
#[tokio::test]
async fn a_subscription_canceled_before_its_first_charge_lapses_the_conversion() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    // Converted: the org has the plan through its subscription, until the subscription ends.
    let access = t.send(Call::get("/v1/access")).await;
    assert_eq!(access.json()["source"], "subscription", "{}", access.body);
    let deleted = next(&t, &stripe, &sub, Canceled).await;
    assert_eq!(t.deliver_event(&deleted).await, "subscription_lapsed");
    let access = t.send(Call::get("/v1/access")).await;
    assert_eq!(access.json()["source"], "none", "{}", access.body);
    assert_eq!(access.json()["options"], json!([]));
    let ended_at = T0 + 60;
    assert_eq!(
        subscription(&t, &id).await,
        json!({
            "id": sub,
            "status": "canceled",
            "current_period_end": rfc3339(stripe.subscription(&sub).unwrap().current_period_end),
            "first_paid_at": null,
            "billing": "lapsed",
            "lapsed_at": rfc3339(ended_at),
        })
    );
    let events = t.app.store.events_since(0).await.unwrap();
    let lapsed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::SubscriptionLapsed)
        .collect();
    assert_eq!(lapsed.len(), 1);
    assert_eq!(lapsed[0].id, format!("{id}.subscription_lapsed"));
    let detail: Value = serde_json::from_str(&lapsed[0].detail).unwrap();
    assert_eq!(detail["stripe_subscription_id"], sub);
    assert_eq!(detail["occurred_at"], rfc3339(ended_at));
    // On the trial's timeline too, by Stripe, with its allow-listed fields.
    let res = t
        .send(Call::get(&format!("/v1/trials/{id}/timeline")))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let timeline = res.json();
    let entry = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "trial.subscription_lapsed")
        .unwrap_or_else(|| panic!("{timeline}"))
        .clone();
    assert_eq!(entry["actor"], "stripe");
    assert_eq!(entry["details"]["stripe_subscription_id"], sub);
    // The rest of the sequence changes nothing.
    let failed = next(&t, &stripe, &sub, InvoicePaymentFailed).await;
    assert_eq!(t.deliver_event(&failed).await, "payment_failed");
    let updated = next(&t, &stripe, &sub, Status("past_due".into())).await;
    assert_eq!(t.deliver_event(&updated).await, "subscription_unchanged");
    assert_eq!(subscription(&t, &id).await["billing"], "lapsed");
    assert_eq!(billing_counts(&funnel(&t).await), [1, 0, 0, 1]);
}

/// Money paid on a subscription after it lapsed (an invoice newer than the lapse: a lapse is
/// revoked only by an invoice from before it) is not a first payment of the trial: it is
/// recorded unmatched, with the reason, for review, and the trial stays lapsed (a mutant that
/// took the lapse for "unchanged" answered `invoice_paid` and recorded nothing, MUTANTS.md).
#[tokio::test]
async fn money_paid_after_the_lapse_is_recorded_unmatched() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    let deleted = next(&t, &stripe, &sub, Canceled).await;
    assert_eq!(t.deliver_event(&deleted).await, "subscription_lapsed");
    let paid = next(&t, &stripe, &sub, InvoicePaid).await;
    assert!(
        paid["data"]["object"]["amount_paid"].as_i64().unwrap() > 0,
        "{paid}"
    );
    t.dynamo.reset();
    assert_eq!(t.deliver_event(&paid).await, "unmatched");
    // The first payment's write, refused (the lapse is older than the invoice: nothing to
    // revoke, so no second try), then the unmatched record.
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
    let events = t.app.store.events_since(0).await.unwrap();
    let unmatched: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::UnmatchedPayment)
        .collect();
    assert_eq!(unmatched.len(), 1, "{events:?}");
    let detail: Value = serde_json::from_str(&unmatched[0].detail).unwrap();
    assert_eq!(detail["reason"], "subscription_lapsed");
    assert_eq!(detail["trial_id"], id);
    assert!(!events.iter().any(|e| e.kind == EventKind::FirstPayment));
    let view = subscription(&t, &id).await;
    assert_eq!(view["billing"], "lapsed");
    assert_eq!(view["first_paid_at"], Value::Null);
    assert_eq!(t.deliver_event(&paid).await, "duplicate");
}

#[tokio::test]
async fn the_first_paid_invoice_sets_first_paid_at_and_counts_as_paid() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (id, sub) = converted(&t, &stripe).await;
    assert_eq!(billing_counts(&funnel(&t).await), [1, 0, 1, 0]);
    let created = next(&t, &stripe, &sub, Created).await;
    assert_eq!(t.deliver_event(&created).await, "subscription_updated");
    assert_eq!(subscription(&t, &id).await["status"], "trialing");

    // The trial's 0-amount invoice is "paid" too, and is not a payment.
    let paid = next(&t, &stripe, &sub, InvoicePaid).await;
    let mut zero = paid.clone();
    zero["id"] = json!("evt_zero_amount");
    zero["data"]["object"]["amount_paid"] = json!(0);
    let res = t.deliver(&zero.to_string()).await;
    assert_eq!(res.json()["reason"], "no_amount_paid", "{}", res.body);
    assert_eq!(subscription(&t, &id).await["first_paid_at"], Value::Null);

    assert_eq!(t.deliver_event(&paid).await, "first_payment");
    let view = subscription(&t, &id).await;
    assert_eq!(view["first_paid_at"], rfc3339(T0 + 2 * 60));
    assert_eq!(view["billing"], "paid");
    // Its redelivery: the refusal names the dedupe record, nothing else is tried.
    t.dynamo.reset();
    assert_eq!(t.deliver_event(&paid).await, "duplicate");
    assert_eq!(t.dynamo.total(), 1, "{:?}", t.dynamo.by_operation());
    // A later invoice is just that.
    let again = next(&t, &stripe, &sub, InvoicePaid).await;
    assert_eq!(t.deliver_event(&again).await, "invoice_paid");
    assert_eq!(
        subscription(&t, &id).await["first_paid_at"],
        rfc3339(T0 + 2 * 60)
    );

    let total = funnel(&t).await;
    assert_eq!(billing_counts(&total), [1, 1, 0, 0]);
    let known: std::collections::BTreeSet<String> = ["growth".to_owned()].into();
    let report = Report::read(&t.app.store, &known, None, 1, t.now())
        .await
        .expect("report")
        .json();
    assert_eq!(report["total"]["paid"], 1, "{report}");
    assert_eq!(report["total"]["awaiting_first_payment"], 0);
}

#[tokio::test]
async fn subscription_events_before_the_checkout_completes_are_kept() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(status(&t, &id).await["subscription"], Value::Null);
    let (session, sub) = pay(&t, &stripe, &id).await;
    // Stripe sends `customer.subscription.created` and the checkout's completion in any order.
    let created = next(&t, &stripe, &sub, Created).await;
    assert_eq!(t.deliver_event(&created).await, "subscription_updated");
    assert_eq!(
        status(&t, &id).await["subscription"],
        Value::Null,
        "null before the conversion"
    );
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "converted"
    );
    let view = subscription(&t, &id).await;
    assert_eq!(
        (view["id"].as_str(), &view["status"]),
        (Some(sub.as_str()), &json!("trialing"))
    );
}

/// A CONVERTED trial of `org` holding subscription `SUB` in `billing` (paid at 50, or lapsed
/// at 200 with the subscription canceled), stored as is.
async fn seeded_in(t: &TestApp, org: &str, billing: Billing) -> SessionBinding {
    let mut trial = writes::seed_trial(t, org, T0).await;
    trial.status = TrialStatus::Converted;
    let store = &t.app.store;
    let mut item = store.trial_item(&trial, trial.policy());
    item.insert("stripe_subscription_id".into(), s(SUB));
    match billing {
        Billing::AwaitingFirstPayment => {}
        Billing::Paid => {
            item.insert("subscription_first_paid_at".into(), n(50));
        }
        Billing::Lapsed => {
            item.insert("subscription_lapsed_at".into(), n(200));
            item.insert("subscription_status".into(), s("canceled"));
            item.insert(
                "subscription_event_at".into(),
                n(watermark(200, "canceled")),
            );
        }
    }
    let put = Put::builder()
        .table_name(store.table_name())
        .set_item(Some(item))
        .build()
        .unwrap();
    assert!(store
        .tx()
        .put(Slot::Trial, put)
        .commit()
        .await
        .unwrap()
        .committed());
    SessionBinding {
        trial_id: trial.id,
        org_id: trial.org_id,
        plan: trial.plan,
    }
}

const SUB: &str = "sub_seeded";

/// The store's writes for the billing table's arrows commit exactly where
/// `Billing::after` says there is one, and leave the trial where it says.
#[tokio::test]
async fn the_billing_writes_agree_with_the_billing_table() {
    let t = TestApp::new().await;
    let store = &t.app.store;
    let mut n_org = 0;
    for from in [
        Billing::AwaitingFirstPayment,
        Billing::Paid,
        Billing::Lapsed,
    ] {
        for change in [
            BillingChange::FirstPaidInvoice,
            BillingChange::Ended,
            BillingChange::PaidBeforeTheEnd,
        ] {
            n_org += 1;
            let binding = seeded_in(&t, &format!("org_billing_{n_org}"), from).await;
            let update = match change {
                BillingChange::FirstPaidInvoice => {
                    store.first_payment_update(&binding, SUB, 150, false)
                }
                BillingChange::PaidBeforeTheEnd => {
                    store.first_payment_update(&binding, SUB, 150, true)
                }
                BillingChange::Ended => store.subscription_update(
                    &binding,
                    SubscriptionWrite {
                        id: SUB,
                        status: "canceled",
                        current_period_end: None,
                        at: 300,
                        lapse: true,
                    },
                ),
            }
            .unwrap();
            let committed = store
                .tx()
                .update(Slot::Trial, update)
                .commit()
                .await
                .unwrap()
                .committed();
            let expected = from.after(change);
            assert_eq!(committed, expected.is_some(), "{from:?} {change:?}");
            let now = writes::stored(&t, binding.trial_id.as_str())
                .await
                .unwrap()
                .subscription
                .expect("the subscription")
                .billing();
            assert_eq!(now, expected.unwrap_or(from), "{from:?} {change:?}");
        }
    }
}
