//! Issue 26 item 6: a `+tag` is cut from every domain's addresses, not only the listed
//! providers', so `ada+x@analytical.example` after `ada@analytical.example` is the same person
//! and is refused exactly as a second start with the very same address is.
use serde_json::json;
use trials::domain::signals::SignalSecret;
use trials_tests::{Call, TestApp, TestResponse};

async fn start(t: &TestApp, org: &str, email: &str) -> TestResponse {
    t.send(
        Call::post("/v1/trials/start")
            .idempotency_key(&format!("start-{org}"))
            .org(org)
            .json(&json!({ "plan": "growth", "email": email })),
    )
    .await
}

#[tokio::test]
async fn a_plus_tag_on_a_custom_domain_is_refused_as_the_same_address_is() {
    let t = TestApp::with_config(|c| {
        c.applicant.signal_secret =
            Some(SignalSecret::new("tag-test-signal-secret-0123456789").unwrap())
    })
    .await;
    let first = start(&t, "org_ada_one", "ada@analytical.example").await;
    assert_eq!(first.status, 201, "{}", first.body);

    let same = start(&t, "org_ada_two", "ada@analytical.example").await;
    let tagged = start(&t, "org_ada_three", "Ada+x@Analytical.example").await;
    for refused in [&same, &tagged] {
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.error_code(), "trial_not_eligible");
    }
    assert_eq!(
        tagged.json()["error"]["reason"],
        same.json()["error"]["reason"]
    );
    assert_eq!(tagged.json()["error"]["reason"], "signal_reused");

    // Another mailbox on the same domain is not the same email (a reused domain only flags).
    let other = start(&t, "org_bea", "bea@analytical.example").await;
    assert_eq!(other.status, 201, "{}", other.body);
}
