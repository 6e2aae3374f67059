//! `trialctl`: the operator's command line, against the Trials table.
//!
//! ```text
//! trialctl [--table NAME] [--data DIR | --endpoint URL] keys create --org ORG [--project P]...
//! trialctl [...] keys list --org ORG
//! trialctl [...] keys revoke KEY_ID
//! trialctl [...] trials show TRIAL_ID
//! ```
//! Exit status: 0 done, 1 the operation failed (no such key, store unreachable...), 2 the
//! command line was wrong.
use std::path::PathBuf;
use std::process::ExitCode;

use trials::auth::issue;
use trials::clock::{Clock, SystemClock};
use trials::config::{Config, DEFAULT_TABLE};
use trials::domain::api_key::{self as keys, ApiKey, Projects};
use trials::domain::time::rfc3339;
use trials::domain::{OrgId, ProjectId, TrialId};
use trials::store::Store;

const USAGE: &str = "usage: trialctl [--table NAME] [--data DIR | --endpoint URL] <command>

Operator commands against the Trials table.

Commands:
  keys create --org ORG [--project P]...  create an API key; prints it once
  keys list --org ORG                     list an org's keys (never a secret)
  keys revoke KEY_ID                      revoke a key
  trials show TRIAL_ID                    print a trial as stored

Where the table is:
  (default)        DynamoDB in AWS: TABLE_NAME, region and credentials from the
                   environment (DYNAMODB_ENDPOINT is honoured)
  --data DIR       the embedded store of `trials-local --data DIR` (e.g. .trials),
                   whether or not trials-local is running; only `keys create`
                   starts a new one in an empty DIR
  --endpoint URL   a DynamoDB-compatible endpoint with dummy credentials
                   (e.g. trials-local's http://127.0.0.1:8000)
  --table NAME     the table (default $TABLE_NAME; with --data or --endpoint,
                   trials-local)

`trialctl <command> --help` describes a command.";

const KEYS_USAGE: &str = "usage: trialctl [options] keys <create|list|revoke> ...

  keys create --org ORG [--project P]...  create an API key; prints it once
  keys list --org ORG                     list an org's keys (never a secret)
  keys revoke KEY_ID                      revoke a key

`trialctl --help` lists the options that choose the table.";

const CREATE_USAGE: &str = "usage: trialctl [options] keys create --org ORG [--project P]...

Creates an API key for ORG, for the projects named (repeat --project), or for all of
the org's projects when none is. The key is printed once, alone on stdout (so
KEY=$(trialctl keys create ...) captures it), with its details on stderr. The table
keeps only its SHA-256: a lost key cannot be shown again; revoke it and make another.";

const LIST_USAGE: &str = "usage: trialctl [options] keys list --org ORG

Lists ORG's API keys, oldest first: key id, status, creation time, projects. Never
a key's secret or hash.";

const REVOKE_USAGE: &str = "usage: trialctl [options] keys revoke KEY_ID

Revokes the key KEY_ID (the 16 hex digits after trk_, as `keys list` shows them) for
good. Functions already running trust a key they verified for up to
API_KEY_CACHE_TTL (60s by default): the revocation is complete after that.";

const SHOW_USAGE: &str = "usage: trialctl [options] trials show TRIAL_ID

Prints the trial as stored, and its status as the API reports it now, as JSON.";

const TRIALS_USAGE: &str = "usage: trialctl [options] trials show TRIAL_ID

  trials show TRIAL_ID   print a trial as stored

`trialctl --help` lists the options that choose the table.";

#[derive(Debug)]
enum Command {
    KeysCreate {
        org: OrgId,
        projects: Vec<ProjectId>,
    },
    KeysList {
        org: OrgId,
    },
    KeysRevoke {
        key_id: String,
    },
    TrialsShow {
        id: String,
    },
}

#[derive(Debug, Default)]
struct Target {
    table: Option<String>,
    data: Option<PathBuf>,
    endpoint: Option<String>,
}

