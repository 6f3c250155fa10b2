//! [`JobRunner`]: runs one background [`Job`], whichever queue it came from (the batch-worker
//! Lambda's SQS records, or the local server's in-process queue).

use crate::callback::followup::FollowerCompletion;
use crate::followers::FollowerSync;
use crate::queue::Job;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub struct JobRunner {
    sync: Arc<FollowerSync>,
    followers: Arc<FollowerCompletion>,
}

impl JobRunner {
    pub fn new(sync: Arc<FollowerSync>, followers: Arc<FollowerCompletion>) -> JobRunner {
        JobRunner { sync, followers }
    }

    /// Runs `job` until it is done or `deadline` nears. `Err` means it should run again
    /// (the store, the queue or WeChat failed); every job is safe to run twice.
    pub async fn run(&self, job: &Job, deadline: Instant) -> Result<(), String> {
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
        }
        Ok(())
    }
}

/// The in-process worker of `wxpush serve`: runs each queued job, retrying one that fails a
/// few times with backoff. Ends when every sender of the queue is gone.
pub async fn run_local_worker(
    runner: Arc<JobRunner>,
    mut jobs: tokio::sync::mpsc::Receiver<Job>,
    budget: Duration,
) {
    const ATTEMPTS: u32 = 5;
    while let Some(job) = jobs.recv().await {
        for attempt in 1..=ATTEMPTS {
            match runner.run(&job, Instant::now() + budget).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(?job, attempt, error = %e, "background job failed");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
    }
}
