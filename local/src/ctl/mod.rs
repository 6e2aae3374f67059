//! `trialctl`, the operator's command line against the Trials table, parsed with clap.
//!
//! One module per command group (`keys`, `trials`, `events`, `plans`, `completions`), each with its clap
//! `Subcommand` enum and a `run` taking a [`Ctx`]; a new group is a module, a variant of
//! [`Command`] and an arm in [`run`]. A new command in a group is a variant and an arm there.
//!
//! Exit status: 0 done, 1 the operation failed (no such key, store unreachable...), 2 the
//! command line was wrong (clap's usage errors, which name the argument).
pub mod completions;
pub mod eligibility;
pub mod events;
pub mod keys;
pub mod plans;
pub mod stats;
pub mod trials;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};
// `::trials` is the library; `trials` here is the command group's module.
use ::trials::config::{Config, DEFAULT_TABLE};
use ::trials::store::Store;

/// Operator commands against the Trials table.
#[derive(Parser, Debug)]
#[command(
    name = "trialctl",
    version,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "Where the table is:
  (default)        DynamoDB in AWS: TABLE_NAME, region and credentials from the
                   environment (DYNAMODB_ENDPOINT is honoured)
  --data DIR       the embedded store of `trials-local --data DIR` (e.g. .trials),
                   whether or not trials-local is running; only `keys create`
                   starts a new one in an empty DIR
  --endpoint URL   a DynamoDB-compatible endpoint with dummy credentials
                   (e.g. trials-local's http://127.0.0.1:8000)

Exit status: 0 done, 1 the operation failed, 2 the command line was wrong.
`trialctl <command> --help` describes a command."
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which table: options valid before or after the command.
#[derive(Args, Debug, Default, Clone)]
pub struct Target {
    /// The table (default $TABLE_NAME; with --data or --endpoint, trials-local)
    #[arg(long, value_name = "NAME", global = true, help_heading = "Table")]
    pub table: Option<String>,
    /// The embedded store of `trials-local --data DIR`
    #[arg(
        long,
        value_name = "DIR",
        global = true,
        conflicts_with = "endpoint",
        help_heading = "Table"
    )]
    pub data: Option<PathBuf>,
    /// A DynamoDB-compatible endpoint, with dummy credentials
    #[arg(long, value_name = "URL", global = true, help_heading = "Table")]
    pub endpoint: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// API keys: create, list, revoke
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Trials as stored
    #[command(subcommand)]
    Trials(self::trials::TrialsCommand),
    /// Domain events: republish from the table
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// The funnel: started, converted, expired, canceled, purged; conversion rate
    Stats(stats::StatsArgs),
    /// The plan catalog: check a PLANS_FILE
    #[command(subcommand)]
    Plans(plans::PlansCommand),
    /// Prints a shell completion script (e.g. `trialctl completions bash > /etc/bash_completion.d/trialctl`)
    Completions(completions::CompletionsArgs),
}

/// What a command may do with the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// The store must exist: a local directory holding none is a mistyped path.
    Existing,
    /// A new local store may be started (`keys create` before `trials-local` ever ran).
    CreateLocal,
}

/// What every command gets: where the table is, a way to open it, and the functions'
/// configuration.
pub struct Ctx {
    pub target: Target,
    /// [`Config::from_env`], read on first use: the same code and the same environment as the
    /// functions (`DUE_SHARDS`, the plans, the lifecycle terms, the key cache), so a command
    /// writes a trial exactly where the jobs look for it. Commands that touch no table
    /// (`plans`, `completions`) never read it.
    config: OnceLock<Config>,
}

/// An opened table, and where it is (for error messages).
pub struct Opened {
    pub store: Store,
    pub place: String,
}

impl Opened {
    /// A store error as an operator reads it: what failed, and where.
    pub fn failed(&self, e: ::trials::store::StoreError) -> String {
        format!("DynamoDB: {e} ({})", self.place)
    }
}

impl Ctx {
    pub fn new(target: Target) -> Ctx {
        Ctx {
            target,
            config: OnceLock::new(),
        }
    }

    /// The functions' configuration from this process's environment; an invalid value (e.g.
    /// `DUE_SHARDS=0`) fails the command, naming the variable, as it fails the functions' init.
    pub fn config(&self) -> Result<&Config, String> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::from_env()?;
        Ok(self.config.get_or_init(|| config))
    }

    /// The table the target names.
    pub async fn open(&self, mode: Open) -> Result<Opened, String> {
        let target = &self.target;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        // The due index's shard count: the functions' `DUE_SHARDS`, never a guess. A trial
        // written to another shard than the jobs read is never expired, purged or reminded.
        let shards = self.config()?.due_shards;
        if let Some(dir) = &target.data {
            if mode == Open::Existing && !dir.join(crate::embedded::DB_FILE).is_file() {
                return Err(format!(
                    "no Trials data in {} ({} not found): check the path, or run trials-local \
                     --data {0} first",
                    dir.display(),
                    crate::embedded::DB_FILE
                ));
            }
            let endpoint = crate::embedded::start_dynoxide(Some(dir)).await?;
            let table = target.table.clone().unwrap_or_else(|| DEFAULT_TABLE.into());
            let place = format!("table {table} in {}", dir.display());
            let store = Store::new(::trials::aws::local_dynamodb(&endpoint), table, shards);
            // As trials-local does on start: the local table exists from the first command on.
            store
                .ensure_table()
                .await
                .map_err(|e| format!("{e} ({place})"))?;
            return Ok(Opened { store, place });
        }
        if let Some(endpoint) = &target.endpoint {
            let table = target.table.clone().unwrap_or_else(|| DEFAULT_TABLE.into());
            let place = format!("table {table} at {endpoint}");
            let store = Store::new(::trials::aws::local_dynamodb(endpoint), table, shards);
            return Ok(Opened { store, place });
        }
        // No default table here: the deployed table's name is CloudFormation's, and guessing
        // would send an operator's revocation to the wrong table.
        let table = target.table.clone().or_else(|| env("TABLE_NAME")).ok_or(
            "no table: set TABLE_NAME or pass --table (or --data DIR for the local store)",
        )?;
        let endpoint = self.config()?.dynamodb_endpoint.clone();
        let place = match &endpoint {
            Some(url) => format!("table {table} at {url}"),
            None => format!("table {table} in AWS"),
        };
        let dynamo = ::trials::aws::from_environment(endpoint.as_deref()).await;
        Ok(Opened {
            store: Store::new(dynamo, table, shards),
            place,
        })
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), String> {
    let ctx = Ctx::new(cli.target);
    match cli.command {
        Command::Keys(cmd) => keys::run(&ctx, cmd).await,
        Command::Trials(cmd) => self::trials::run(&ctx, cmd).await,
        Command::Events(cmd) => events::run(&ctx, cmd).await,
        Command::Stats(args) => stats::run(&ctx, args).await,
        Command::Plans(cmd) => plans::run(cmd),
        Command::Completions(args) => completions::run(args),
    }
}

/// The whole of `trialctl`: parse (clap exits 0 for help, 2 for a wrong command line), run.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trialctl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
