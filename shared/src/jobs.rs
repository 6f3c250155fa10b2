//! [`JobRunner`]: runs one background [`Job`], whichever queue it came from (the batch-worker
//! Lambda's SQS records, or the local server's in-process queue).

use crate::batch::Batches;
use crate::callback::followup::FollowerCompletion;
use crate::followers::FollowerSync;
use crate::forward::Forwarder;
use crate::queue::Job;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{info, warn};

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
            Job::SweepOutbox => {
                // Every configured sweep runs, whatever another one did; one failing fails
                // the job (each is safe to run again).
                let now = crate::clock::now_unix();
                let mut swept = vec![("follow-up", self.followers.sweep(now, deadline).await)];
                if let Some(forwarder) = &self.forwarder {
                    swept.push(("outbox", forwarder.sweep(now).await));
                }
                if let Some(batches) = &self.batches {
                    let report = batches.sweep(now).await;
                    swept.push(("batch", report.map(|r| r.requeued())));
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

/// The in-process worker of `wxpush serve`: runs up to `parallel` queued jobs at once,
/// retrying one that fails a few times with backoff. Ends when every sender of the queue is
/// gone and the jobs in hand are done.
pub async fn run_local_worker(
    runner: Arc<JobRunner>,
    mut jobs: tokio::sync::mpsc::Receiver<Job>,
    budget: Duration,
    parallel: usize,
) {
    const ATTEMPTS: u32 = 5;
    let mut running = JoinSet::new();
    while let Some(job) = jobs.recv().await {
        while running.len() >= parallel.max(1) {
            let _ = running.join_next().await;
        }
        let runner = runner.clone();
        running.spawn(async move {
            for attempt in 1..=ATTEMPTS {
                let last = attempt == ATTEMPTS;
                match runner
                    .run_delivery(&job, Instant::now() + budget, last)
                    .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(?job, attempt, error = %e, "background job failed");
                        if !last {
                            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                        }
                    }
                }
            }
        });
    }
    while running.join_next().await.is_some() {}
}
