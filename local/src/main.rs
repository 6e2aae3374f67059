//! `trials-local`: the whole Trials API on one machine (see `trials-local --help`).
//!
//! Without `DYNAMODB_ENDPOINT`, DynamoDB is an embedded dynoxide persisted under `--data`
//! (default `.trials`), and the table is created on first run. With it, that DynamoDB is used.
//! Without `STRIPE_SECRET_KEY`, Stripe is the local stand-in with its checkout page. The
//! scheduled jobs (expire, then purge) run every `JOBS_INTERVAL` (default `10s`), as the
//! deployed schedule rules run them. The wiring is `trials_local::service`.
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use trials_local::service::{self, Options};

/// Serves the whole Trials API locally with the same handlers the Lambda functions run.
#[derive(Parser, Debug)]
#[command(
    name = "trials-local",
    version,
    after_help = "Environment: DYNAMODB_ENDPOINT uses that DynamoDB instead of the embedded one; \
                  STRIPE_SECRET_KEY uses that Stripe account instead of the local stand-in; \
                  JOBS_INTERVAL (default 10s) is how often the expire and purge jobs run; \
                  LOG_LEVEL (default info). See the README for the rest."
)]
struct Args {
    /// Where to listen
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000", value_parser = socket_addr)]
    addr: SocketAddr,
    /// Embedded DynamoDB data directory (also the dev API key and the Stripe stand-in's sessions)
    #[arg(long, value_name = "DIR", default_value = ".trials")]
    data: PathBuf,
    /// Where the embedded DynamoDB listens, for functions run by `cargo lambda watch`
    /// (port 0 picks one)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000", value_parser = socket_addr)]
    dynamodb_addr: SocketAddr,
}

/// `HOST:PORT`, the host a name or an address (`localhost:3000`, `127.0.0.1:0`).
fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT such as 127.0.0.1:3000 ({e})"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    trials::telemetry::init();
    let options = Options {
        addr: args.addr,
        data: args.data,
        dynamodb_addr: args.dynamodb_addr,
    };
    let running = match service::start(&options, |k| std::env::var(k).ok()).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("trials-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = running.base_url();
    println!("Trials API on {base}");
    if running.standin.is_some() {
        println!(
            "Stripe: the local stand-in (no STRIPE_SECRET_KEY). Convert's checkout_url opens a \
             page on {base}/checkout/pay/... whose Pay button sends signed webhooks to \
             {base}/v1/webhooks/stripe."
        );
    }
    if let Some(dev) = &running.dev_key {
        println!("{}", dev.banner(&base));
    }
    match running.server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("trials-local: the server stopped: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("trials-local: the server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
