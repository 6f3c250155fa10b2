//! [`JobRunner`]: runs one background [`Job`], whichever queue it came from (the batch-worker
//! Lambda's SQS records, or the local server's in-process queue).

use crate::batch::{BatchJobError, Batches};
use crate::callback::followup::{CompletionError, FollowUpSweepError, FollowerCompletion};
use crate::followers::{FollowerSync, RunError};
use crate::forward::{ForwardError, Forwarder};
use crate::queue::{Delivery, Failed, Job, LocalJobs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Why a job did not finish: it runs again (every job is safe to run twice), or, after the
/// queue's last delivery, is dead-lettered.
#[derive(Debug, Error)]
pub enum JobError {
    #[error(transparent)]
    FollowerSync(#[from] RunError),
    #[error(transparent)]
    FollowerCompletion(#[from] CompletionError),
    #[error(transparent)]
    Batch(#[from] BatchJobError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// One or more of the scheduled sweeps failed (the others still ran).
    #[error("{}", sweep_failures(.0))]
    Sweeps(Vec<SweepFailure>),
    /// The job needs a part this worker was not built with.
    #[error("{0}")]
    NotConfigured(&'static str),
}

/// A scheduled sweep that failed, by name.
#[derive(Debug, Error)]
pub enum SweepFailure {
    #[error("follow-up sweep: {0}")]
    FollowUp(FollowUpSweepError),
    #[error("outbox sweep: {0}")]
    Outbox(ForwardError),
    #[error("batch sweep: {0}")]
    Batch(BatchJobError),
}

fn sweep_failures(failures: &[SweepFailure]) -> String {
    let shown: Vec<String> = failures.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

pub struct JobRunner {
    sync: Arc<FollowerSync>,
    followers: Arc<FollowerCompletion>,
    batches: Option<Arc<Batches>>,
    forwarder: Option<Arc<Forwarder>>,
}

impl JobRunner {
    pub fn new(sync: Arc<FollowerSync>, followers: Arc<FollowerCompletion>) -> JobRunner {
        JobRunner {
            sync,
            followers,
            batches: None,
            forwarder: None,
        }
    }

    /// The batches whose fan-out and chunk jobs this runner runs.
    pub fn with_batches(mut self, batches: Arc<Batches>) -> JobRunner {
        self.batches = Some(batches);
        self
    }

    /// The forwarder of recorded callback events (forwarding and sweep jobs).
    pub fn with_forwarder(mut self, forwarder: Arc<Forwarder>) -> JobRunner {
        self.forwarder = Some(forwarder);
        self
    }

    /// Runs `job` until it is done or `deadline` nears. `Err` means it should run again
    /// (the store, the queue or WeChat failed); every job is safe to run twice.
    pub async fn run(&self, job: &Job, deadline: Instant) -> Result<(), JobError> {
        self.run_delivery(job, deadline, false).await
    }

    /// [`JobRunner::run`], knowing whether this is the queue's last delivery of the job (the
    /// next failure sends it to the dead-letter queue): a batch chunk then fails what it
    /// could not send, so the batch shows it.
    pub async fn run_delivery(
        &self,
        job: &Job,
        deadline: Instant,
        last_delivery: bool,
    ) -> Result<(), JobError> {
        match job {
            Job::FollowerSync { appid, run_id } => {
                let end = self.sync.run(appid, run_id, deadline).await?;
                info!(appid, run_id, ?end, "follower sync step");
            }
            Job::CompleteFollower { appid, openid } => {
                let done = self.followers.complete(appid, openid).await?;
                info!(appid, ?done, "follower completed");
            }
            Job::BatchFanout { appid, batch_id } => {
                self.batches()?.fanout(appid, batch_id, deadline).await?;
            }
            Job::BatchChunk { .. } => {
                self.batches()?
                    .run_chunk(job, deadline, last_delivery)
                    .await?;
            }
            Job::ForwardEvent {
                appid,
                key,
                attempt,
            } => {
                self.forwarder()?
                    .forward(
                        appid,
                        key,
                        *attempt,
                        last_delivery,
                        crate::clock::now_unix(),
                    )
                    .await?;
            }
            Job::SweepOutbox => self.sweep(deadline).await?,
        }
        Ok(())
    }

    /// Every configured sweep runs, whatever another one did; one failing fails the job
    /// (each is safe to run again).
    async fn sweep(&self, deadline: Instant) -> Result<(), JobError> {
        let now = crate::clock::now_unix();
        let mut failed = vec![];
        match self.followers.sweep(now, deadline).await {
            Ok(queued) => info!(sweep = "follow-up", queued, "sweep"),
            Err(e) => failed.push(SweepFailure::FollowUp(e)),
        }
        if let Some(forwarder) = &self.forwarder {
            match forwarder.sweep(now).await {
                Ok(queued) => info!(sweep = "outbox", queued, "sweep"),
                Err(e) => failed.push(SweepFailure::Outbox(e)),
            }
        }
        if let Some(batches) = &self.batches {
            match batches.sweep(now).await {
                Ok(report) => info!(sweep = "batch", queued = report.requeued(), "sweep"),
                Err(e) => failed.push(SweepFailure::Batch(e)),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(JobError::Sweeps(failed))
        }
    }

    fn forwarder(&self) -> Result<&Arc<Forwarder>, JobError> {
        self.forwarder.as_ref().ok_or(JobError::NotConfigured(
            "this worker forwards no events (no event bus or webhook is configured)",
        ))
    }

    fn batches(&self) -> Result<&Arc<Batches>, JobError> {
        self.batches.as_ref().ok_or(JobError::NotConfigured(
            "this worker has no batches configured",
        ))
    }
}

/// How long a taken job stays invisible beyond its budget: a job still running after that
/// is delivered again, as SQS does after its visibility timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// The local worker looks for delayed jobs coming due at most this often…
const POLL_MIN: Duration = Duration::from_millis(100);
/// …and at least this often (nothing stored, the queue failing, or the clock moved).
const POLL_MAX: Duration = Duration::from_secs(1);

/// The in-process worker of `wxpush serve`: runs up to `parallel` jobs of the durable local
/// queue at once, each with `budget` to run, under a lease of `budget` + a minute. A job
/// that ran is deleted; one that failed is visible again after a backoff, and after its
/// last delivery (run with `last_delivery`) kept in the queue's dead table. Wakes on every
/// enqueue and otherwise looks for delayed jobs coming due (at most every 100 ms). Runs
/// until its task is aborted (the server stops); the jobs in hand then stay in the file
/// and run again at the next start.
pub async fn run_local_worker(
    runner: Arc<JobRunner>,
    jobs: LocalJobs,
    budget: Duration,
    parallel: usize,
) {
    let jobs = Arc::new(jobs);
    let parallel = parallel.max(1);
    let mut running = JoinSet::new();
    // Each turn takes what fits and waits for one event: an enqueue, a job ending, or the
    // next delayed job's time.
    loop {
        let mut wait = POLL_MAX;
        let free = parallel.saturating_sub(running.len());
        if free > 0 {
            match jobs.take(free, budget + LEASE_MARGIN).await {
                Ok(taken) => {
                    for delivery in taken.deliveries {
                        running.spawn(run_delivery(runner.clone(), jobs.clone(), delivery, budget));
                    }
                    if let Some(next) = taken.next_visible {
                        wait = next.clamp(POLL_MIN, POLL_MAX);
                    }
                }
                Err(e) => warn!(error = %e, "local queue: could not take jobs"),
            }
        }
        tokio::select! {
            _ = jobs.enqueued() => {}
            Some(ended) = running.join_next(), if !running.is_empty() => {
                if let Err(e) = ended
                    && e.is_panic()
                {
                    // Not settled: the job is delivered again when its lease ends.
                    error!(error = %e, "background job panicked");
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Runs one delivery of the local queue and settles it: deleted when it ran, put back (or
/// given up) when it failed.
async fn run_delivery(runner: Arc<JobRunner>, jobs: Arc<LocalJobs>, d: Delivery, budget: Duration) {
    let result = runner
        .run_delivery(&d.job, Instant::now() + budget, d.last)
        .await;
    let settled = match result {
        Ok(()) => jobs.delete(&d).await.map(|_| ()),
        Err(e) => jobs.fail(&d, &e.to_string()).await.map(|failed| match failed {
            Failed::RetryIn(delay) => {
                warn!(job = ?d.job, receive = d.receive, error = %e, retry_in_ms = delay.as_millis() as u64, "background job failed")
            }
            Failed::Dead => {
                error!(job = ?d.job, receive = d.receive, error = %e, "background job failed its last delivery")
            }
            Failed::Stale => {
                warn!(job = ?d.job, receive = d.receive, error = %e, "background job failed after its lease ended")
            }
        }),
    };
    if let Err(e) = settled {
        // The job stays leased and is delivered again when its lease ends.
        warn!(job = ?d.job, error = %e, "local queue: could not settle a job");
    }
}
