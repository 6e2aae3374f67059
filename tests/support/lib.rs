//! The test kit: embedded dynoxide on `127.0.0.1:0` talked to by the real `aws-sdk-dynamodb`
//! client, an injected clock, a request counter (and fault switch) on the SDK client, and
//! helpers to build API Gateway requests and read the responses.
pub mod capacity;
pub mod chaos;
pub mod counter;
pub mod eventbridge;
pub mod logs;
pub mod requests;
pub mod stripe;
pub mod time;
pub mod writes;

use std::sync::Arc;

use trials::clock::ManualClock;
use trials::config::Config;
use trials::publish::Publisher;
use trials::store::Store;
use trials::App;
use trials_local::stream::{Pumped, StreamReader};

pub use capacity::{CapacityMeter, Units};
pub use chaos::{Chaos, ChaosSpec, ChaosStats};
pub use counter::{DynamoCounter, Held};
pub use requests::{Call, TestResponse};

/// 2026-04-06T10:00:00Z: the API reference's example start.
pub const T0: i64 = 1_775_469_600;
pub const DAY: i64 = 86_400;

/// Starts an in-memory dynoxide server inside the test process; returns its endpoint and the
/// database (for its stream and its TTL sweep).
pub async fn start_dynoxide() -> (String, dynoxide::Database) {
    let embedded = trials_local::embedded::start_embedded(None, "127.0.0.1:0")
        .await
        .expect("in-memory dynoxide");
    (embedded.endpoint, embedded.db)
}

/// The built-in plan catalog after `edit` on its JSON (`v["plans"][1]` is `growth`): a test's
/// own terms, prices or trialable flags without a file.
pub fn builtin_catalog_with(
    edit: impl FnOnce(&mut serde_json::Value),
) -> trials::domain::catalog::Catalog {
    use trials::domain::catalog::{Catalog, BUILTIN_JSON};
    let mut json: serde_json::Value = serde_json::from_str(BUILTIN_JSON).expect("built-in JSON");
    edit(&mut json);
    Catalog::from_json(&json.to_string()).expect("edited catalog is valid")
}

