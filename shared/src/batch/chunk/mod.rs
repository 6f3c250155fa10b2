//! [`Job::BatchChunk`]: one chunk's run. It reads the chunk and its batch, settles it when
//! the batch no longer runs, waits out a pause, then sends its queued recipients
//! (`sends.rs`), records their outcomes (`run.rs`, `flush.rs`) and decides what follows
//! (`stop.rs`): a quota pauses the batch (`pause.rs`); a chunk that stops for good is
//! settled (`settle.rs`).

mod flush;
mod pause;
mod run;
mod sends;
mod settle;
mod stop;

pub(super) use pause::classify;
pub(super) use settle::Settle;
pub(super) use stop::Stop;

use super::items::{BatchState, Meta, Progress, QUEUED, read_recipients};
use super::recipient::ChunkCtx;
use super::{BatchJobError, Batches};
use crate::clock::now_unix;
use crate::queue::Job;
use crate::send::service::{CLAIM_LEASE_MARGIN_SECS, MESSAGE_TTL_SECS, body_hash};
use crate::store::ItemKey;
use run::ChunkRun;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

impl Batches {
    /// [`Job::BatchChunk`]: sends the chunk's queued recipients. The queue's last delivery
    /// runs like any other: a job that dies on it (killed at its deadline, a crash) goes to
    /// the dead-letter queue with its recipients still queued, and the sweep
    /// ([`Batches::sweep`]) requeues the chunk, or gives it up after requeues that changed
    /// nothing. A chunk that keeps failing on WeChat or the store gives itself up after
    /// `max_retries` put-backs.
    pub async fn run_chunk(
        self: &Arc<Self>,
        job: &Job,
        deadline: Instant,
        _last_delivery: bool,
    ) -> Result<(), BatchJobError> {
        let Job::BatchChunk {
            appid,
            batch_id: id,
            chunk,
            attempt,
        } = job
        else {
            return Err(BatchJobError::NotAChunkJob);
        };
        let (appid, id, chunk, attempt) = (appid.as_str(), id.as_str(), *chunk, *attempt);
        let Some(meta) = self.meta(appid, id).await? else {
            warn!(appid, batch = %id, chunk, "chunk of a batch that does not exist; dropped");
            return Ok(());
        };
        let (progress, recipients) = self.read_chunk(appid, id, chunk).await?;
        if !progress.results.contains(&QUEUED) {
            return Ok(());
        }
        if meta.state != BatchState::Running {
            let mode = if meta.state == BatchState::Cancelled {
                Settle::Cancel
            } else {
                Settle::GiveUp(format!("the batch is {}", meta.state))
            };
            return self.settle(appid, id, chunk, &recipients, mode).await;
        }
        if attempt > self.config.max_retries {
            let why = format!("not sent: the chunk failed {attempt} times and was given up");
            self.settle(appid, id, chunk, &recipients, Settle::GiveUp(why))
                .await?;
            // Reported failed so the queue moves it to its dead-letter queue, as it should.
            return Err(BatchJobError::GivenUp {
                id: id.to_string(),
                chunk,
            });
        }
        let now = now_unix();
        if meta.paused_until > now {
            let delay = Duration::from_secs((meta.paused_until - now) as u64);
            return self.put_back(job.clone(), delay).await;
        }
        let ctx = self.chunk_ctx(appid, id, &meta, deadline).await?;
        let progress_key = ItemKey::batch_progress(appid, id, chunk);
        let mut run = ChunkRun::new(progress_key, appid, id, chunk, &progress);
        run.active_until = now_unix()
            + deadline.saturating_duration_since(Instant::now()).as_secs() as i64
            + CLAIM_LEASE_MARGIN_SECS;
        // Mark it started first, so a cancel leaves it to this worker.
        if !run.started {
            self.flush(&mut run).await?;
        }
        let sends = self
            .send_queued(&ctx, &mut run, &recipients, deadline)
            .await;
        self.flush(&mut run).await?;
        self.after_run(job, attempt, &run, &recipients, sends).await
    }

    /// The chunk's progress and its recipients, which must match.
    async fn read_chunk(
        &self,
        appid: &str,
        id: &str,
        chunk: u32,
    ) -> Result<(Progress, Vec<String>), BatchJobError> {
        let (Some(progress), Some(recipients)) = (
            self.store
                .get(&ItemKey::batch_progress(appid, id, chunk))
                .await?,
            self.store
                .get(&ItemKey::batch_recipients(appid, id, chunk))
                .await?,
        ) else {
            return Err(BatchJobError::ChunkNotWritten {
                id: id.to_string(),
                chunk,
            });
        };
        let progress = Progress::read(&progress);
        let recipients = read_recipients(&recipients);
        if recipients.len() != progress.results.len() {
            return Err(BatchJobError::ChunkInconsistent {
                id: id.to_string(),
                chunk,
            });
        }
        Ok((progress, recipients))
    }

    /// What the chunk's sends share: the app, the batch's message and its claims' terms.
    async fn chunk_ctx(
        self: &Arc<Self>,
        appid: &str,
        id: &str,
        meta: &Meta,
        deadline: Instant,
    ) -> Result<Arc<ChunkCtx>, BatchJobError> {
        let app = self.app(appid).await?;
        let message: Map<String, Value> =
            serde_json::from_str(&meta.message).map_err(|e| BatchJobError::MessageUnreadable {
                id: id.to_string(),
                error: e.to_string(),
            })?;
        Ok(Arc::new(ChunkCtx {
            batches: self.clone(),
            app,
            batch_id: id.to_string(),
            message_hash: body_hash(meta.message.as_bytes()),
            message,
            claims_expire_at: meta.created_at + MESSAGE_TTL_SECS + 86_400,
            caller: meta.requested_by.clone(),
            deadline: deadline
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(deadline),
            turns: Default::default(),
        }))
    }
}
