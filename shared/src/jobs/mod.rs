//! The scheduled jobs: `expire` (every 5 minutes; it also resumes pauses past their maximum and
//! sends the reminders due, from the RESUME and REMIND queues) and `purge` (hourly). The expire
//! function also runs `expire-sessions` ([`session_expiry`]: Checkout Sessions of canceled
//! trials, to expire at Stripe) after `expire`, in the same invocation.
//!
//! They find their work in the sparse GSI `due` (see [`crate::store::schema`]): each queue is
//! sharded (`EXPIRE#0..N-1`, `PURGE#..`, `SESSION_EXPIRE#..`) and a run queries every shard with
//! `due_pk = :queue_shard AND due_at <= :now`, page by page. Never a Scan: the items a run reads
//! grow with the work that is due, not with the trials stored.
//!
//! Every write is conditional, so a run may overlap with itself, with the API and with the
//! webhook: an item whose state moved on is counted `skipped`. A run stops a safety margin
//! before the invocation deadline and leaves the rest to the next run (`complete: false`).
pub mod expire;
pub mod purge;
pub mod remind;
pub mod resume;
pub mod session_expiry;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::codec::{n, s, Item};
use crate::store::schema::{DueQueue, DUE_INDEX};
use crate::store::StoreError;
use crate::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Expire,
    Purge,
    /// Checkout Sessions left open by canceled trials, expired at Stripe (retries).
    ExpireSessions,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Expire => "expire",
            Job::Purge => "purge",
            Job::ExpireSessions => "expire-sessions",
        }
    }

    /// The jobs one scheduled function runs, in order, within one invocation: the expire
    /// function also retries the expiry of canceled trials' Checkout Sessions (it has the
    /// Stripe key for it).
    pub fn function_jobs(self) -> &'static [Job] {
        match self {
            Job::Expire | Job::ExpireSessions => &[Job::Expire, Job::ExpireSessions],
            Job::Purge => &[Job::Purge],
        }
    }
}

/// What a run did, returned to the scheduler and logged.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunReport {
    /// Trials moved on (expired, or purged).
    pub processed: u64,
    /// Paused trials the expire job resumed at their pause maximum.
    pub resumed: u64,
    /// Reminder events (`trial.ending_soon`, `trial.grace_ending`) the expire job wrote.
    pub reminded: u64,
    /// Due items whose state had moved on (converted, canceled, done by another run).
    pub skipped: u64,
    /// Items left for the next run after a store error.
    pub failed: u64,
    /// Every shard was read to its end; `false` when the run stopped at its deadline or on a
    /// read error, and the next run picks up the rest.
    pub complete: bool,
    /// Items the run's queries read (sum of `ScannedCount`): the due work, plus nothing.
    pub items_read: u64,
    /// `Query` requests sent (one per shard and page).
    pub queries: u64,
}

impl RunReport {
    /// A report of no work, complete: the start of a sum.
    pub fn nothing_yet() -> RunReport {
        RunReport {
            complete: true,
            ..RunReport::default()
        }
    }

    /// Adds `other`'s counts (complete only if both are).
    pub fn add(&mut self, other: &RunReport) {
        self.processed += other.processed;
        self.resumed += other.resumed;
        self.reminded += other.reminded;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.complete &= other.complete;
        self.items_read += other.items_read;
        self.queries += other.queries;
    }

    /// Whether the run found anything to do (or could not finish): what is worth an INFO line.
    pub fn did_something(&self) -> bool {
        self.processed + self.resumed + self.reminded + self.skipped + self.failed > 0
            || !self.complete
    }
}

/// Items per `Query` page.
pub const PAGE_SIZE: i32 = 100;
/// Stop this long before the invocation deadline: the last page's writes must finish inside
/// the Lambda's time.
pub const SAFETY_MARGIN_MS: i64 = 2_000;
/// Items written at once.
pub(crate) const CONCURRENCY: usize = 10;

