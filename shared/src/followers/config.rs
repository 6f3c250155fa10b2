//! [`SyncConfig`]: how a follower sync paces itself, retries and hands over.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// `batchget` calls in flight at once.
    pub lookup_concurrency: usize,
    /// Followers looked up and stored between two checkpoints.
    pub checkpoint_every: usize,
    /// Stored accounts checked per sweep step.
    pub sweep_page: usize,
    /// Attempts per WeChat call when it fails with -1, 5xx or a timeout.
    pub attempts: u32,
    /// First backoff between attempts (doubled each time, plus jitter).
    pub backoff: Duration,
    /// How long a worker holds the run without checkpointing.
    pub lease: Duration,
    /// A running sync not written for this long (its worker died) may be resumed by a start.
    pub stale_after: Duration,
    /// A worker stops, checkpoints and queues a continuation when less than this is left.
    pub reserve: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            lookup_concurrency: 5,
            checkpoint_every: 2_000,
            sweep_page: 5_000,
            attempts: 4,
            backoff: Duration::from_millis(200),
            lease: Duration::from_secs(300),
            stale_after: Duration::from_secs(1_200),
            reserve: Duration::from_secs(90),
        }
    }
}
