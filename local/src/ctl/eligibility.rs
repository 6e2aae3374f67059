//! `trialctl trials allow` and `trialctl trials why`: the operator's side of the abuse-signal
//! check (issue 15). `allow` lets one org's next start through once, whatever its signals;
//! `why` says whether the org may start, and why not.
use trials::clock::{Clock, SystemClock};
use trials::domain::catalog::ProductKey;
use trials::domain::time::rfc3339;
use trials::domain::OrgId;

use super::{Ctx, Open};

pub async fn allow(ctx: &Ctx, org: &OrgId) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    t.store
        .put_allowance(org, SystemClock.now())
        .await
        .map_err(|e| t.failed(e))?;
    println!(
        "org {org} may start one trial whatever its abuse signals (the allowance is used up by \
         its next start; a trial it already had still counts)"
    );
    Ok(())
}

pub async fn why(ctx: &Ctx, org: &OrgId) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    // The catalog's default product's standing (the one every org had before products).
    let standing = t
        .store
        .org_standing(org, &ProductKey::Default)
        .await
        .map_err(|e| t.failed(e))?;
    match &standing.guard {
        Some(guard) => {
            let trial = guard
                .trial_id
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string);
            let purged = if guard.purged { " (purged)" } else { "" };
            println!("org {org}: not eligible: trial_already_used (trial {trial}{purged})");
        }
        None => match (&standing.refusal, standing.allowed) {
            (_, true) => println!("org {org}: eligible: an operator allowance is waiting"),
            (Some(r), false) => println!(
                "org {org}: refused at {}: {} (signal kind: {}); `trialctl trials allow --org {org}` lets it through once",
                rfc3339(r.at),
                r.reason,
                r.signal_kind.map_or("-", |k| k.as_str()),
            ),
            (None, false) => println!("org {org}: eligible: no trial, no refusal"),
        },
    }
    if let (Some(r), Some(_)) = (&standing.refusal, &standing.guard) {
        println!(
            "  an earlier start was refused at {}: {}",
            rfc3339(r.at),
            r.reason
        );
    }
    Ok(())
}
