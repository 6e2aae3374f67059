//! `trials-local` wired up: the store (embedded dynoxide, or `DYNAMODB_ENDPOINT`), the API on
//! one loopback address, the Stripe stand-in when no Stripe account is configured, and the
//! scheduled jobs on a timer. `main` parses the command line and calls [`start`]; tests call it
//! too, with their own environment.
//!
//! With the stand-in (no `STRIPE_SECRET_KEY`), the whole payment loop stays on this machine:
//! - convert's sessions get URLs on this server (`/checkout/pay/{id}`), whose page sends the
//!   signed webhook deliveries to this server's `/v1/webhooks/stripe`;
//! - `CHECKOUT_SUCCESS_URL` and `CHECKOUT_CANCEL_URL` default to this server's `/checkout/success`
//!   and `/checkout/cancel` pages (whatever the port);
//! - `STRIPE_WEBHOOK_SECRET` defaults to [`LOCAL_WEBHOOK_SECRET`], the placeholder
//!   `scripts/sign-stripe-event.py` also signs with;
//! - the stand-in's sessions persist in `<data>/stripe-standin.json` with the trials.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trials::clock::SystemClock;
use trials::config::{Config, Secret};
use trials::domain::time::parse_duration_secs;
use trials::jobs::Job;
use trials::publish::Publisher;
use trials::store::Store;
use trials::App;

use crate::console::data::{JobLog, JobRun};
use crate::dev_key::{self, DevKey};
use crate::stream::StreamReader;
use crate::stripe_standin::{self, Catalog, StripeStandIn, WebhookTarget};

/// The webhook secret of a local run with the stand-in and no `STRIPE_WEBHOOK_SECRET`: public,
/// like the dev key; only the stand-in and `scripts/sign-stripe-event.py` sign with it.
pub const LOCAL_WEBHOOK_SECRET: &str = "whsec_local_placeholder";
/// The stand-in's sessions, in the data directory.
pub const STANDIN_STATE_FILE: &str = "stripe-standin.json";
/// How often the stand-in looks for sessions that ran out (and sends their expiry).
const STANDIN_SWEEP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// Where the embedded DynamoDB listens (port 0 picks one).
    pub dynamodb_addr: SocketAddr,
}

/// A started `trials-local`.
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    pub standin: Option<StripeStandIn>,
    /// The dev key, on the embedded store only.
    pub dev_key: Option<DevKey>,
    /// The HTTP server; it ends only on an I/O error.
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts everything; `env` is the environment (`std::env::var` in `main`).
pub async fn start(
    options: &Options,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Running, String> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let jobs_every = jobs_interval(env("JOBS_INTERVAL"))?;
    let mut config = Config::from_lookup(env)?;
    let (dynamo, embedded) = match config.dynamodb_endpoint.clone() {
        Some(endpoint) => (trials::aws::from_environment(Some(&endpoint)).await, None),
        None => {
            let embedded = crate::embedded::start_embedded(
                Some(&options.data),
                &options.dynamodb_addr.to_string(),
            )
            .await
            // Most often a second `make run`, or something else on port 8000.
            .map_err(|e| {
                format!(
                    "{e}: choose another address with --dynamodb-addr HOST:PORT \
                     (127.0.0.1:0 picks a free port; `make run DYNAMODB_ADDR=127.0.0.1:8001`)"
                )
            })?;
            tracing::info!(data = %options.data.display(), endpoint = %embedded.endpoint, "embedded DynamoDB (dynoxide)");
            (
                trials::aws::local_dynamodb(&embedded.endpoint),
                Some(embedded),
            )
        }
    };
    let store = Store::new(dynamo, config.table_name.clone(), config.due_shards);
    store.ensure_table().await.map_err(|e| e.to_string())?;
    match &embedded {
        Some(embedded) => {
            // The event source mapping's stand-in: the embedded store's stream to the
            // publisher (EventBridge when EVENT_BUS_NAME is set, else the log), resuming from
            // its checkpoint in the data directory; and DynamoDB's TTL, which dynoxide only
            // runs when asked.
            let publisher = match env("EVENT_BUS_NAME") {
                Some(bus) => Publisher::EventBridge {
                    client: trials::aws::eventbridge_from_environment().await,
                    bus,
                },
                None => Publisher::Log,
            };
            let reader = StreamReader::new(
                embedded.db.clone(),
                store.table_name(),
                Some(options.data.join(crate::stream::CHECKPOINT_FILE)),
            );
            tokio::spawn(pump_stream(reader, publisher, store.clone()));
            tokio::spawn(sweep_ttl_every(embedded.db.clone(), jobs_every));
        }
        None => tracing::warn!(
            "DYNAMODB_ENDPOINT is set: events stay in the table (no stream reader for an external store)"
        ),
    }

    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");

    let standin = if config.stripe.secret_key.is_none() {
        Some(start_standin(&mut config, &env, &base, &options.data).await?)
    } else {
        None
    };
    let app = App::new(config, store, Arc::new(SystemClock));
    tracing::info!(url = %base, table = app.store.table_name(), "trials-local ready");
    let dev_key = if embedded.is_some() {
        // The embedded store only: a dev key, printed for the developer (never logged).
        Some(dev_key::ensure(&app.store, &options.data, app.now()).await?)
    } else {
        None
    };
    let job_log = JobLog::default();
    tokio::spawn(run_jobs_every(app.clone(), jobs_every, job_log.clone()));
    let router = crate::server::local_router(app.clone(), standin.clone(), job_log);
    // The peer's address reaches the handlers: the console serves loopback clients only.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(Running {
        addr,
        app,
        standin,
        dev_key,
        server,
    })
}