/// Runs `job` once. `deadline_ms`: the invocation's deadline (epoch ms, as `app.clock`);
/// `None` runs until the due work is done.
pub async fn run(app: &App, job: Job, deadline_ms: Option<i64>) -> RunReport {
    let started = Instant::now();
    let mut run = Run::new(app, deadline_ms);
    match job {
        // Pauses past their maximum resume first, then what has ended expires, then the
        // reminders due go out (each its own queue: never a scan).
        Job::Expire => {
            run.sweep(DueQueue::Resume).await;
            run.sweep(DueQueue::Expire).await;
            run.sweep(DueQueue::Remind).await;
        }
        Job::Purge => run.sweep(DueQueue::Purge).await,
        Job::ExpireSessions => run.sweep(DueQueue::SessionExpire).await,
    }
    let lag = run.oldest_left.map(|at| (run.now - at).max(0) as u64);
    let r = run.report;
    crate::metrics::job_run(
        job.name(),
        r.processed,
        r.skipped,
        r.failed,
        r.complete,
        lag,
    );
    // A run that found nothing to do is logged at DEBUG: the local run has one every 10 s.
    macro_rules! log_run {
        ($level:expr) => {
            tracing::event!(
                $level,
                job = job.name(),
                processed = r.processed,
                resumed = r.resumed,
                reminded = r.reminded,
                skipped = r.skipped,
                failed = r.failed,
                complete = r.complete,
                items_read = r.items_read,
                queries = r.queries,
                duration_ms = started.elapsed().as_millis() as u64,
                "job run"
            )
        };
    }
    if r.did_something() {
        log_run!(tracing::Level::INFO);
    } else {
        log_run!(tracing::Level::DEBUG);
    }
    r
}

/// What became of one due item, as a run's report counts it.
pub(crate) enum Settled {
    /// The job's work was done (counted as the job's success: processed, resumed, reminded).
    Done,
    /// Nothing to do: the state had moved on (a condition failed, or another run got there).
    Skipped,
    /// Left due for the next run without an error of ours (a Stripe call to try again).
    Left,
    /// Left due for the next run after a store error.
    Failed(StoreError),
}

impl Settled {
    /// The one reading of a job's commit: written is done, a failed condition means the state
    /// moved on (skipped), anything else is a store error left for the next run.
    pub fn of_commit(written: Result<crate::store::Outcome, StoreError>) -> Settled {
        match written {
            Ok(crate::store::Outcome::Committed) => Settled::Done,
            Ok(crate::store::Outcome::Rejected(_)) => Settled::Skipped,
            Err(e) => Settled::Failed(e),
        }
    }

    /// Runs `effect` (a metric) if the item's work was done, and passes the outcome on.
    pub fn on_done(self, effect: impl FnOnce()) -> Settled {
        if let Settled::Done = self {
            effect();
        }
        self
    }
}

/// How a job reads its queue's items and counts them: the one description each job gives
/// [`Run::work`].
pub(crate) struct Queue<T> {
    /// Decodes one item of the queue.
    pub decode: fn(&Item) -> Result<T, StoreError>,
    /// The log message for an item that does not decode.
    pub undecodable: &'static str,
    /// The report's counter of the job's successes.
    pub done: fn(&mut RunReport) -> &mut u64,
    /// The log message for a store error on one item.
    pub failed: &'static str,
}

/// One run: its fixed `now`, its deadline and its counts.
pub(crate) struct Run<'a> {
    pub app: &'a App,
    /// The run's instant (epoch seconds): what is due is due as of the run's start.
    pub now: i64,
    deadline_ms: Option<i64>,
    stopped: bool,
    pub report: RunReport,
    /// The earliest `due_at` of the items this run read and left due (failed, or held back):
    /// the job's lag, as a metric.
    oldest_left: Option<i64>,
}

impl<'a> Run<'a> {
    fn new(app: &'a App, deadline_ms: Option<i64>) -> Run<'a> {
        Run {
            app,
            now: app.now(),
            deadline_ms,
            stopped: false,
            oldest_left: None,
            report: RunReport {
                complete: true,
                ..RunReport::default()
            },
        }
    }

    /// Notes that an item due at `item`'s `due_at` stays due after this run.
    pub fn left_due(&mut self, item: &Item) {
        if let Some(at) = crate::store::codec::get_n(item, crate::store::schema::DUE_AT) {
            self.oldest_left = Some(self.oldest_left.map_or(at, |o| o.min(at)));
        }
    }

    /// One due item, decoded: `Some` when `due` holds for it (the index may lag the table, so
    /// what it returned is checked again; the write's condition checks the item itself).
    /// Otherwise the item is counted skipped and left due, or failed when it does not decode
    /// (logged as `undecodable`).
    fn triage<T>(
        &mut self,
        item: &Item,
        decoded: Result<T, StoreError>,
        due: impl FnOnce(&T) -> bool,
        undecodable: &str,
    ) -> Option<T> {
        match decoded {
            Ok(value) if due(&value) => Some(value),
            Ok(_) => {
                self.report.skipped += 1;
                self.left_due(item);
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "{undecodable}");
                self.report.failed += 1;
                None
            }
        }
    }

