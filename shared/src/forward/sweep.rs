//! [`Forwarder::sweep`]: the scheduled pass over every app's outbox that queues the rows
//! whose job was never queued, or was lost.

use super::{ForwardError, Forwarder};
use crate::queue::Job;
use crate::store::{Attrs, ItemKey, ItemRead, Op, StoreError, attrs};
use tracing::info;

/// How old an outbox row (or its last failed attempt) must be before the sweep queues it
/// again: well past the time a queued job takes to run.
pub const SWEEP_AFTER_SECS: i64 = 120;
/// Outbox rows the sweep reads per app per run at most (it runs every few minutes).
pub const SWEEP_ROWS_PER_APP: usize = 5_000;

impl Forwarder {
    /// Queues a forwarding job for outbox rows of every configured app that are older than
    /// [`SWEEP_AFTER_SECS`] and not waiting for a retry. Each run reads at most
    /// [`SWEEP_ROWS_PER_APP`] rows per app from where the last run stopped (a cursor per app),
    /// so a long outbox is covered over a few runs. Dead rows are elsewhere
    /// (`fwd#dead#{appid}`) and never read. Answers how many jobs it queued.
    pub async fn sweep(&self, now: i64) -> Result<usize, ForwardError> {
        let appids = self.secrets.list_apps().await?;
        let mut queued = 0;
        for appid in appids {
            queued += self.sweep_app(&appid, now).await?;
        }
        Ok(queued)
    }

    /// One app's part of [`Forwarder::sweep`].
    async fn sweep_app(&self, appid: &str, now: i64) -> Result<usize, ForwardError> {
        let cursor_key = ItemKey::outbox_sweep(appid);
        let start = self
            .store
            .get(&cursor_key)
            .await?
            .and_then(|c| c.string("after"));
        let (jobs, after) = self.due_jobs(appid, start, now).await?;
        if !jobs.is_empty() {
            self.queue.enqueue_many(&jobs).await?;
            info!(
                appid,
                rows = jobs.len(),
                "outbox sweep queued events to forward"
            );
        }
        let cursor = match after {
            Some(sk) => attrs([("after", sk.into())]),
            None => Attrs::new(),
        };
        let op = Op::Set {
            key: cursor_key,
            attrs: cursor,
        };
        self.store.record(&[op], now).await?;
        Ok(jobs.len())
    }

    /// The forwarding jobs of `appid`'s outbox rows after `after` that are due (old enough,
    /// or their retry overdue), reading at most `sweep_rows` rows; and where the next run
    /// goes on (`None`: from the start).
    async fn due_jobs(
        &self,
        appid: &str,
        mut after: Option<String>,
        now: i64,
    ) -> Result<(Vec<Job>, Option<String>), StoreError> {
        let mut read = 0;
        let mut jobs = Vec::new();
        // Bounded: `sweep_rows` rows at most; the next sweep goes on from `after`.
        loop {
            let limit = (self.sweep_rows - read.min(self.sweep_rows)).clamp(1, 1_000);
            let page = self
                .store
                .query_page(&ItemKey::outbox_pk(appid), after.as_deref(), limit)
                .await?;
            read += page.rows.len().max(1);
            for (sk, row) in page.rows {
                let due = row
                    .num("next_attempt_at")
                    .or_else(|| row.num("created_at"))
                    .unwrap_or(0);
                if due <= now - SWEEP_AFTER_SECS {
                    jobs.push(Job::ForwardEvent {
                        appid: appid.to_string(),
                        key: sk,
                        attempt: row.num("attempts").unwrap_or(0).max(0) as u32,
                    });
                }
            }
            after = page.next_after;
            if after.is_none() || read >= self.sweep_rows {
                return Ok((jobs, after));
            }
        }
    }
}
