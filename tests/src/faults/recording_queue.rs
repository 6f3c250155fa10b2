//! A jobs queue kept in memory, which refuses enqueues on demand.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wxpush_shared::queue::{Job, JobQueue, QueueError};

/// A queue that keeps its jobs in memory for the test to run, and fails the next
/// `fail_next` enqueues (as SQS would when throttled or unreachable).
#[derive(Default)]
pub struct RecordingQueue {
    jobs: Mutex<VecDeque<Job>>,
    fail_next: Mutex<u32>,
    /// Openids whose next follower job is refused once.
    fail_once: Mutex<std::collections::HashSet<String>>,
    pub refused: AtomicU64,
}

impl RecordingQueue {
    pub fn new() -> Arc<RecordingQueue> {
        Arc::new(RecordingQueue::default())
    }
    pub fn fail_next(&self, n: u32) {
        *self.fail_next.lock().unwrap() = n;
    }
    /// The next job about follower `openid` is refused, once.
    pub fn fail_once_for(&self, openid: &str) {
        self.fail_once.lock().unwrap().insert(openid.to_string());
    }
    /// Every job queued so far, oldest first; the queue is left empty.
    pub fn take(&self) -> Vec<Job> {
        self.jobs.lock().unwrap().drain(..).collect()
    }
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let targeted = match job {
            Job::CompleteFollower { openid, .. } => self.fail_once.lock().unwrap().remove(openid),
            _ => false,
        };
        {
            let mut fail = self.fail_next.lock().unwrap();
            if targeted || *fail > 0 {
                if !targeted {
                    *fail -= 1;
                }
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(QueueError::Unavailable(
                    "injected fault: ThrottlingException".into(),
                ));
            }
        }
        self.jobs.lock().unwrap().push_back(job.clone());
        Ok(())
    }
}
