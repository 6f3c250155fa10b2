//! [`FollowerCompletion::sweep`]: the scheduled pass over every app's follow-up rows that
//! queues (or, without a queue, runs) the look-ups whose job was never queued, was lost, or
//! failed for good.

use super::FollowerCompletion;
use crate::partition_scan::PartitionScan;
use crate::queue::{Job, QueueError};
use crate::secrets::ConfigError;
use crate::store::{ItemKey, ItemRead, StoreError};
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{info, warn};

/// How old a follow-up row must be before the sweep queues its look-up again: well past the
/// callback's completion delay and the time the queued job takes.
pub const FOLLOW_UP_SWEEP_AFTER_SECS: i64 = 60;
/// Follow-up rows the sweep reads per app per run at most (it runs every few minutes).
pub const FOLLOW_UP_SWEEP_ROWS: usize = 1_000;
/// Time a sweep without a queue keeps in hand when it runs the look-ups itself.
const INLINE_MARGIN: Duration = Duration::from_secs(10);

/// Why a follow-up sweep failed (it runs again on the next schedule).
#[derive(Debug, Error)]
pub enum FollowUpSweepError {
    /// The apps to sweep could not be listed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl FollowerCompletion {
    /// Queues a [`Job::CompleteFollower`] for every follow-up row of every configured app
    /// older than [`FOLLOW_UP_SWEEP_AFTER_SECS`] at `now`: look-ups whose job was never queued (the
    /// queue refused it after the event was recorded), was lost, or failed for good. Each run
    /// reads at most [`FOLLOW_UP_SWEEP_ROWS`] rows per app from where the last run stopped (a
    /// cursor per app), so a long backlog is covered over a few runs. Without a queue
    /// ([`FollowerCompletion::with_queue`] not called) the look-ups run here, one after the
    /// other, until `deadline` nears. Answers how many look-ups it queued or ran.
    pub async fn sweep(&self, now: i64, deadline: Instant) -> Result<usize, FollowUpSweepError> {
        let appids = self.tokens.secrets().list_apps().await?;
        let mut swept = 0;
        for appid in appids {
            swept += self.sweep_app(&appid, now, deadline).await?;
        }
        Ok(swept)
    }

    /// One app's part of [`FollowerCompletion::sweep`].
    async fn sweep_app(
        &self,
        appid: &str,
        now: i64,
        deadline: Instant,
    ) -> Result<usize, FollowUpSweepError> {
        let scan = PartitionScan {
            store: &*self.store,
            pk: ItemKey::follow_up_pk(appid),
            cursor: ItemKey::follow_up_sweep(appid),
            max_rows: self.sweep_rows,
        };
        let start = scan.start().await?;
        let mut due = Vec::new();
        let mut after = scan
            .read(start.clone(), |sk, row| {
                let old = row.num("created_at").unwrap_or(0) <= now - self.sweep_after;
                let live = row.num("ttl").is_none_or(|ttl| ttl > now);
                if old && live {
                    // The key of a long openid is its short form: the row holds the openid.
                    due.push(row.string("openid").unwrap_or(sk));
                }
            })
            .await?;
        let mut swept = 0;
        match &self.queue {
            Some(queue) if !due.is_empty() => {
                let jobs: Vec<Job> = due
                    .iter()
                    .map(|openid| Job::CompleteFollower {
                        appid: appid.to_string(),
                        openid: openid.clone(),
                    })
                    .collect();
                queue.enqueue_many(&jobs).await?;
                swept = jobs.len();
            }
            Some(_) => {}
            None => {
                for openid in &due {
                    if Instant::now() + INLINE_MARGIN >= deadline {
                        // Out of time: the next run reads these rows again.
                        after = start.clone();
                        break;
                    }
                    match self.complete(appid, openid).await {
                        Ok(_) => swept += 1,
                        Err(e) => warn!(appid, error = %e, "follow-up sweep: a look-up failed"),
                    }
                }
            }
        }
        if swept > 0 {
            info!(appid, swept, "follow-up sweep completed or queued look-ups");
        }
        if after != start {
            scan.save(after, now).await?;
        }
        Ok(swept)
    }
}
