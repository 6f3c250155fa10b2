//! [`FollowerSync::run`]: one worker invocation — it takes the run's lease, works through
//! chunks (pages, then the sweep), checkpoints after each, and hands over before its
//! deadline.

use super::lookup::Counts;
use super::{FollowerSync, Phase, RunState, SyncState};
use crate::clock::now_unix;
use crate::queue::{Job, QueueError};
use crate::store::StoreError;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;
use thiserror::Error;
use tracing::{info, warn};

/// Chunks one invocation works through at most (a bound; the deadline usually ends it first).
const MAX_CHUNKS_PER_RUN: usize = 10_000;

/// How one worker invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The run finished.
    Done,
    /// Out of time: checkpointed and queued a continuation.
    Continued,
    /// WeChat refused (quota, permissions...) or kept failing: the run is `failed`, resumable.
    Failed,
    /// Another worker holds the run (a duplicate delivery); nothing done.
    Busy,
    /// The job is for a run that is over or was replaced; nothing done.
    Stale,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Why a chunk stopped short.
pub(super) enum Stop {
    Store(StoreError),
    /// Someone else wrote the run (a restart, or a worker that took over an expired lease).
    LostLease,
    /// WeChat (or the token behind it) failed for good: the run fails with this message.
    Fail(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl FollowerSync {
    /// Works on run `run_id` of `appid` until it ends or `deadline` comes near (then it
    /// checkpoints and queues a continuation). Always does at least one chunk when it holds
    /// the run, so every invocation makes progress.
    pub async fn run(
        &self,
        appid: &str,
        run_id: &str,
        deadline: Instant,
    ) -> Result<RunEnd, RunError> {
        let Some(mut st) = self.load(appid).await? else {
            return Ok(RunEnd::Stale);
        };
        if st.run_id != run_id || st.state != RunState::Running {
            return Ok(RunEnd::Stale);
        }
        let now = now_unix();
        if st.lease_until > now {
            return Ok(RunEnd::Busy);
        }
        st.lease_until = now + self.config.lease.as_secs() as i64;
        if !self.save(appid, &mut st).await? {
            return Ok(RunEnd::Busy);
        }
        for _ in 0..MAX_CHUNKS_PER_RUN {
            let step = match st.phase {
                Phase::Pages => self.pages_chunk(appid, &mut st).await,
                Phase::Sweep => self.sweep_chunk(appid, &mut st).await,
            };
            match step {
                Ok(false) => {}
                Ok(true) => {
                    st.state = RunState::Done;
                    st.finished_at = now_unix();
                    st.lease_until = 0;
                    if !self.save(appid, &mut st).await? {
                        return Ok(RunEnd::Busy);
                    }
                    info!(
                        appid,
                        run_id,
                        followers = st.followers,
                        mapped = st.mapped,
                        without_unionid = st.without_unionid,
                        unsubscribed = st.unsubscribed,
                        errors = st.errors,
                        "follower sync done"
                    );
                    return Ok(RunEnd::Done);
                }
                Err(Stop::LostLease) => return Ok(RunEnd::Busy),
                Err(Stop::Store(e)) => {
                    // Free the run for the retry if the store lets us; the lease expires anyway.
                    let mut fresh = self.load(appid).await.ok().flatten().unwrap_or(st.clone());
                    if fresh.run_id == st.run_id && fresh.version == st.version {
                        fresh.lease_until = 0;
                        let _ = self.save(appid, &mut fresh).await;
                    }
                    return Err(e.into());
                }
                Err(Stop::Fail(message)) => {
                    warn!(appid, run_id, error = %message, "follower sync failed");
                    st.state = RunState::Failed;
                    st.last_error = message;
                    st.lease_until = 0;
                    self.save(appid, &mut st).await?;
                    return Ok(RunEnd::Failed);
                }
            }
            if Instant::now() + self.config.reserve >= deadline {
                break;
            }
        }
        // Out of time (or at the bound of chunks): free the run and queue its continuation.
        st.lease_until = 0;
        if !self.save(appid, &mut st).await? {
            return Ok(RunEnd::Busy);
        }
        let job = Job::FollowerSync {
            appid: appid.to_string(),
            run_id: run_id.to_string(),
        };
        self.queue.enqueue(&job).await?;
        Ok(RunEnd::Continued)
    }

    /// Checkpoints `st` with `counts` and `errors` added, renewing the lease.
    pub(super) async fn checkpoint(
        &self,
        appid: &str,
        st: &mut SyncState,
        counts: &Counts,
        errors: &AtomicI64,
    ) -> Result<(), Stop> {
        st.followers += counts.followers;
        st.mapped += counts.mapped;
        st.without_unionid += counts.without_unionid;
        st.unsubscribed += counts.unsubscribed;
        st.skipped += counts.skipped;
        st.errors += errors.swap(0, Ordering::Relaxed);
        st.lease_until = now_unix() + self.config.lease.as_secs() as i64;
        if self.save(appid, st).await? {
            Ok(())
        } else {
            Err(Stop::LostLease)
        }
    }
}
