//! `trials-local`: the whole Trials API on one machine.
//!
//! ```text
//! trials-local [--addr HOST:PORT] [--data DIR] [--dynamodb-addr HOST:PORT]
//! ```
//! Without `DYNAMODB_ENDPOINT`, DynamoDB is an embedded dynoxide persisted under `--data`
//! (default `.trials`), and the table is created on first run. With it, that DynamoDB is used.
use std::path::PathBuf;
use std::sync::Arc;

use trials::clock::SystemClock;
use trials::config::Config;
use trials::events::Publisher;
use trials::store::Store;
use trials::App;

const USAGE: &str = "usage: trials-local [--addr HOST:PORT] [--data DIR] [--dynamodb-addr HOST:PORT]

Serves the whole Trials API locally with the same handlers the Lambda functions run.
  --addr HOST:PORT   where to listen (default 127.0.0.1:3000)
  --data DIR         embedded DynamoDB data directory (default .trials)
  --dynamodb-addr HOST:PORT
                     where the embedded DynamoDB listens, for functions run by
                     `cargo lambda watch` (default 127.0.0.1:8000; port 0 picks one)
Environment: DYNAMODB_ENDPOINT uses that DynamoDB instead of the embedded one; see README for the rest.";

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
    trials::telemetry::init();
    let mut config = Config::from_env()?;
    let (dynamo, eventbridge) = match config.dynamodb_endpoint.clone() {
        Some(endpoint) => trials::aws::from_environment(Some(&endpoint)).await,
        None => {
            let endpoint =
                trials_local::embedded::start_dynoxide_on(Some(&args.data), &args.dynamodb_addr)
                    .await?;
            tracing::info!(data = %args.data.display(), endpoint = %endpoint, "embedded DynamoDB (dynoxide)");
            (
                trials::aws::local_dynamodb(&endpoint),
                trials::aws::local_eventbridge(&endpoint),
            )
        }
    };
    let store = Store::new(dynamo, config.table_name.clone(), config.due_shards);
    store.ensure_table().await.map_err(|e| e.to_string())?;
    let publisher = match &config.event_bus {
        Some(bus) => Publisher::EventBridge {
            client: eventbridge,
            bus: bus.clone(),
        },
        None => Publisher::Log,
    };
    config.table_name = store.table_name().to_owned();
    let app = App::new(config, store, publisher, Arc::new(SystemClock));

    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(url = %format!("http://{addr}"), table = app.store.table_name(), "trials-local ready");
    println!("Trials API on http://{addr}");
    trials_local::server::serve(app, listener)
        .await
        .map_err(|e| e.to_string())
}