/// One isolated Trials instance: its own dynoxide database, table and clock.
#[derive(Clone)]
pub struct TestApp {
    pub app: App,
    pub clock: ManualClock,
    pub dynamo: DynamoCounter,
    /// Consumed capacity by operation, while on (`tests/integration/capacity.rs`).
    pub capacity: CapacityMeter,
    pub endpoint: String,
    /// The API keys `send` authenticates with, one per org (see `requests::TestKeys`).
    pub keys: Arc<requests::TestKeys>,
    /// The embedded database: its stream is what the `publish` function reads in AWS.
    pub db: dynoxide::Database,
    /// The event source mapping's emulation over `db`'s stream, and where it publishes.
    stream: Arc<tokio::sync::Mutex<StreamReader>>,
    pub publisher: Publisher,
    /// The DynamoDB semantics layer the app's client goes through (`with_chaos`), if any.
    pub chaos: Option<Chaos>,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(|_| {}).await
    }

    /// `tweak` adjusts the default configuration before the app is built.
    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::with(tweak, |_| Publisher::Log).await
    }

    /// Full control: configuration and the event publisher the stream feeds (e.g. EventBridge
    /// to a recorder).
    pub async fn with(
        tweak: impl FnOnce(&mut Config),
        publisher: impl FnOnce(&Config) -> Publisher,
    ) -> TestApp {
        TestApp::build(tweak, publisher, None).await
    }

    /// An app whose DynamoDB client goes through the semantics layer (`chaos`): conflicts,
    /// throttles, lost responses... as `spec` says. The kit's own set-up (the table, API keys)
    /// does not; `t.chaos` counts only what the app sends.
    pub async fn with_chaos(spec: ChaosSpec) -> TestApp {
        TestApp::with_chaos_and(spec, |_| {}, |_| Publisher::Log).await
    }

    /// [`TestApp::with_chaos`] with the configuration and publisher of [`TestApp::with`].
    pub async fn with_chaos_and(
        spec: ChaosSpec,
        tweak: impl FnOnce(&mut Config),
        publisher: impl FnOnce(&Config) -> Publisher,
    ) -> TestApp {
        TestApp::build(tweak, publisher, Some(Chaos::new(spec))).await
    }

    async fn build(
        tweak: impl FnOnce(&mut Config),
        publisher: impl FnOnce(&Config) -> Publisher,
        chaos: Option<Chaos>,
    ) -> TestApp {
        let (endpoint, db) = start_dynoxide().await;
        let mut config = Config::from_lookup(|_| None).expect("default config");
        config.table_name = "trials-test".into();
        tweak(&mut config);
        let dynamo = DynamoCounter::default();
        let capacity = CapacityMeter::default();
        let mut client_config = trials::aws::local_dynamodb_config(&endpoint);
        if let Some(chaos) = &chaos {
            let http = client_config
                .clone()
                .build()
                .http_client()
                .expect("the local client's HTTP client");
            // The layer's holds are requests that wait without a byte moving: a test's long
            // hold would read as a stalled stream and fail after the monitor's 5 s grace.
            // Its own retry partition, as one Lambda process has: the SDK's retry quota is a
            // process-wide token bucket per partition, and the layer's faults spend it; they
            // must not starve the SDK retries of the other tests in this process.
            client_config = client_config
                .http_client(chaos.http_client(http))
                .stalled_stream_protection(
                    aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
                )
                .retry_partition(aws_sdk_dynamodb::config::retry::RetryPartition::new(
                    chaos.partition_name(),
                ));
        }
        let client = aws_sdk_dynamodb::Client::from_conf(
            client_config
                .interceptor(dynamo.clone())
                .interceptor(capacity.clone())
                .build(),
        );
        let store = Store::new(client, config.table_name.clone(), config.due_shards);
        // Under the layer, the table is made without it: set-up is not under test.
        let setup = match &chaos {
            Some(_) => Store::new(
                trials::aws::local_dynamodb(&endpoint),
                config.table_name.clone(),
                config.due_shards,
            ),
            None => store.clone(),
        };
        setup.ensure_table().await.expect("create table");
        let clock = ManualClock::at(T0);
        let publisher = publisher(&config);
        let stream = StreamReader::new(db.clone(), store.table_name(), None);
        let app = App::new(config, store, Arc::new(clock.clone()));
        dynamo.reset();
        let keys = Arc::new(requests::TestKeys::new(&app, &endpoint));
        if let Some(chaos) = &chaos {
            chaos.reset_stats();
        }
        TestApp {
            app,
            clock,
            dynamo,
            capacity,
            endpoint,
            keys,
            db,
            stream: Arc::new(tokio::sync::Mutex::new(stream)),
            publisher,
            chaos,
        }
    }

    /// What the event source mapping would do now: reads the stream since the last call and
    /// hands the new event records, 10 at a time, to the `publish` function's code (which
    /// counts the funnel events into the app's table: `trialctl stats` reads them after this).
    pub async fn publish_events(&self) -> Pumped {
        self.stream
            .lock()
            .await
            .pump(&self.publisher, &self.app.store)
            .await
            .expect("stream readable")
    }

    /// The terms a trial of `plan` starts with under this app's catalog.
    /// The length and grace of the default test plan (`growth`; every built-in plan has the
    /// same), as a trial started now would have them.
    pub fn policy(&self) -> trials::domain::TrialPolicy {
        let terms = self.terms("growth");
        trials::domain::TrialPolicy {
            length_secs: terms.trial_length_secs,
            grace_secs: terms.grace_secs,
        }
    }

    pub fn terms(&self, plan: &str) -> trials::domain::catalog::TrialTerms {
        self.app
            .config
            .catalog
            .get(plan)
            .expect("plan in the catalog")
            .snapshot()
    }

    pub fn now(&self) -> i64 {
        trials::clock::Clock::now(&self.clock)
    }

    /// The details of the event items of type `kind` in the table, oldest first.
    pub async fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        let mut found: Vec<serde_json::Value> = self
            .app
            .store
            .events_since(0)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.kind.detail_type() == kind)
            .map(|e| serde_json::from_str(&e.detail).expect("detail"))
            .collect();
        found.sort_by_key(|e| e["occurred_at"].as_str().unwrap_or_default().to_owned());
        found
    }
}
