//! `trialctl`: the operator's command line, against the Trials table (`trialctl --help`).
//! The commands live in `trials_local::ctl`, one module per command group.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    trials_local::ctl::main().await
}
