use trials_tests::requests::ORG;
use trials_tests::stripe::with_stripe;
use trials_tests::{writes, Call, TestApp, DAY, T0};

#[tokio::test]
async fn cancel_moves_an_active_trial_to_canceled() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.clock.advance(3600);
    let res = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "CANCELED");
    assert_eq!(body["canceled_at"], "2026-04-06T11:00:00Z");
    assert_eq!(body["days_remaining"], 0);
    let status = t.send(Call::status(&id)).await.json();
    assert_eq!(status["status"], "CANCELED");
    assert_eq!(status["canceled_at"], "2026-04-06T11:00:00Z");
}

#[tokio::test]
async fn a_second_cancel_is_409_and_a_retry_replays() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let first = t.send(Call::cancel(&id, "c1")).await;
    assert_eq!(
        (first.status, first.replayed()),
        (200, false),
        "{}",
        first.body
    );
    assert_eq!(first.json()["status"], "CANCELED");
    let replay = t.send(Call::cancel(&id, "c1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    let again = t.send(Call::cancel(&id, "c2")).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "trial_canceled")
    );
}

#[tokio::test]
async fn converted_expired_unknown_and_foreign_trials_cannot_be_canceled() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let trial = writes::stored(&t, &id).await.expect("trial");
    assert!(writes::convert(&t, &trial, t.now()).await);
    let res = t.send(Call::cancel(&id, "a")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_converted")
    );

    let other = t.start_trial("org_b", "pro").await;
    let res = t.send(Call::cancel(&other, "b")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    t.clock.set(T0 + 7 * DAY);
    let res = t.send(Call::cancel(&other, "b").org("org_b")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_expired")
    );
    let res = t
        .send(Call::cancel("trial_0123456789abcdef01234567", "c"))
        .await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (404, "trial_not_found")
    );
    let res = t.send(Call::post(&format!("/v1/trials/{id}/cancel"))).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "missing_idempotency_key")
    );
}

#[tokio::test]
async fn a_canceled_trial_cannot_convert_and_the_org_cannot_start_again() {
    let (t, stripe) = with_stripe(|_| {}).await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    let res = t.send(Call::convert(&id, "v")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_canceled")
    );
    let res = t.send(Call::start("pro", "s2")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_exists")
    );
    assert!(stripe.requests().is_empty());
}

#[tokio::test]
async fn cancel_is_two_dynamodb_round_trips() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    t.dynamo.reset();
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    // The read of the trial, then one transaction (trial, idempotency record, event).
    assert_eq!(
        t.dynamo.count("GetItem"),
        1,
        "{:?}",
        t.dynamo.by_operation()
    );
    assert_eq!(t.dynamo.count("TransactWriteItems"), 1);
    assert_eq!(t.dynamo.total(), 2, "{:?}", t.dynamo.by_operation());
}

#[tokio::test]
async fn concurrent_cancels_with_different_keys_cancel_once() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move { t.send(Call::cancel(&id, &format!("k{i}"))).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let res = task.await.unwrap();
        if res.status == 409 {
            assert_eq!(res.error_code(), "trial_canceled");
        }
        statuses.push(res.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_purged_trial_is_410_and_the_org_still_cannot_start_again() {
    let t = TestApp::new().await;
    let id = t.start_trial(ORG, "growth").await;
    assert_eq!(t.send(Call::cancel(&id, "c")).await.status, 200);
    t.clock.advance(3 * DAY);
    trials::jobs::run(&t.app, trials::jobs::Job::Purge, None).await;
    let res = t.send(Call::cancel(&id, "again")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (410, "trial_expired")
    );
    let res = t.send(Call::start("growth", "restart")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (409, "trial_already_exists")
    );
}
