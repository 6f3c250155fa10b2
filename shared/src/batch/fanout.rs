//! [`Job::BatchFanout`]: a batch's chunk jobs queued, a step of [`FANOUT_STEP`] at a time;
//! for the followers audience, its chunks first written from the follower directory, a page
//! a chunk.

use super::items::{Audience, BatchState, Meta, chunk_ops};
use super::{BatchJobError, Batches};
use crate::clock::now_unix;
use crate::queue::Job;
use crate::send::validate::parse_recipient;
use crate::store::{Attr, Attrs, ItemRead, Op, attrs};
use serde_json::json;
use std::time::Instant;
use tracing::{info, warn};

/// Chunk jobs queued per fan-out step (then the step is recorded).
const FANOUT_STEP: usize = 100;

/// A fan-out step's `changes` to the batch, by compare-and-swap on its version. Fan-out
/// steps are recorded with the time, so the sweep can tell a stalled fan-out.
fn step_op(appid: &str, id: &str, meta: &Meta, mut changes: Attrs) -> Op {
    changes.insert("fanout_at".into(), Attr::N(now_unix()));
    meta.change_op(appid, id, changes)
}

impl Batches {
    /// [`Job::BatchFanout`]: queues the chunk jobs not queued yet; for the followers
    /// audience, first writes chunks from the follower directory, page by page. Safe to run
    /// twice: every step is a compare-and-swap on the batch, and a chunk queued twice sends
    /// nothing twice.
    pub async fn fanout(
        &self,
        appid: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<(), BatchJobError> {
        // Bounded: each turn makes progress or reloads after a lost race.
        for _ in 0..100_000 {
            let Some(meta) = self.meta(appid, id).await? else {
                warn!(appid, batch = %id, "fan-out of a batch that does not exist; dropped");
                return Ok(());
            };
            match meta.state {
                BatchState::Running => {}
                BatchState::Writing => {
                    return Err(BatchJobError::StillBeingCreated { id: id.to_string() });
                }
                _ => return Ok(()),
            }
            if meta.queued_chunks < meta.chunks {
                self.queue_chunks(appid, id, &meta).await?;
                continue;
            }
            if meta.fanout_done {
                info!(appid, batch = %id, chunks = meta.chunks, total = meta.total, "batch fanned out");
                return Ok(());
            }
            if meta.audience == Audience::Recipients {
                let op = step_op(appid, id, &meta, attrs([("fanout_done", true.into())]));
                self.store.record(&[op], now_unix()).await?;
                continue;
            }
            if Instant::now() + self.config.reserve > deadline {
                // Continues in a new job.
                let next = Job::BatchFanout {
                    appid: appid.to_string(),
                    batch_id: id.to_string(),
                };
                return Ok(self.queue.enqueue(&next).await?);
            }
            self.write_follower_chunk(appid, id, &meta).await?;
        }
        Err(BatchJobError::FanoutUnfinished { id: id.to_string() })
    }

    /// Queues the next [`FANOUT_STEP`] chunk jobs, then records them queued.
    async fn queue_chunks(&self, appid: &str, id: &str, meta: &Meta) -> Result<(), BatchJobError> {
        let upto = meta.chunks.min(meta.queued_chunks + FANOUT_STEP as u32);
        let jobs: Vec<Job> = (meta.queued_chunks..upto)
            .map(|chunk| Job::BatchChunk {
                appid: appid.to_string(),
                batch_id: id.to_string(),
                chunk,
                attempt: 0,
            })
            .collect();
        self.queue.enqueue_many(&jobs).await?;
        let op = step_op(
            appid,
            id,
            meta,
            attrs([("queued_chunks", i64::from(upto).into())]),
        );
        self.store.record(&[op], now_unix()).await?;
        Ok(())
    }

    /// The next page of the follower directory: the subscribed ones become a chunk, written
    /// with the batch's new totals and cursor.
    async fn write_follower_chunk(
        &self,
        appid: &str,
        id: &str,
        meta: &Meta,
    ) -> Result<(), BatchJobError> {
        let page = self
            .store
            .query_page(
                &format!("acct#{appid}"),
                meta.cursor.as_deref(),
                self.config.chunk_size,
            )
            .await?;
        let recipients: Vec<String> = page
            .rows
            .iter()
            .filter(|(_, a)| a.flag("subscribed"))
            .filter_map(|(_, a)| a.text("openid"))
            .filter(|o| parse_recipient(&json!({ "openid": o })).is_ok())
            .map(|o| format!("o:{o}"))
            .collect();
        let now = now_unix();
        let mut ops = Vec::with_capacity(3);
        let mut chunks = meta.chunks;
        if !recipients.is_empty() {
            ops.extend(chunk_ops(appid, id, chunks, &recipients, now));
            chunks += 1;
        }
        let mut changes = attrs([
            ("chunks", i64::from(chunks).into()),
            ("total", (meta.total + recipients.len() as i64).into()),
            ("fanout_done", page.next_after.is_none().into()),
        ]);
        if let Some(after) = &page.next_after {
            changes.insert("cursor".into(), after.as_str().into());
        }
        ops.push(step_op(appid, id, meta, changes));
        self.store.record(&ops, now).await?;
        Ok(())
    }
}
