//! `trialctl trials ...`: trials as stored.
use clap::Subcommand;
use trials::clock::{Clock, SystemClock};
use trials::domain::time::rfc3339;
use trials::domain::{OrgId, TrialId};

use super::{Ctx, Open};

#[derive(Subcommand, Debug)]
pub enum TrialsCommand {
    /// Prints a trial as stored
    #[command(
        long_about = "Prints the trial as stored, and its status as the API reports it \
now, as JSON."
    )]
    Show {
        /// The trial's id (trial_...)
        #[arg(value_name = "TRIAL_ID")]
        id: String,
    },
    /// Lets an org refused for a reused abuse signal start once
    #[command(
        long_about = "Writes a one-off allowance for ORG: its next start passes the abuse-signal check (its signals are recorded as usual) and uses the allowance up. It does not give an org a second trial."
    )]
    Allow {
        /// The org to let through
        #[arg(long, value_name = "ORG", value_parser = org_id)]
        org: OrgId,
    },
    /// Says whether an org may start a trial, and why not
    #[command(
        long_about = "Prints whether ORG may start a trial: trial_already_used (with its trial), its last refusal (when, why, which signal kind), or eligible."
    )]
    Why {
        /// The org to explain
        #[arg(long, value_name = "ORG", value_parser = org_id)]
        org: OrgId,
    },
}

fn org_id(s: &str) -> Result<OrgId, String> {
    OrgId::parse(s)
        .ok_or_else(|| "not an org id: 1-128 letters, digits, '_', '-', '.', ':'".to_owned())
}

pub async fn run(ctx: &Ctx, cmd: TrialsCommand) -> Result<(), String> {
    match cmd {
        TrialsCommand::Show { id } => show(ctx, &id).await,
        TrialsCommand::Allow { org } => super::eligibility::allow(ctx, &org).await,
        TrialsCommand::Why { org } => super::eligibility::why(ctx, &org).await,
    }
}

async fn show(ctx: &Ctx, id: &str) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    let now = SystemClock.now();
    // Any text is looked up: an id we could never have issued is simply not found.
    let trial = match TrialId::parse(id) {
        Some(id) => t.store.get_trial(&id).await.map_err(|e| t.failed(e))?,
        None => None,
    }
    .ok_or_else(|| format!("no trial {id} ({})", t.place))?;
    let mut shown = trial.view_at(now, trial.policy());
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
    Ok(())
}
