//! Issue 26 item 8a: the project is part of the idempotency scope. The same Idempotency-Key and
//! body under another `X-Project-Id` is another request: it never replays the first project's
//! trial.
use trials_tests::{Call, TestApp};

#[tokio::test]
async fn the_same_key_and_body_under_another_project_does_not_replay_the_first_trial() {
    let t = TestApp::new().await;
    let first = t.send(Call::start("growth", "shared-key")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let trial_id = first.json()["id"].as_str().unwrap().to_owned();

    let other = t
        .send(
            Call::start("growth", "shared-key")
                .without("x-project-id")
                .header("x-project-id", "proj_other"),
        )
        .await;
    assert!(!other.replayed(), "{}", other.body);
    assert!(!other.body.contains(&trial_id), "{}", other.body);
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        other.body
    );

    // The first project's retry still replays its own answer.
    let again = t.send(Call::start("growth", "shared-key")).await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
}
