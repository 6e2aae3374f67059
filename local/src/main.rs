//! `trials-local`: the whole Trials API on one machine.
//!
//! ```text
//! trials-local [--addr HOST:PORT] [--data DIR] [--dynamodb-addr HOST:PORT]
//! ```
//! Without `DYNAMODB_ENDPOINT`, DynamoDB is an embedded dynoxide persisted under `--data`
//! (default `.trials`), and the table is created on first run. With it, that DynamoDB is used.
//! The scheduled jobs (expire, then purge) run every `JOBS_INTERVAL` (default `10s`), as the
//! deployed schedule rules run them.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trials::clock::SystemClock;
use trials::config::Config;
use trials::domain::time::parse_duration_secs;
use trials::jobs::Job;
use trials::publish::Publisher;
use trials::store::Store;
use trials::App;
use trials_local::stream::StreamReader;

const USAGE: &str =
    "usage: trials-local [--addr HOST:PORT] [--data DIR] [--dynamodb-addr HOST:PORT]

Serves the whole Trials API locally with the same handlers the Lambda functions run.
  --addr HOST:PORT   where to listen (default 127.0.0.1:3000)
  --data DIR         embedded DynamoDB data directory (default .trials)
  --dynamodb-addr HOST:PORT
                     where the embedded DynamoDB listens, for functions run by
                     `cargo lambda watch` (default 127.0.0.1:8000; port 0 picks one)
Environment: DYNAMODB_ENDPOINT uses that DynamoDB instead of the embedded one; JOBS_INTERVAL
(default 10s) is how often the expire and purge jobs run; see README for the rest.";

struct Args {
    addr: String,
    data: PathBuf,
    dynamodb_addr: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:3000".into(),
        data: PathBuf::from(".trials"),
        dynamodb_addr: "127.0.0.1:8000".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--addr" => args.addr = it.next().ok_or("--addr needs HOST:PORT")?,
            "--data" => args.data = it.next().ok_or("--data needs a directory")?.into(),
            "--dynamodb-addr" => {
                args.dynamodb_addr = it.next().ok_or("--dynamodb-addr needs HOST:PORT")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("trials-local: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let jobs_every = jobs_interval()?;
    trials::telemetry::init();
    let mut config = Config::from_env()?;
    let (dynamo, embedded) = match config.dynamodb_endpoint.clone() {
        Some(endpoint) => (trials::aws::from_environment(Some(&endpoint)).await, None),
        None => {
            let embedded =
                trials_local::embedded::start_embedded(Some(&args.data), &args.dynamodb_addr)
                    .await?;
            tracing::info!(data = %args.data.display(), endpoint = %embedded.endpoint, "embedded DynamoDB (dynoxide)");
            (
                trials::aws::local_dynamodb(&embedded.endpoint),
                Some(embedded),
            )
        }
    };
    let store = Store::new(dynamo, config.table_name.clone(), config.due_shards);
    store.ensure_table().await.map_err(|e| e.to_string())?;
    // The event source mapping's stand-in: the embedded store's stream to the publisher (to
    // EventBridge when EVENT_BUS_NAME is set, else to the log).
    match &embedded {
        Some(embedded) => {
            let publisher = match std::env::var("EVENT_BUS_NAME").ok().filter(|b| !b.is_empty()) {
                Some(bus) => Publisher::EventBridge {
                    client: trials::aws::eventbridge_from_environment().await,
                    bus,
                },
                None => Publisher::Log,
            };
            let reader = StreamReader::new(
                embedded.db.clone(),
                store.table_name(),
                Some(args.data.join(trials_local::stream::CHECKPOINT_FILE)),
            );
            tokio::spawn(pump_stream(reader, publisher));
            tokio::spawn(sweep_ttl_every(embedded.db.clone(), jobs_every));
        }
        None => tracing::warn!(
            "DYNAMODB_ENDPOINT is set: events stay in the table (no stream reader for an external store)"
        ),
    }
    if config.stripe.secret_key.is_none() {
        // No Stripe account configured: convert talks to the local stand-in instead, so the
        // whole flow works offline.
        let standin = trials_local::stripe_standin::StripeStandIn::start().await?;
        tracing::info!(
            url = standin.base_url(),
            "no STRIPE_SECRET_KEY: using the local Stripe stand-in"
        );
        config.stripe.api_base = standin.base_url().to_owned();
        config.stripe.secret_key = Some(trials::config::Secret::new(
            trials_local::stripe_standin::LOCAL_SECRET_KEY,
        ));
    }
    let app = App::new(config, store, Arc::new(SystemClock));

    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(url = %format!("http://{addr}"), table = app.store.table_name(), "trials-local ready");
    println!("Trials API on http://{addr}");
    if app.config.dynamodb_endpoint.is_none() {
        // The embedded store only: a dev key, printed for the developer (never logged).
        let dev = trials_local::dev_key::ensure(&app.store, &args.data, app.now()).await?;
        println!("{}", dev.banner(&format!("http://{addr}")));
    }
    tokio::spawn(run_jobs_every(app.clone(), jobs_every));
    trials_local::server::serve(app, listener)
        .await
        .map_err(|e| e.to_string())
}

/// `JOBS_INTERVAL`: a duration such as `10s` or `5m`.
fn jobs_interval() -> Result<Duration, String> {
    let raw = std::env::var("JOBS_INTERVAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "10s".into());
    parse_duration_secs(&raw)
        .map(|secs| Duration::from_secs(secs as u64))
        .map_err(|e| format!("JOBS_INTERVAL: {e}"))
}

/// The schedule rules' stand-in: both jobs, one after the other, at start and then every
/// `every`. Each run logs its counts.
async fn run_jobs_every(app: App, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for job in [Job::Expire, Job::Purge] {
            trials::jobs::run(&app, job, None).await;
        }
    }
}

/// How often the stream is read: what Lambda's polling of the stream looks like locally.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// Reads the stream for ever, publishing each event (the local log shows them).
async fn pump_stream(mut reader: StreamReader, publisher: Publisher) {
    loop {
        if let Err(e) = reader.pump(&publisher).await {
            tracing::warn!(error = %e, "stream read failed; retrying");
        }
        tokio::time::sleep(STREAM_POLL).await;
    }
}

/// DynamoDB's TTL deletes by itself; dynoxide only when asked.
async fn sweep_ttl_every(db: dynoxide::Database, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match trials_local::stream::sweep_ttl(&db).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "TTL sweep"),
            Err(e) => tracing::warn!(error = %e, "TTL sweep failed"),
        }
    }
}
