//! Background work that outlives one request: [`Job`]s go through a [`JobQueue`] — SQS on
//! AWS (the `batch-worker` Lambda consumes it), [`LocalJobQueue`] in `wxpush serve` (kept in
//! the server's redb file, see `queue/local.rs`).

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod local;
pub use local::{
    Delivery, Failed, LOCAL_QUEUE_CAPACITY, LocalJobQueue, LocalJobs, MAX_RECEIVES, Taken,
};

/// One unit of background work. Serialized as the SQS message body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Continue the follower sync `run_id` of official account `appid` from its stored cursor.
    FollowerSync { appid: String, run_id: String },
    /// Look up the unionid of a follower a callback recorded without one (`user/info`).
    CompleteFollower { appid: String, openid: String },
    /// Queue the chunk jobs of batch `batch_id` (and, for `"audience": "followers"`, write
    /// its chunks from the follower directory first), continuing from the stored cursor.
    BatchFanout { appid: String, batch_id: String },
    /// Send one chunk of batch `batch_id`. `attempt` counts the times it was put back after
    /// WeChat or the store failed (not pauses, not continuations).
    BatchChunk {
        appid: String,
        batch_id: String,
        chunk: u32,
        #[serde(default)]
        attempt: u32,
    },
    /// Forward the recorded callback event whose outbox row is `key` (its dedupe key) to the
    /// event sink, then delete the row. `attempt` counts earlier failed deliveries.
    ForwardEvent {
        appid: String,
        key: String,
        #[serde(default)]
        attempt: u32,
    },
    /// Queue a [`Job::ForwardEvent`] for every outbox row that lost its job (scheduled).
    SweepOutbox,
}

impl Job {
    /// The same job, `attempt` counted once more (a chunk put back after a failure).
    pub fn retried(&self) -> Job {
        match self {
            Job::BatchChunk { attempt, .. } => self.with_attempt(attempt + 1),
            other => other.clone(),
        }
    }

    /// The same job with its retry count set to `attempt` (chunk jobs; others unchanged).
    pub fn with_attempt(&self, attempt: u32) -> Job {
        match self {
            Job::BatchChunk {
                appid,
                batch_id,
                chunk,
                ..
            } => Job::BatchChunk {
                appid: appid.clone(),
                batch_id: batch_id.clone(),
                chunk: *chunk,
                attempt,
            },
            other => other.clone(),
        }
    }
}

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("could not queue the job: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
    /// Queues `job` to be delivered no sooner than `delay` from now (at most 900 s, SQS's
    /// limit). The default delivers at once.
    async fn enqueue_after(&self, job: &Job, delay: std::time::Duration) -> Result<(), QueueError> {
        let _ = delay;
        self.enqueue(job).await
    }
    /// Queues every job of `jobs` (SQS: `SendMessageBatch`, ten a call). On `Err` some may
    /// have been queued: callers queue again, and every job is safe to run twice.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<(), QueueError> {
        for job in jobs {
            self.enqueue(job).await?;
        }
        Ok(())
    }
}

/// SQS: the message body is the job as JSON.
#[derive(Clone, Debug)]
pub struct SqsJobQueue {
    client: crate::aws::SdkClient<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl SqsJobQueue {
    pub fn new(
        client: impl Into<crate::aws::SdkClient<aws_sdk_sqs::Client>>,
        queue_url: impl Into<String>,
    ) -> SqsJobQueue {
        SqsJobQueue {
            client: client.into(),
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.enqueue_after(job, std::time::Duration::ZERO).await
    }

    async fn enqueue_after(&self, job: &Job, delay: std::time::Duration) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(job).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_delay_seconds((!delay.is_zero()).then(|| delay.as_secs().min(900) as i32))
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }

    async fn enqueue_many(&self, jobs: &[Job]) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for group in jobs.chunks(10) {
            let mut entries = Vec::with_capacity(group.len());
            for (i, job) in group.iter().enumerate() {
                let body = serde_json::to_string(job)
                    .map_err(|e| QueueError::Unavailable(e.to_string()))?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))?,
                );
            }
            // Entries SQS did not take are sent once more, then reported.
            for attempt in 0..2 {
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await
                    .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 1 {
                    return Err(QueueError::Unavailable(format!(
                        "SQS refused {} of {} jobs: {}",
                        failed.len(),
                        group.len(),
                        out.failed()
                            .first()
                            .map(|f| f.code().to_string())
                            .unwrap_or_default()
                    )));
                }
                entries.retain(|e| failed.contains(&e.id()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_json_shape() {
        let job = Job::FollowerSync {
            appid: "wx1".into(),
            run_id: "r1".into(),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(
            text,
            r#"{"job":"follower_sync","appid":"wx1","run_id":"r1"}"#
        );
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        assert!(serde_json::from_str::<Job>(r#"{"job":"other"}"#).is_err());
        // What the outbox sweep's schedule puts on the queue (template.yaml).
        assert_eq!(
            serde_json::from_str::<Job>(r#"{"job":"sweep_outbox"}"#).unwrap(),
            Job::SweepOutbox
        );
    }
}
