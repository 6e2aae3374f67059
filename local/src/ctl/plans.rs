//! `trialctl plans ...`: the plan catalog, without the table.
use std::path::PathBuf;

use clap::Subcommand;
use trials::domain::catalog::{Catalog, END_EXPIRE};
use trials::domain::time::format_duration_secs;

#[derive(Subcommand, Debug)]
pub enum PlansCommand {
    /// Validates a plan catalog file as the functions do at init
    #[command(
        long_about = "Validates a plan catalog file (PLANS_FILE) with the same checks the \
functions run at init. Prints one line per plan when it is valid; otherwise the one line \
naming the plan and the field, and exits 1."
    )]
    Check {
        /// The catalog (JSON, the format of shared/plans.json)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub fn run(cmd: PlansCommand) -> Result<(), String> {
    match cmd {
        PlansCommand::Check { file } => check(&file),
    }
}

fn check(file: &std::path::Path) -> Result<(), String> {
    let source = file.display().to_string();
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("{source}: cannot be read: {e}"))?;
    let catalog = Catalog::from_json_named(&source, &text).map_err(|e| e.to_string())?;
    for plan in catalog.plans() {
        let limits = plan.options.iter().filter(|o| o.is_limit).count();
        // How its trials end: `expire`, or `downgrade to <free plan>` (a reverse trial).
        let end = match &plan.downgrade_to {
            Some(to) => format!("downgrade to {}", to.plan),
            None => END_EXPIRE.to_owned(),
        };
        println!(
            "{}\t{}\ttrial {}\tgrace {}\t{}\t{} option(s), {} limit(s)\t{}\t{end}",
            plan.id,
            plan.name,
            format_duration_secs(plan.trial_length_secs),
            format_duration_secs(plan.grace_secs),
            if plan.trialable {
                "trialable"
            } else {
                "not trialable"
            },
            plan.options.len(),
            limits,
            plan.stripe_price.as_deref().unwrap_or("no price"),
        );
    }
    println!("{source}: ok, {} plan(s)", catalog.plans().len());
    Ok(())
}
