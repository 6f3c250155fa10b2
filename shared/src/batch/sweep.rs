//! The batch sweep: finds every batch with recipients neither sent nor settled and no live
//! job, and requeues or settles them. It runs on the scheduled sweep job (every 5 minutes on
//! AWS, the local server's timer locally).
//!
//! What it repairs: a fan-out job that reached the dead-letter queue, a chunk killed at its
//! deadline on its last delivery before it settled, jobs lost with a local queue. What tells
//! it a job is still alive: a chunk's progress item carries `active_until` (the deadline of
//! the job that last flushed it, plus the claim margin) and `due_at` (when a put-back or a
//! requeue is due); a batch whose chunks flushed recently is running, so its unstarted
//! chunks are only waiting in the queue. A chunk job queued twice sends nothing twice (every
//! recipient has a claim), so a sweep errs on the side of requeueing.

use super::chunk::Settle;
use super::items::{BatchState, Meta, Progress, QUEUED, read_recipients};
use super::{BatchJobError, Batches};
use crate::queue::Job;
use crate::store::{Attr, ItemKey, Op, attrs};
use tracing::{info, warn};

/// A chunk whose job should have run `STALE_SECS` ago is requeued.
pub const STALE_SECS: i64 = 60;
/// A batch none of whose chunks flushed for this long has no live job at all; before
/// that, a chunk not started yet is taken to be waiting in the queue behind the others.
pub const IDLE_SECS: i64 = 15 * 60;
/// Requeues of one chunk without any progress in between before the sweep gives its
/// unsent recipients up (failed, `not_sent`): a job that dies every time.
pub const MAX_SWEEPS: i64 = 3;
/// Unfinished batches looked at per sweep at most (the rest wait for the next one).
const BATCHES_PER_SWEEP: usize = 1_000;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub batches: usize,
    pub requeued_chunks: usize,
    pub requeued_fanouts: usize,
    pub settled_chunks: usize,
    pub finished: usize,
}

impl SweepReport {
    /// Jobs this sweep queued.
    pub fn requeued(&self) -> usize {
        self.requeued_chunks + self.requeued_fanouts
    }
}

impl Batches {
    /// One sweep over the unfinished batches, as of `now` (unix seconds).
    pub async fn sweep(&self, now: i64) -> Result<SweepReport, BatchJobError> {
        let mut report = SweepReport::default();
        let mut after: Option<String> = None;
        while report.batches < BATCHES_PER_SWEEP {
            let page = self
                .store
                .query_page("batches", after.as_deref(), 100)
                .await?;
            for (sk, _) in &page.rows {
                report.batches += 1;
                let Some((appid, id)) = sk.split_once('#') else {
                    continue;
                };
                if let Err(e) = self.sweep_batch(appid, id, now, &mut report).await {
                    warn!(appid, batch = %id, error = %e, "batch sweep failed for this batch");
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        info!(?report, "batch sweep");
        Ok(report)
    }

    async fn sweep_batch(
        &self,
        appid: &str,
        id: &str,
        now: i64,
        report: &mut SweepReport,
    ) -> Result<(), BatchJobError> {
        let index = ItemKey::unfinished_batch(appid, id);
        let meta = self.meta(appid, id).await?;
        let Some(meta) =
            meta.filter(|m| matches!(m.state, BatchState::Running | BatchState::Cancelled))
        else {
            // Gone, done, or never started (`failed`: a retry of its request starts it).
            return self.forget(&index, now).await;
        };
        let progress = self.store.query(&format!("bprog#{appid}#{id}")).await?;
        let fanned_out = meta.fanout_done && meta.queued_chunks >= meta.chunks;
        if meta.state == BatchState::Running
            && !fanned_out
            && now > meta.fanout_at.max(meta.created_at) + STALE_SECS
        {
            self.queue
                .enqueue(&Job::BatchFanout {
                    appid: appid.into(),
                    batch_id: id.into(),
                })
                .await?;
            report.requeued_fanouts += 1;
        }
        let last_flush = progress
            .iter()
            .map(|(_, a)| Progress::read(a).flushed_at)
            .max()
            .unwrap_or(0);
        let idle = now > last_flush + IDLE_SECS;
        let mut unsettled = false;
        for (sk, attrs) in &progress {
            let p = Progress::read(attrs);
            let Ok(chunk) = sk.parse::<u32>() else {
                continue;
            };
            if !p.results.contains(&QUEUED) {
                continue;
            }
            unsettled = true;
            let queued_by_fanout = chunk < meta.queued_chunks || meta.state != BatchState::Running;
            let live = now <= p.active_until.max(p.due_at) + STALE_SECS;
            if !queued_by_fanout || live || (!p.started && !idle) {
                continue;
            }
            self.sweep_chunk(&meta, appid, id, chunk, &p, now, report)
                .await?;
        }
        if !unsettled && (fanned_out || meta.state != BatchState::Running) {
            self.finish(&meta, appid, id, now).await?;
            report.finished += 1;
        }
        Ok(())
    }

    /// A chunk with unsent recipients and no live job: requeued, or given up after
    /// [`MAX_SWEEPS`] requeues that changed nothing.
    #[allow(clippy::too_many_arguments)]
    async fn sweep_chunk(
        &self,
        meta: &Meta,
        appid: &str,
        id: &str,
        chunk: u32,
        p: &Progress,
        now: i64,
        report: &mut SweepReport,
    ) -> Result<(), BatchJobError> {
        if p.sweeps >= MAX_SWEEPS {
            let recipients = self
                .store
                .get(&ItemKey::batch_recipients(appid, id, chunk))
                .await?
                .map(|a| read_recipients(&a))
                .unwrap_or_default();
            let mode = if meta.state == BatchState::Cancelled {
                Settle::Cancel
            } else {
                Settle::GiveUp(format!(
                    "not sent: the chunk's job died {MAX_SWEEPS} times without progress"
                ))
            };
            warn!(appid, batch = %id, chunk, "sweep gives a chunk up");
            self.settle(appid, id, chunk, &recipients, mode).await?;
            report.settled_chunks += 1;
            return Ok(());
        }
        self.queue
            .enqueue(&Job::BatchChunk {
                appid: appid.into(),
                batch_id: id.into(),
                chunk,
                attempt: 0,
            })
            .await?;
        let noted = Op::Update {
            key: ItemKey::batch_progress(appid, id, chunk),
            attrs: attrs([
                ("due_at", Attr::N(now + IDLE_SECS)),
                ("sweeps", Attr::N(p.sweeps + 1)),
            ]),
        };
        self.store.record(&[noted], now).await?;
        info!(appid, batch = %id, chunk, sweeps = p.sweeps + 1, "sweep requeued a chunk");
        report.requeued_chunks += 1;
        Ok(())
    }

    /// Every recipient settled: a running batch becomes `done`, and leaves the index.
    async fn finish(
        &self,
        meta: &Meta,
        appid: &str,
        id: &str,
        now: i64,
    ) -> Result<(), BatchJobError> {
        if meta.state == BatchState::Running {
            let op = meta.change_op(appid, id, attrs([("state", BatchState::Done.into())]));
            self.store.record(&[op], now).await?;
        }
        info!(appid, batch = %id, "batch finished");
        self.forget(&ItemKey::unfinished_batch(appid, id), now)
            .await
    }

    /// The batch leaves the sweep's list of unfinished batches.
    async fn forget(&self, index: &ItemKey, now: i64) -> Result<(), BatchJobError> {
        self.store
            .record(&[Op::Delete { key: index.clone() }], now)
            .await?;
        Ok(())
    }
}
