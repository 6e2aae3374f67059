//! A local run has a job run every 10 s: one that found nothing to do is logged at DEBUG, so
//! the terminal shows only runs that did something (at INFO).
use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_http::Body;
use tracing_subscriber::layer::SubscriberExt;
use trials::clock::{Clock, ManualClock};
use trials::config::Config;
use trials::jobs::Job;
use trials::store::Store;
use trials::App;
use trials_local::dev_key::{DEV_KEY, DEV_ORG, DEV_PROJECT};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The `job run` lines so far, and forget them.
    fn job_runs(&self) -> Vec<serde_json::Value> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == "job run")
            .collect()
    }
}

#[tokio::test]
async fn empty_job_runs_log_at_debug_and_busy_ones_at_info() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(trials::telemetry::layer(tracing::Level::DEBUG, move || {
            writer.clone()
        }));
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = std::env::temp_dir().join(format!("trials-local-jobs-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let endpoint = trials_local::embedded::start_dynoxide(None).await.unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let store = Store::new(
        trials::aws::local_dynamodb(&endpoint),
        config.table_name.clone(),
        config.due_shards,
    );
    store.ensure_table().await.unwrap();
    let clock = ManualClock::at(1_775_469_600);
    let app = App::new(config, store, Arc::new(clock.clone()));
    trials_local::dev_key::ensure(&app.store, &dir, clock.now())
        .await
        .unwrap();

    trials::jobs::run(&app, Job::Expire, None).await;
    let runs = captured.job_runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0]["level"].as_str(), runs[0]["processed"].as_u64()),
        (Some("DEBUG"), Some(0))
    );

    let start = lambda_http::http::Request::builder()
        .method("POST")
        .uri("http://localhost/v1/trials/start")
        .header("authorization", format!("Bearer {DEV_KEY}"))
        .header("x-org-id", DEV_ORG)
        .header("x-project-id", DEV_PROJECT)
        .header("idempotency-key", "k1")
        .header("content-type", "application/json")
        .body(Body::Text(r#"{"plan":"growth"}"#.into()))
        .unwrap();
    assert_eq!(trials::api::handle_any(&app, start).await.status(), 201);
    clock.advance(8 * 86_400);
    trials::jobs::run(&app, Job::Expire, None).await;
    let runs = captured.job_runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0]["level"].as_str(), runs[0]["processed"].as_u64()),
        (Some("INFO"), Some(1))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
