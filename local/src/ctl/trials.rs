//! `trialctl trials ...`: trials as stored.
use clap::Subcommand;
use serde_json::json;
use trials::clock::{Clock, SystemClock};
use trials::domain::applicant::Privilege;
use trials::domain::events::DomainEvent;
use trials::domain::time::rfc3339;
use trials::domain::{ExtendRequest, OrgId, TrialId};
use trials::store::Slot;

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
    /// Extends a trial (ACTIVE, or EXPIRED within grace)
    #[command(
        long_about = "Extends a trial by --days N or to --until <RFC 3339>, as POST \
/v1/trials/{id}/extend does: from ACTIVE the current range grows; from EXPIRED within grace the \
trial is ACTIVE again. Writes the trial.extended event (requested_by: trialctl) and re-arms \
the reminders; prints the trial as the API shows it."
    )]
    Extend {
        /// The trial's id (trial_...)
        #[arg(value_name = "TRIAL_ID")]
        id: String,
        /// Days to add (1-365): after the current end, or after now for an expired trial
        #[arg(
            long,
            value_name = "N",
            conflicts_with = "until",
            required_unless_present = "until"
        )]
        days: Option<i64>,
        /// The new end, RFC 3339 (e.g. 2026-05-01T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Why (recorded in the trial.extended event)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
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
        TrialsCommand::Extend {
            id,
            days,
            until,
            reason,
        } => extend(ctx, &id, days, until, reason).await,
        TrialsCommand::Allow { org } => super::eligibility::allow(ctx, &org).await,
        TrialsCommand::Why { org } => super::eligibility::why(ctx, &org).await,
    }
}

/// Who asked, in `trial.extended`, when an operator extends from the command line.
const REQUESTED_BY: &str = "trialctl";

/// The API's extension (same checks, same conditional transaction: the trial as read, its
/// event, its reminder cursor), without an API key or an idempotency record: a repeated
/// command asks for a further extension.
async fn extend(
    ctx: &Ctx,
    id: &str,
    days: Option<i64>,
    until: Option<String>,
    reason: Option<String>,
) -> Result<(), String> {
    let mut body = serde_json::Map::new();
    if let Some(days) = days {
        body.insert("days".into(), days.into());
    }
    if let Some(until) = until {
        body.insert("until".into(), until.into());
    }
    if let Some(reason) = reason {
        body.insert("reason".into(), reason.into());
    }
    let request = ExtendRequest::parse(&body).map_err(|e| e.message().to_owned())?;
    let t = ctx.open(Open::Existing).await?;
    let trial = match TrialId::parse(id) {
        Some(id) => t.store.get_trial(&id).await.map_err(|e| t.failed(e))?,
        None => None,
    }
    .ok_or_else(|| format!("no trial {id} ({})", t.place))?;
    let config = ctx.config()?;
    let (now, policy) = (SystemClock.now(), trial.policy());
    let terms = config.lifecycle_terms(&trial);
    let base = trial.clone().settled_at(now, policy, &terms);
    let after = base
        .extend(request.extension, now, policy, &terms)
        .map_err(|e| format!("{}: {}", e.code().as_str(), e.message()))?;
    let event = DomainEvent::extended(
        &base,
        &after,
        now,
        request.reason.as_deref(),
        REQUESTED_BY,
        json!({}),
    );
    let store = &t.store;
    let build = || -> Result<_, ::trials::store::StoreError> {
        let mut tx = store
            .tx()
            .update(Slot::Trial, store.lifecycle_update(&trial, &after, &terms)?)
            .event(&event, now)?;
        if base != trial {
            tx = tx.event(&DomainEvent::resumed(&trial, &base, true, json!({})), now)?;
        }
        Ok(tx.reminder(store.reminder_rearm(&after, now, &terms, policy)?))
    };
    let outcome = build()
        .map_err(|e| t.failed(e))?
        .commit()
        .await
        .map_err(|e| t.failed(e))?;
    if !outcome.committed() {
        return Err(format!(
            "trial {id} changed while extending it: run the command again ({})",
            t.place
        ));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&after.view_at(now, policy, Privilege::Admin))
            .map_err(|e| e.to_string())?
    );
    Ok(())
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
    let mut shown = trial.view_at(now, trial.policy(), Privilege::Admin);
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
