//! [`ForwardError`]: why a forwarding job or the outbox sweep must fail (and run again, or
//! go to the dead-letter queue).

use crate::queue::QueueError;
use crate::secrets::ConfigError;
use crate::store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ForwardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The apps to sweep could not be listed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Nothing can make an event of the row: it is kept, dead, for an operator.
    #[error("outbox row {key} of {appid} cannot be forwarded: {reason}")]
    Unreadable {
        appid: String,
        key: String,
        reason: String,
    },
    /// A redrive from the dead-letter queue met a sink that still fails.
    #[error("a dead event's redrive failed again: {0}")]
    RedriveFailed(String),
    /// The sink failed [`FORWARD_ATTEMPTS`](super::FORWARD_ATTEMPTS) times: the event is
    /// given up to the dead-letter queue.
    #[error("forwarding failed {attempts} times: {sink}")]
    GaveUp { attempts: u32, sink: String },
    /// The sink failed, and the job that retries it could not be queued.
    #[error("{sink}; and the retry could not be queued: {queue}")]
    RetryNotQueued { sink: String, queue: QueueError },
}