enum Parsed {
    Help(&'static str),
    Run(Target, Command),
}

/// A wrong command line: the message and the usage that helps.
struct UsageError(String, &'static str);

fn parse(args: Vec<String>) -> Result<Parsed, UsageError> {
    let mut target = Target::default();
    let mut words = Vec::new();
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut help = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| UsageError(format!("{name} needs a value"), USAGE))
        };
        match arg.as_str() {
            "-h" | "--help" => help = true,
            "--table" => target.table = Some(value("--table")?),
            "--data" => target.data = Some(value("--data")?.into()),
            "--endpoint" => target.endpoint = Some(value("--endpoint")?),
            "--org" | "--project" => {
                let v = value(&arg)?;
                opts.push((arg, v));
            }
            other if other.starts_with('-') => {
                return Err(UsageError(format!("unknown option {other:?}"), USAGE))
            }
            _ => words.push(arg),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let usage = match words.as_slice() {
        [] => USAGE,
        ["keys"] => KEYS_USAGE,
        ["keys", "create", ..] => CREATE_USAGE,
        ["keys", "list", ..] => LIST_USAGE,
        ["keys", "revoke", ..] => REVOKE_USAGE,
        ["keys", ..] => KEYS_USAGE,
        ["trials", "show", ..] => SHOW_USAGE,
        ["trials", ..] => TRIALS_USAGE,
        _ => USAGE,
    };
    if help {
        return Ok(Parsed::Help(usage));
    }
    let fail = |msg: String| Err(UsageError(msg, usage));
    if target.data.is_some() && target.endpoint.is_some() {
        return fail("--data and --endpoint are exclusive".into());
    }
    let org = |opts: &[(String, String)]| -> Result<OrgId, UsageError> {
        let orgs: Vec<&str> = opts
            .iter()
            .filter(|(k, _)| k == "--org")
            .map(|(_, v)| v.as_str())
            .collect();
        match orgs.as_slice() {
            [one] => OrgId::parse(one).ok_or_else(|| {
                UsageError(
                    format!("invalid org id {one:?}: 1-128 letters, digits, '_', '-', '.', ':'"),
                    usage,
                )
            }),
            [] => Err(UsageError("--org is required".into(), usage)),
            _ => Err(UsageError("--org given more than once".into(), usage)),
        }
    };
    let only = |allowed: &[&str]| -> Result<(), UsageError> {
        match opts.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(UsageError(format!("{k} does not apply here"), usage)),
            None => Ok(()),
        }
    };
    let command = match words.as_slice() {
        ["keys", "create"] => {
            only(&["--org", "--project"])?;
            let projects = opts
                .iter()
                .filter(|(k, _)| k == "--project")
                .map(|(_, v)| {
                    ProjectId::parse(v)
                        .ok_or_else(|| UsageError(format!("invalid project id {v:?}"), usage))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Command::KeysCreate {
                org: org(&opts)?,
                projects,
            }
        }
        ["keys", "list"] => {
            only(&["--org"])?;
            Command::KeysList { org: org(&opts)? }
        }
        ["keys", "revoke", key_id] => {
            only(&[])?;
            // The whole key works too (only its id is used).
            let key_id = ApiKey::parse(key_id)
                .map(|k| k.key_id().to_owned())
                .unwrap_or_else(|| key_id.to_string());
            if !keys::is_key_id(&key_id) {
                return fail(format!(
                    "{key_id:?} is not a key id (16 lowercase hex digits, as `keys list` shows)"
                ));
            }
            Command::KeysRevoke { key_id }
        }
        ["trials", "show", id] => {
            only(&[])?;
            Command::TrialsShow { id: id.to_string() }
        }
        [] => return fail("no command given".into()),
        ["keys", "revoke"] => return fail("which key? KEY_ID is required".into()),
        ["trials", "show"] => return fail("which trial? TRIAL_ID is required".into()),
        ["keys", "create" | "list" | "revoke", ..] | ["trials", "show", ..] => {
            return fail(format!("unexpected arguments: {}", words[2..].join(" ")))
        }
        other => return fail(format!("unknown command {:?}", other.join(" "))),
    };
    Ok(Parsed::Run(target, command))
}

#[tokio::main]
async fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok(Parsed::Help(usage)) => {
            println!("{usage}");
            ExitCode::SUCCESS
        }
        Err(UsageError(msg, usage)) => {
            eprintln!("trialctl: {msg}\n\n{usage}");
            ExitCode::from(2)
        }
        Ok(Parsed::Run(target, command)) => match run(target, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trialctl: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The table `target` names, and where it is (for error messages). `create` allows a new
/// local data directory (`keys create` before `trials-local` ever ran); anything else on a
/// directory holding no store is a mistyped path, not an empty store.
async fn open(target: &Target, create: bool) -> Result<(Store, String), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let shards = 4;
    if let Some(dir) = &target.data {
        if !create && !dir.join(trials_local::embedded::DB_FILE).is_file() {
            return Err(format!(
                "no Trials data in {} ({} not found): check the path, or run trials-local \
                 --data {0} first",
                dir.display(),
                trials_local::embedded::DB_FILE
            ));
        }
        let endpoint = trials_local::embedded::start_dynoxide(Some(dir)).await?;
        let table = target.table.clone().unwrap_or_else(|| DEFAULT_TABLE.into());
        let place = format!("table {table} in {}", dir.display());
        let store = Store::new(trials::aws::local_dynamodb(&endpoint), table, shards);
        // As trials-local does on start: the local table exists from the first command on.
        store
            .ensure_table()
            .await
            .map_err(|e| format!("{e} ({place})"))?;
        return Ok((store, place));
    }
    if let Some(endpoint) = &target.endpoint {
        let table = target.table.clone().unwrap_or_else(|| DEFAULT_TABLE.into());
        let place = format!("table {table} at {endpoint}");
        let store = Store::new(trials::aws::local_dynamodb(endpoint), table, shards);
        return Ok((store, place));
    }
    // No default table here: the deployed table's name is CloudFormation's, and guessing
    // would send an operator's revocation to the wrong table.
    let table =
        target.table.clone().or_else(|| env("TABLE_NAME")).ok_or(
            "no table: set TABLE_NAME or pass --table (or --data DIR for the local store)",
        )?;
    let endpoint = env("DYNAMODB_ENDPOINT");
    let place = match &endpoint {
        Some(url) => format!("table {table} at {url}"),
        None => format!("table {table} in AWS"),
    };
    let dynamo = trials::aws::from_environment(endpoint.as_deref()).await;
    Ok((Store::new(dynamo, table, shards), place))
}

async fn run(target: Target, command: Command) -> Result<(), String> {
    let create = matches!(command, Command::KeysCreate { .. });
    let (store, place) = open(&target, create).await?;
    let now = SystemClock.now();
    let failed = |e: trials::store::StoreError| format!("DynamoDB: {e} ({place})");
    match command {
        Command::KeysCreate { org, projects } => {
            let (key, info) = issue::create(&store, org, Projects::from_list(projects), now)
                .await
                .map_err(failed)?;
            eprintln!(
                "Created API key {} for org {}, projects: {}.\n\
                 It is shown once, below; the table keeps only its SHA-256.\n\
                 Send it as: Authorization: Bearer <key>",
                info.key_id, info.org, info.projects
            );
            println!("{}", key.expose());
        }
        Command::KeysList { org } => {
            let keys = store.list_api_keys(&org).await.map_err(failed)?;
            println!(
                "{:<16}  {:<7}  {:<20}  PROJECTS",
                "KEY_ID", "STATUS", "CREATED"
            );
            for k in &keys {
                let status = if k.revoked() { "revoked" } else { "active" };
                println!(
                    "{:<16}  {:<7}  {:<20}  {}",
                    k.key_id,
                    status,
                    rfc3339(k.created_at),
                    k.projects
                );
            }
            if keys.is_empty() {
                eprintln!("org {org} has no API keys");
            }
        }
        Command::KeysRevoke { key_id } => {
            let info = store
                .revoke_api_key(&key_id, now)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("no API key {key_id} ({place})"))?;
            let at = info.revoked_at.unwrap_or(now);
            let cache = Config::from_env()
                .map(|c| c.api_key_cache_secs)
                .unwrap_or(trials::auth::cache::DEFAULT_TTL_SECS);
            println!(
                "revoked API key {key_id} of org {} at {}; running functions may accept it \
                 for up to {cache}s more (API_KEY_CACHE_TTL)",
                info.org,
                rfc3339(at)
            );
        }
        Command::TrialsShow { id } => {
            let trial = match TrialId::parse(&id) {
                Some(id) => store.get_trial(&id).await.map_err(failed)?,
                None => None,
            }
            .ok_or_else(|| format!("no trial {id} ({place})"))?;
            let policy = Config::from_env()?.policy;
            let mut shown = trial.view_at(now, policy);
            shown["stored_status"] = trial.status.as_str().into();
            if let Some(c) = &trial.checkout {
                shown["checkout"] = serde_json::json!({
                    "session_id": c.session_id,
                    "url": c.url,
                    "expires_at": rfc3339(c.expires_at),
                });
            }
            if let Some(p) = &trial.payment {
                shown["payment"] = serde_json::json!({
                    "session_id": p.session_id,
                    "customer_id": p.customer_id,
                    "subscription_id": p.subscription_id,
                });
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())?
            );
        }
    }
    Ok(())
}
