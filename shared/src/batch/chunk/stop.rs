//! Why a chunk run stops before its recipients are all done ([`Stop`]), and what follows
//! the run: nothing (all done), its job put back (deadline, pause, a passing failure, with a
//! doubling backoff), or the chunk settled (cancelled, or given up after `max_retries`).

use super::run::ChunkRun;
use super::sends::Sends;
use super::settle::Settle;
use crate::batch::config::MAX_DELAY;
use crate::batch::{BatchJobError, Batches};
use crate::clock::now_unix;
use crate::queue::Job;
use crate::store::{ItemKey, Op, attrs};
use std::time::Duration;
use tracing::{info, warn};

/// Why a chunk job stops before its recipients are all done.
#[derive(Clone, Debug)]
pub(in crate::batch) enum Stop {
    /// Its deadline nears: it continues in a new job.
    Deadline,
    /// WeChat's quota (45009/45011): the batch waits until then.
    Pause { until: i64, reason: String },
    /// WeChat or the store failed: the chunk runs again later.
    Retry(String),
    /// The batch was cancelled.
    Cancel,
}

impl Stop {
    /// The reason to stop when `earlier` was one already: a cancel wins, then a pause.
    pub(super) fn after(earlier: Option<Stop>, why: Stop) -> Stop {
        match (earlier, why) {
            (Some(Stop::Cancel), _) | (_, Stop::Cancel) => Stop::Cancel,
            (Some(p @ Stop::Pause { .. }), _) | (_, p @ Stop::Pause { .. }) => p,
            (_, w) => w,
        }
    }
}

impl Batches {
    /// What follows a chunk run whose outcomes are flushed: `job` (at `attempt`) put back,
    /// the chunk settled, or nothing when no recipient is left.
    pub(super) async fn after_run(
        &self,
        job: &Job,
        attempt: u32,
        run: &ChunkRun,
        recipients: &[String],
        sends: Sends,
    ) -> Result<(), BatchJobError> {
        let left = run.left();
        let (appid, id, chunk) = (run.appid.as_str(), run.id.as_str(), run.chunk);
        info!(appid, batch = %id, chunk, done = sends.sent, left, stop = ?sends.stop, "chunk step");
        // A run that got somewhere starts its retry count afresh.
        let (attempt, job) = if sends.sent > 0 {
            (0, job.with_attempt(0))
        } else {
            (attempt, job.clone())
        };
        match sends.stop {
            _ if left == 0 => Ok(()),
            Some(Stop::Deadline) => self.put_back(job, Duration::ZERO).await,
            Some(Stop::Pause { until, .. }) => {
                let wait = (until - now_unix()).max(1) as u64;
                self.put_back(job, Duration::from_secs(wait)).await
            }
            None | Some(Stop::Retry(_)) => {
                let why = sends
                    .last_failure
                    .unwrap_or_else(|| "a passing failure".into());
                if sends.sent > 0 {
                    // Some recipients hit a passing failure: they go again soon.
                    return self.put_back(job, self.config.retry_backoff).await;
                }
                self.retry_later(job, attempt, run, recipients, why).await
            }
            Some(Stop::Cancel) => {
                self.settle(appid, id, chunk, recipients, Settle::Cancel)
                    .await
            }
        }
    }

    /// A run that sent nothing for a passing failure `why`: put back with a doubling
    /// backoff, or given up after `max_retries`.
    async fn retry_later(
        &self,
        job: Job,
        attempt: u32,
        run: &ChunkRun,
        recipients: &[String],
        why: String,
    ) -> Result<(), BatchJobError> {
        let (appid, id, chunk) = (run.appid.as_str(), run.id.as_str(), run.chunk);
        if attempt + 1 > self.config.max_retries {
            let why = format!("not sent: {why} (given up after {attempt} retries)");
            return self
                .settle(appid, id, chunk, recipients, Settle::GiveUp(why))
                .await;
        }
        warn!(appid, batch = %id, chunk, attempt, error = %why, "chunk put back after a failure");
        // Doubling up to 32 times the first delay (SQS caps it at 900 s anyway).
        let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt.min(5));
        self.put_back(job.retried(), backoff.min(MAX_DELAY)).await
    }

    /// Queues `job` again after `delay` (at most SQS's 900 s; a longer pause is waited out
    /// in turns).
    pub(super) async fn put_back(&self, job: Job, delay: Duration) -> Result<(), BatchJobError> {
        let delay = delay.min(MAX_DELAY);
        self.queue.enqueue_after(&job, delay).await?;
        // Tells the sweep when the chunk's job is due (it leaves the chunk alone until then).
        if let Job::BatchChunk {
            appid,
            batch_id,
            chunk,
            ..
        } = &job
        {
            let due = Op::Update {
                key: ItemKey::batch_progress(appid, batch_id, *chunk),
                attrs: attrs([("due_at", (now_unix() + delay.as_secs() as i64 + 1).into())]),
            };
            if let Err(e) = self.store.record(&[due], now_unix()).await {
                warn!(appid, batch = %batch_id, chunk, error = %e, "could not note when a chunk's job is due");
            }
        }
        Ok(())
    }
}
