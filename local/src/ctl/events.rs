//! `trialctl events replay --since <time>`: republishes the domain events written since a time,
//! from the table (event items stay for 7 days; the stream keeps records 24 hours). For an
//! EventBridge outage longer than the stream's retention, or a consumer that lost events.
//! Consumers dedupe on `event_id`, so replaying a window that was already delivered is safe.
use clap::Subcommand;
use trials::clock::{Clock, SystemClock};
use trials::domain::time::{parse_duration_secs, parse_rfc3339, rfc3339};
use trials::publish::Publisher;

use super::{Ctx, Open};

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Republishes the events written since a time
    #[command(
        long_about = "Republishes, oldest first, every domain event written to the \
table since TIME: to EventBridge's EVENT_BUS_NAME (region and credentials from the \
environment), or to stdout when EVENT_BUS_NAME is not set. Reads the whole table (a \
parallel scan): run it for recovery, not routinely."
    )]
    Replay {
        /// An RFC 3339 time (2026-11-20T08:00:00Z) or a duration back from now (6h, 2d)
        #[arg(long, value_name = "TIME", value_parser = since)]
        since: Since,
        /// List what would be published, publish nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum Since {
    At(i64),
    Ago(i64),
}

fn since(raw: &str) -> Result<Since, String> {
    if let Some(at) = parse_rfc3339(raw) {
        return Ok(Since::At(at));
    }
    parse_duration_secs(raw)
        .map(Since::Ago)
        .map_err(|_| format!("expected an RFC 3339 time or a duration such as 6h, got {raw:?}"))
}

pub async fn run(ctx: &Ctx, cmd: EventsCommand) -> Result<(), String> {
    match cmd {
        EventsCommand::Replay { since, dry_run } => replay(ctx, since, dry_run).await,
    }
}

async fn replay(ctx: &Ctx, since: Since, dry_run: bool) -> Result<(), String> {
    let t = ctx.open(Open::Existing).await?;
    let from = match since {
        Since::At(at) => at,
        Since::Ago(secs) => SystemClock.now() - secs,
    };
    let events = t.store.events_since(from).await.map_err(|e| t.failed(e))?;
    eprintln!(
        "{} events written since {} ({})",
        events.len(),
        rfc3339(from),
        t.place
    );
    if dry_run || events.is_empty() {
        for e in &events {
            println!("{}\t{}", e.kind.detail_type(), e.id);
        }
        return Ok(());
    }
    let bus = std::env::var("EVENT_BUS_NAME")
        .ok()
        .filter(|b| !b.is_empty());
    let publisher = match &bus {
        Some(bus) => Publisher::EventBridge {
            client: trials::aws::eventbridge_from_environment().await,
            bus: bus.clone(),
        },
        None => {
            for e in &events {
                println!("{}", e.detail);
            }
            return Ok(());
        }
    };
    let published = publisher.publish(&events).await;
    eprintln!(
        "published {} of {} to {}",
        published.len(),
        events.len(),
        bus.unwrap_or_default()
    );
    if published.len() < events.len() {
        return Err(format!(
            "{} events were not accepted by EventBridge: run the replay again",
            events.len() - published.len()
        ));
    }
    Ok(())
}
