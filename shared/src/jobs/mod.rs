//! The scheduled jobs (issue 6 fills these in).
use serde::Serialize;

use crate::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Expire,
    Purge,
}

/// What a run did, returned to the scheduler and logged.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunReport {
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub complete: bool,
}

pub async fn run(_app: &App, _job: Job, _deadline_ms: Option<i64>) -> RunReport {
    RunReport::default()
}
