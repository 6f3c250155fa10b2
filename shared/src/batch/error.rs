//! [`BatchJobError`]: why a batch job (fan-out, chunk, sweep) failed. The job runs again
//! (the queue delivers it again); every batch job is safe to run twice.

use crate::error::ApiError;
use crate::queue::QueueError;
use crate::store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BatchJobError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job queue refused a job.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The batch's app could not be read (its secrets, or it is gone).
    #[error(transparent)]
    App(#[from] ApiError),
    /// A job that is not what the batch worker was handed for.
    #[error("not a chunk job")]
    NotAChunkJob,
    /// The fan-out came before its batch was written; it runs again.
    #[error("batch {id} is still being created")]
    StillBeingCreated { id: String },
    /// The fan-out took more steps than any batch needs.
    #[error("fan-out of batch {id} did not finish")]
    FanoutUnfinished { id: String },
    /// A chunk's items are missing.
    #[error("chunk {chunk} of batch {id} is not written")]
    ChunkNotWritten { id: String, chunk: u32 },
    /// A chunk's recipients and progress do not match.
    #[error("chunk {chunk} of batch {id} is inconsistent")]
    ChunkInconsistent { id: String, chunk: u32 },
    /// A chunk's progress disappeared while it was being recorded.
    #[error("chunk {chunk} of batch {id} is gone")]
    ChunkGone { id: String, chunk: u32 },
    /// A chunk's progress could not be recorded after retries.
    #[error("could not record the progress of chunk {chunk} of batch {id}")]
    ProgressNotRecorded { id: String, chunk: u32 },
    /// The chunk failed too often and was given up: reported failed so the queue moves the
    /// job to its dead-letter queue.
    #[error("chunk {chunk} of batch {id} given up")]
    GivenUp { id: String, chunk: u32 },
    /// The batch's stored message is not JSON.
    #[error("batch {id}: stored message unreadable: {error}")]
    MessageUnreadable { id: String, error: String },
}
