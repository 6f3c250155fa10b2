//! [`JobRunner`]: runs one background [`Job`], whichever queue it came from (the batch-worker
//! Lambda's SQS records, or the local server's in-process queue).

use crate::batch::Batches;
use crate::callback::followup::FollowerCompletion;
use crate::followers::FollowerSync;
use crate::forward::Forwarder;
use crate::queue::{Delivery, Failed, Job, LocalJobs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

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
    pub async fn run(&self, job: &Job, deadline: Instant) -> Result<(), String> {
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
    ) -> Result<(), String> {
        match job {
            Job::FollowerSync { appid, run_id } => {
                let end = self
                    .sync
                    .run(appid, run_id, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                info!(appid, run_id, ?end, "follower sync step");
            }
            Job::CompleteFollower { appid, openid } => {
                let done = self
                    .followers
                    .complete(appid, openid)
                    .await
                    .map_err(|e| e.to_string())?;
                info!(appid, ?done, "follower completed");
            }
            Job::BatchFanout { appid, batch_id } => {
                self.batches()?
                    .fanout(appid, batch_id, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Job::BatchChunk { .. } => {
                self.batches()?
                    .run_chunk(job, deadline, last_delivery)
                    .await
                    .map_err(|e| e.to_string())?;
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
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Job::SweepOutbox => {
                // Every configured sweep runs, whatever another one did; one failing fails
                // the job (each is safe to run again).
                let now = crate::clock::now_unix();
                let followers = self.followers.sweep(now, deadline).await;
                let mut swept = vec![("follow-up", followers.map_err(|e| e.to_string()))];
                if let Some(forwarder) = &self.forwarder {
                    let outbox = forwarder.sweep(now).await;
                    swept.push(("outbox", outbox.map_err(|e| e.to_string())));
                }
                if let Some(batches) = &self.batches {
                    let report = batches.sweep(now).await;
                    swept.push((
                        "batch",
                        report.map(|r| r.requeued()).map_err(|e| e.to_string()),
                    ));
                }
                let mut failed = vec![];
                for (sweep, result) in swept {
                    match result {
                        Ok(queued) => info!(sweep, queued, "sweep"),
                        Err(e) => failed.push(format!("{sweep} sweep: {e}")),
                    }
                }
                if !failed.is_empty() {
                    return Err(failed.join("; "));
                }
            }
        }
        Ok(())
    }

    fn forwarder(&self) -> Result<&Arc<Forwarder>, String> {
        self.forwarder.as_ref().ok_or_else(|| {
            "this worker forwards no events (no event bus or webhook is configured)".to_string()
        })
    }

    fn batches(&self) -> Result<&Arc<Batches>, String> {
        self.batches
            .as_ref()
            .ok_or_else(|| "this worker has no batches configured".to_string())
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
        Err(e) => jobs.fail(&d, &e).await.map(|failed| match failed {
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