/// No Stripe account configured: convert talks to the local stand-in, whose page and webhook
/// deliveries point at this server (`base`).
async fn start_standin(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
    base: &str,
    data: &std::path::Path,
) -> Result<StripeStandIn, String> {
    if config.webhook.secrets.is_empty() {
        config.webhook.secrets = vec![Secret::new(LOCAL_WEBHOOK_SECRET)];
    }
    if env("CHECKOUT_SUCCESS_URL").is_none() {
        config.stripe.success_url =
            format!("{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}");
    }
    if env("CHECKOUT_CANCEL_URL").is_none() {
        config.stripe.cancel_url = format!("{base}/checkout/cancel");
    }
    // The stand-in sells every priced plan of the trials catalog, under the plan's name.
    let plans: Vec<(&str, &str)> = config
        .catalog
        .plans()
        .iter()
        .filter_map(|p| Some((p.stripe_price.as_deref()?, p.name.as_str())))
        .collect();
    let catalog = Catalog::for_plans(&plans);
    let standin = StripeStandIn::start_with(stripe_standin::Options {
        checkout_base: Some(base.to_owned()),
        webhook: Some(WebhookTarget {
            url: format!("{base}/v1/webhooks/stripe"),
            // The first secret signs, as Stripe signs with the endpoint's current one.
            secret: config.webhook.secrets[0].clone(),
        }),
        catalog,
        async_payment_delay: async_payment_delay(env("STANDIN_ASYNC_PAYMENT_DELAY"))?,
        state_file: Some(data.join(STANDIN_STATE_FILE)),
        sweep_every: Some(STANDIN_SWEEP),
    })
    .await?;
    tracing::info!(
        url = standin.base_url(),
        "no STRIPE_SECRET_KEY: using the local Stripe stand-in"
    );
    config.stripe.api_base = standin.base_url().to_owned();
    config.stripe.secret_key = Some(Secret::new(stripe_standin::LOCAL_SECRET_KEY));
    Ok(standin)
}

/// `JOBS_INTERVAL`: a duration such as `10s` or `5m` (default `10s`).
fn jobs_interval(raw: Option<String>) -> Result<Duration, String> {
    let raw = raw.unwrap_or_else(|| "10s".into());
    parse_duration_secs(&raw)
        .map(|secs| Duration::from_secs(secs as u64))
        .map_err(|e| format!("JOBS_INTERVAL: {e}"))
}

/// `STANDIN_ASYNC_PAYMENT_DELAY`: how long a delayed payment takes (default `3s`; `0s` for
/// tests).
fn async_payment_delay(raw: Option<String>) -> Result<Duration, String> {
    match raw {
        None => Ok(stripe_standin::Options::default().async_payment_delay),
        Some(raw) => parse_duration_secs(&raw)
            .map(|secs| Duration::from_secs(secs as u64))
            .map_err(|e| format!("STANDIN_ASYNC_PAYMENT_DELAY: {e}")),
    }
}

/// The schedule rules' stand-in: both jobs, one after the other, at start and then every
/// `every`. A run logs at INFO only when it did something (`trials::jobs::run`); every run is
/// recorded in `log` for the console.
async fn run_jobs_every(app: App, every: Duration, log: JobLog) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for job in [Job::Expire, Job::ExpireSessions, Job::Purge] {
            let at = app.now();
            let report = trials::jobs::run(&app, job, None).await;
            log.record(JobRun {
                job: job.name(),
                at,
                report,
            });
        }
    }
}

/// How often the stream is read: what Lambda's polling of the stream looks like locally.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// Reads the stream for ever, counting the funnel events and publishing each event (the local
/// log shows them).
async fn pump_stream(mut reader: StreamReader, publisher: Publisher, store: Store) {
    loop {
        if let Err(e) = reader.pump(&publisher, &store).await {
            tracing::warn!(error = %e, "stream read failed; retrying");
        }
        tokio::time::sleep(STREAM_POLL).await;
    }
}

/// DynamoDB's TTL deletes expired items by itself; dynoxide only when asked.
async fn sweep_ttl_every(db: dynoxide::Database, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match crate::stream::sweep_ttl(&db).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "TTL sweep"),
            Err(e) => tracing::warn!(error = %e, "TTL sweep failed"),
        }
    }
}
