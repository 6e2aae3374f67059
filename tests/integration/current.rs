//! Issue 15: `GET /v1/trials/current`, the org's trial without its id.
use trials_tests::requests::{read, ORG};
use trials_tests::{Call, TestApp, DAY, T0};

use crate::jobs::{expire, purge};

#[tokio::test]
async fn current_is_the_orgs_trial_404_without_one_410_once_purged() {
    let t = TestApp::new().await;
    let res = t.send(Call::get("/v1/trials/current")).await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert_eq!(res.error_code(), "trial_not_found");

    let id = t.start_trial(ORG, "growth").await;
    // Another org's trial is never ours.
    t.start_trial("org_other", "pro").await;
    let current = t.send(Call::get("/v1/trials/current")).await;
    assert_eq!(current.status, 200, "{}", current.body);
    let by_id = t.send(Call::status(&id)).await;
    assert_eq!(current.body, by_id.body);

    // As the status function serves it (several routes, chosen by method and path; a stage
    // prefix in the path is fine).
    let call = t
        .authorize(Call::get("/prod/v1/trials/current"))
        .await
        .build();
    let served = read(trials::api::handle_among(&t.app, trials::api::routes::STATUS, call).await);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.body, by_id.body);
    let call = t.authorize(Call::get("/v1/trials/start")).await.build();
    let other = read(trials::api::handle_among(&t.app, trials::api::routes::STATUS, call).await);
    assert_eq!(other.status, 405, "{}", other.body);

    t.clock.set(T0 + 7 * DAY);
    expire(&t).await;
    t.clock.set(T0 + 10 * DAY + 1);
    assert_eq!(purge(&t).await.processed, 2, "both orgs' trials");
    let res = t.send(Call::get("/v1/trials/current")).await;
    assert_eq!(res.status, 410, "{}", res.body);
    assert_eq!(res.error_code(), "trial_expired");
}

#[tokio::test]
async fn a_key_limited_to_other_projects_sees_no_current_trial() {
    let t = TestApp::new().await;
    t.start_trial(ORG, "growth").await;
    let other = t.create_key(ORG, &["proj_other"]).await;
    let res = t
        .send(
            Call::get("/v1/trials/current")
                .without("x-project-id")
                .header("x-project-id", "proj_other")
                .bearer(other.expose()),
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert_eq!(res.error_code(), "trial_not_found");
    let mine = t.create_key(ORG, &["proj_def456"]).await;
    let res = t
        .send(Call::get("/v1/trials/current").bearer(mine.expose()))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}
