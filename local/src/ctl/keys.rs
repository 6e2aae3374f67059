//! `trialctl keys ...`: create, list and revoke API keys.
use clap::Subcommand;
use trials::auth::issue;
use trials::clock::{Clock, SystemClock};
use trials::domain::api_key::{self as keys, ApiKey, Projects};
use trials::domain::time::rfc3339;
use trials::domain::{OrgId, ProjectId};

use super::{Ctx, Open};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Creates an API key; prints it once
    #[command(
        long_about = "Creates an API key for ORG, for the projects named (repeat --project), \
or for all of the org's projects when none is. The key is printed once, alone on stdout (so \
KEY=$(trialctl keys create ...) captures it), with its details on stderr. The table keeps only \
its SHA-256: a lost key cannot be shown again; revoke it and make another."
    )]
    Create {
        /// The org the key acts for
        #[arg(long, value_name = "ORG", value_parser = org_id)]
        org: OrgId,
        /// A project the key may act on (repeat for several; none: all of the org's projects)
        #[arg(long = "project", value_name = "P", value_parser = project_id)]
        projects: Vec<ProjectId>,
        /// An admin key: may set a trial's expires_at and notes at start and PATCH them later
        #[arg(long)]
        admin: bool,
    },
    /// Lists an org's keys (never a secret)
    #[command(
        long_about = "Lists ORG's API keys, oldest first: key id, status, creation time, \
projects. Never a key's secret or hash."
    )]
    List {
        /// The org whose keys to list
        #[arg(long, value_name = "ORG", value_parser = org_id)]
        org: OrgId,
    },
    /// Revokes a key
    #[command(
        long_about = "Revokes the key KEY_ID (the 16 hex digits after trk_, as `keys list` \
shows them; the whole key works too) for good. Functions already running trust a key they \
verified for up to API_KEY_CACHE_TTL (60s by default): the revocation is complete after that."
    )]
    Revoke {
        /// The key's id (or the whole key)
        #[arg(value_name = "KEY_ID", value_parser = key_id)]
        key_id: String,
    },
}

fn org_id(s: &str) -> Result<OrgId, String> {
    OrgId::parse(s)
        .ok_or_else(|| "not an org id: 1-128 letters, digits, '_', '-', '.', ':'".to_owned())
}

fn project_id(s: &str) -> Result<ProjectId, String> {
    ProjectId::parse(s)
        .ok_or_else(|| "not a project id: 1-128 letters, digits, '_', '-', '.', ':'".to_owned())
}

/// A key id, or a whole key (only its id is used).
fn key_id(s: &str) -> Result<String, String> {
    let id = ApiKey::parse(s)
        .map(|k| k.key_id().to_owned())
        .unwrap_or_else(|| s.to_owned());
    if keys::is_key_id(&id) {
        Ok(id)
    } else {
        Err("not a key id (16 lowercase hex digits, as `keys list` shows)".to_owned())
    }
}

pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> Result<(), String> {
    let now = SystemClock.now();
    match cmd {
        KeysCommand::Create {
            org,
            projects,
            admin,
        } => {
            let t = ctx.open(Open::CreateLocal).await?;
            let (key, info) =
                issue::create_with_scope(&t.store, org, Projects::from_list(projects), admin, now)
                    .await
                    .map_err(|e| t.failed(e))?;
            eprintln!(
                "Created {}API key {} for org {}, projects: {}.\n\
                 It is shown once, below; the table keeps only its SHA-256.\n\
                 Send it as: Authorization: Bearer <key>",
                if info.admin { "admin " } else { "" },
                info.key_id,
                info.org,
                info.projects
            );
            println!("{}", key.expose());
        }
        KeysCommand::List { org } => {
            let t = ctx.open(Open::Existing).await?;
            let keys = t.store.list_api_keys(&org).await.map_err(|e| t.failed(e))?;
            println!(
                "{:<16}  {:<7}  {:<20}  {:<8}  PROJECTS",
                "KEY_ID", "STATUS", "CREATED", "SCOPE"
            );
            for k in &keys {
                let status = if k.revoked() { "revoked" } else { "active" };
                let scope = if k.admin { "admin" } else { "standard" };
                println!(
                    "{:<16}  {:<7}  {:<20}  {:<8}  {}",
                    k.key_id,
                    status,
                    rfc3339(k.created_at),
                    scope,
                    k.projects
                );
            }
            if keys.is_empty() {
                eprintln!("org {org} has no API keys");
            }
        }
        KeysCommand::Revoke { key_id } => {
            let t = ctx.open(Open::Existing).await?;
            let info = t
                .store
                .revoke_api_key(&key_id, now)
                .await
                .map_err(|e| t.failed(e))?
                .ok_or_else(|| format!("no API key {key_id} ({})", t.place))?;
            let at = info.revoked_at.unwrap_or(now);
            let cache = ctx.config()?.api_key_cache_secs;
            println!(
                "revoked API key {key_id} of org {} at {}; running functions may accept it \
                 for up to {cache}s more (API_KEY_CACHE_TTL)",
                info.org,
                rfc3339(at)
            );
        }
    }
    Ok(())
}
