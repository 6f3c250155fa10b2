//! [`BatchConfig`]: how batches are cut into chunks, paced, paused, retried and flushed.

use std::time::Duration;
use thiserror::Error;

/// SQS's longest delivery delay.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Recipients per chunk (one job).
    pub chunk_size: usize,
    /// Sends in flight per chunk job.
    pub concurrency: usize,
    /// Messages per second per app, all workers together, for apps without `batch_rate`.
    pub default_rate: u32,
    /// How long 45011 (per-minute limit) pauses a batch at least.
    pub minute_pause: Duration,
    /// How long 45009 (daily quota) pauses a batch before it tries again.
    pub daily_pause: Duration,
    /// First delay before a chunk that failed on WeChat or the store runs again (doubled each
    /// time, at most SQS's 900 s).
    pub retry_backoff: Duration,
    /// Times a chunk is put back after failures before its unsent recipients are failed.
    pub max_retries: u32,
    /// A chunk job stops starting sends this long before its deadline.
    pub reserve: Duration,
    /// Outcomes recorded at least every this many sends…
    pub flush_every: usize,
    /// …and at least this often.
    pub flush_interval: Duration,
    /// How often a chunk job looks for a cancel or a pause.
    pub check_interval: Duration,
}

/// A setting of the environment [`BatchConfig::from_env`] cannot use.
#[derive(Debug, Error)]
pub enum BatchConfigError {
    #[error("{name} must be a whole number from 1 to {max}")]
    OutOfRange { name: &'static str, max: u32 },
}

/// The whole number from 1 to `max` in variable `name`, when it is set.
fn read_env(name: &'static str, max: u32) -> Result<Option<u32>, BatchConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .map(Some)
            .ok_or(BatchConfigError::OutOfRange { name, max }),
    }
}

impl BatchConfig {
    /// The defaults, with `WXPUSH_BATCH_RATE` (messages per second per app, for apps
    /// without their own `batch_rate`) and `WXPUSH_BATCH_CONCURRENCY` (sends in flight per
    /// chunk job) when set.
    pub fn from_env() -> Result<BatchConfig, BatchConfigError> {
        let mut config = BatchConfig::default();
        if let Some(rate) = read_env("WXPUSH_BATCH_RATE", crate::secrets::MAX_BATCH_RATE)? {
            config.default_rate = rate;
        }
        if let Some(n) = read_env("WXPUSH_BATCH_CONCURRENCY", 64)? {
            config.concurrency = n as usize;
        }
        Ok(config)
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            chunk_size: 500,
            concurrency: 8,
            default_rate: 100,
            minute_pause: Duration::from_secs(60),
            daily_pause: MAX_DELAY,
            retry_backoff: Duration::from_secs(30),
            max_retries: 8,
            reserve: Duration::from_secs(20),
            flush_every: 50,
            flush_interval: Duration::from_secs(2),
            check_interval: Duration::from_secs(2),
        }
    }
}
