//! [`Forwarder::sweep`]: the scheduled pass over every app's outbox that queues the rows
//! whose job was never queued, or was lost.

use super::{ForwardError, Forwarder};
use crate::partition_scan::PartitionScan;
use crate::queue::Job;
use crate::store::{Attrs, ItemKey, ItemRead};
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
        let scan = PartitionScan {
            store: &*self.store,
            pk: ItemKey::outbox_pk(appid),
            cursor: ItemKey::outbox_sweep(appid),
            max_rows: self.sweep_rows,
        };
        let mut jobs = Vec::new();
        let after = scan
            .read(scan.start().await?, |sk, row| {
                if let Some(job) = due_job(appid, sk, &row, now) {
                    jobs.push(job);
                }
            })
            .await?;
        if !jobs.is_empty() {
            self.queue.enqueue_many(&jobs).await?;
            info!(
                appid,
                rows = jobs.len(),
                "outbox sweep queued events to forward"
            );
        }
        scan.save(after, now).await?;
        Ok(jobs.len())
    }
}

/// The forwarding job of an outbox row that is due: old enough, or its retry overdue.
fn due_job(appid: &str, sk: String, row: &Attrs, now: i64) -> Option<Job> {
    let due = row
        .num("next_attempt_at")
        .or_else(|| row.num("created_at"))
        .unwrap_or(0);
    (due <= now - SWEEP_AFTER_SECS).then(|| Job::ForwardEvent {
        appid: appid.to_string(),
        key: sk,
        attempt: row.num("attempts").unwrap_or(0).max(0) as u32,
    })
}