    /// Counts one chunk's outcomes: a success in the report's `done` counter, a store error
    /// logged as `failed` (a task that panicked is a failure too).
    fn settle(
        &mut self,
        outcomes: Vec<Option<Settled>>,
        done: fn(&mut RunReport) -> &mut u64,
        failed: &str,
    ) {
        for outcome in outcomes {
            match outcome {
                Some(Settled::Done) => *done(&mut self.report) += 1,
                Some(Settled::Skipped) => self.report.skipped += 1,
                Some(Settled::Left) | None => self.report.failed += 1,
                Some(Settled::Failed(e)) => {
                    tracing::warn!(error = %e, "{failed}");
                    self.report.failed += 1;
                }
            }
        }
    }

    /// One page of a queue: in chunks of [`CONCURRENCY`] until the deadline, each item decoded
    /// and re-checked by `due` ([`Run::triage`]), its work started by `start` (given the run,
    /// for its clock and budgets), the chunk's outcomes counted ([`Run::settle`]).
    pub async fn work<T, Fut>(
        &mut self,
        items: Vec<Item>,
        queue: &Queue<T>,
        due: impl Fn(&App, &T) -> bool,
        start: impl Fn(&Run<'a>, T) -> Fut,
    ) where
        Fut: Future<Output = Settled> + Send + 'static,
    {
        let app = self.app;
        for chunk in items.chunks(CONCURRENCY) {
            if self.out_of_time() {
                break;
            }
            let mut work = Vec::with_capacity(chunk.len());
            for item in chunk {
                let decoded = (queue.decode)(item);
                if let Some(value) = self.triage(item, decoded, |v| due(app, v), queue.undecodable)
                {
                    work.push(start(self, value));
                }
            }
            let outcomes = join_all(work).await;
            self.settle(outcomes, queue.done, queue.failed);
        }
    }

    /// True once the run must stop (and from then on): the deadline minus the margin has come.
    pub fn out_of_time(&mut self) -> bool {
        if !self.stopped {
            let now_ms = self.app.clock.now_millis();
            if self
                .deadline_ms
                .is_some_and(|d| now_ms >= d - SAFETY_MARGIN_MS)
            {
                self.stopped = true;
                self.report.complete = false;
            }
        }
        self.stopped
    }

    /// How long a Stripe call may take now: the configured timeout, cut short so that its
    /// outcome can still be written before the run's deadline.
    pub fn stripe_budget(&self) -> Duration {
        let margin = self.deadline_ms.map(|d| d - SAFETY_MARGIN_MS / 2);
        crate::services::checkout_sessions::stripe_budget(
            self.app.stripe.timeout(),
            margin,
            self.app.clock.now_millis(),
        )
    }

    /// Reads every shard of `queue` up to `now`, page by page, handing each page to the job.
    async fn sweep(&mut self, queue: DueQueue) {
        for shard in 0..self.app.store.shards() {
            let mut start: Option<Item> = None;
            loop {
                if self.out_of_time() {
                    return;
                }
                let (items, next) = match self.due_page(queue, shard, start.take()).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, queue = ?queue, shard, "due query failed");
                        self.report.complete = false;
                        break;
                    }
                };
                match queue {
                    DueQueue::Expire => expire::page(self, items).await,
                    DueQueue::Purge => purge::page(self, items).await,
                    DueQueue::SessionExpire => session_expiry::page(self, items).await,
                    DueQueue::Resume => resume::page(self, items).await,
                    DueQueue::Remind => remind::page(self, items).await,
                }
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
    }

    /// One page of `queue`'s shard: the items due at `now`, and where the next page starts.
    async fn due_page(
        &mut self,
        queue: DueQueue,
        shard: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let store = &self.app.store;
        let out = store
            .client()
            .query()
            .table_name(store.table_name())
            .index_name(DUE_INDEX)
            .key_condition_expression("due_pk = :queue AND due_at <= :now")
            .expression_attribute_values(":queue", s(queue.partition(shard)))
            .expression_attribute_values(":now", n(self.now))
            .limit(PAGE_SIZE)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        self.report.queries += 1;
        self.report.items_read += out.scanned_count().max(0) as u64;
        let next = crate::store::codec::next_page(out.last_evaluated_key);
        Ok((out.items.unwrap_or_default(), next))
    }
}

/// Runs `futures` at once on the runtime and returns their outputs in order; a task that
/// panicked yields `None`.
pub(crate) async fn join_all<F>(futures: Vec<F>) -> Vec<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let count = futures.len();
    for (i, f) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<Option<F::Output>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, value)) => out[i] = Some(value),
            Err(e) => tracing::error!(error = %e, "job task failed"),
        }
    }
    out
}
