//! Issue 26 item 5: no applicant field and no note reaches a log line, at any depth, over a
//! trial's whole life: start with every personal field, patch, pause, resume, expire with its
//! reminders, purge (whose `trial.purged` embeds the trial as `GET` showed it), and a second
//! trial converted through the Stripe stand-in's signed webhook. Every event goes through the
//! log publisher (a run without a bus), so each published event is a log line too.

use serde_json::{json, Value};
use trials_local::stripe_standin::PayMethod;
use trials_tests::logs::capture;
use trials_tests::stripe::with_stripe;
use trials_tests::{writes, Call, TestApp, DAY, T0};

use crate::jobs::{expire, purge};

/// Distinctive values, so a hit in the logs can only be the field itself.
const PERSONAL: [(&str, &str); 13] = [
    ("email", "zelda.quorum+lifecycle@quokka-mail.example"),
    ("name", "Zelda Quorumson"),
    ("organization_name", "Quokkaworks Collective"),
    ("use_case", "xylophone tuning forecasts"),
    ("company_name", "Quokkaworks Holdings Plc"),
    ("company_size", "17-42"),
    ("country", "Freedonia Republic"),
    ("state_or_province", "Sylvania Province"),
    ("redirect_url_query_params", "utm_source=zqsecretsource"),
    ("client_ip", "198.51.100.231"),
    ("device_id", "device-zq-77f1c2e9"),
    ("notes", "Zelda rang about wombat pricing"),
    ("patched_notes", "Second note: Zelda prefers ocelots"),
];
const METADATA_VALUE: &str = "campaign-zq-narwhal";

fn personal(field: &str) -> &'static str {
    PERSONAL.iter().find(|(f, _)| *f == field).unwrap().1
}

/// Every applicant field the start route reads, for `org`, with an email of its own
/// (`mailbox` replaces `+lifecycle`: another mailbox, as a `+tag` alone is the same person).
fn start_body(mailbox: &str) -> Value {
    let mut body = json!({
        "plan": "growth",
        "user_has_ml_models_in_production": "no, but we will soon",
        "metadata": { "campaign": METADATA_VALUE },
    });
    for (field, value) in PERSONAL {
        if field != "patched_notes" && field != "redirect_url_query_params" {
            body[field] = value.into();
        }
    }
    body["email"] = personal("email").replace("+lifecycle", mailbox).into();
    body["redirect_url_query_params"] = personal("redirect_url_query_params").into();
    body
}

async fn ok(t: &TestApp, call: Call, status: u16) -> Value {
    let res = t.send(call).await;
    assert_eq!(res.status, status, "{}", res.body);
    res.json()
}

// current_thread: the subscriber set as default for this thread sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn no_personal_field_reaches_any_log_line_or_logged_event_of_a_whole_lifecycle() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let (lived, converted) = ("org_zq_lived", "org_zq_paid");
    t.admin_key(lived).await;
    t.admin_key(converted).await;
    t.api_key(lived).await;
    t.api_key(converted).await;
    let (logs, guard) = capture();

    // One trial lives its whole life: start (admin: notes too), read, patch, pause, resume,
    // the reminders and the expiry, then the purge.
    let start = Call::post("/v1/trials/start")
        .org(lived)
        .admin()
        .idempotency_key("zq-start-1")
        .json(&start_body("+lifecycle"));
    let id = ok(&t, start, 201).await["id"].as_str().unwrap().to_owned();
    let read = ok(&t, Call::status(&id).org(lived).admin(), 200).await;
    assert_eq!(
        read["notes"],
        personal("notes"),
        "the admin reads the notes"
    );
    let patch = Call::new("PATCH", &format!("/v1/trials/{id}"))
        .path_id(&id)
        .org(lived)
        .admin()
        .idempotency_key("zq-patch-1")
        .json(&json!({ "notes": personal("patched_notes") }));
    ok(&t, patch, 200).await;
    t.clock.set(T0 + DAY);
    let pause = Call::post(&format!("/v1/trials/{id}/pause"))
        .org(lived)
        .idempotency_key("zq-pause-1");
    ok(&t, pause, 200).await;
    t.clock.set(T0 + 2 * DAY);
    let resume = Call::post(&format!("/v1/trials/{id}/resume"))
        .org(lived)
        .idempotency_key("zq-resume-1");
    ok(&t, resume, 200).await;
    let expires_at = writes::stored(&t, &id).await.unwrap().expires_at;
    let grace = t.terms("growth").grace_secs;
    // The ending-soon reminders, the expiry, the grace reminder and the purge, each at its time.
    for at in [
        expires_at - 3 * DAY,
        expires_at - DAY,
        expires_at,
        expires_at + grace - DAY,
    ] {
        t.clock.set(at);
        expire(&t).await;
    }
    t.clock.set(expires_at + grace);
    let purged = purge(&t).await.processed;
    assert_eq!(purged, 1, "the lived trial is purged");
    assert!(writes::stored(&t, &id).await.is_none(), "purged");

    // A second org's trial is converted through the stand-in and Stripe's signed webhook.
    t.clock.set(expires_at + grace + DAY);
    let start = Call::post("/v1/trials/start")
        .org(converted)
        .admin()
        .idempotency_key("zq-start-2")
        .json(&start_body("-converted+converted"));
    let paid_id = ok(&t, start, 201).await["id"].as_str().unwrap().to_owned();
    ok(
        &t,
        Call::convert(&paid_id, "zq-convert-1").org(converted),
        200,
    )
    .await;
    let session = writes::stored(&t, &paid_id)
        .await
        .unwrap()
        .checkout
        .unwrap()
        .session_id;
    stripe.pay(&session, PayMethod::Card).await.unwrap();
    assert_eq!(
        t.deliver_from(&stripe, "checkout.session.completed", &session)
            .await,
        "converted"
    );

    let pumped = t.publish_events().await;
    drop(guard);

    assert_eq!(pumped.failed, 0);
    let text = logs.text();
    // The log saw the whole life: each transition's event went to it.
    for kind in [
        "trial.started",
        "trial.updated",
        "trial.paused",
        "trial.resumed",
        "trial.ending_soon",
        "trial.expired",
        "trial.grace_ending",
        "trial.purged",
        "trial.checkout_created",
        "trial.converted",
    ] {
        assert!(text.contains(kind), "{kind} was not logged: {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
    let lower = text.to_lowercase();
    let mut secrets: Vec<String> = PERSONAL.iter().map(|(_, v)| v.to_string()).collect();
    secrets.extend(
        [
            METADATA_VALUE,
            "zelda",
            "quorum",
            "quokka",
            "zqsecretsource",
            "198.51.100",
        ]
        .map(String::from),
    );
    for secret in secrets {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{secret} reached the logs"
        );
    }
}
