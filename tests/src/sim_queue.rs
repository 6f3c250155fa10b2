//! An SQS stand-in for the batch tests and the batch benchmark: delivery delays, a
//! visibility timeout before a failed job comes back, receive counts and a dead-letter list,
//! duplicate deliveries of jobs that succeeded (SQS delivers at least once), and refusals —
//! run by N concurrent workers, as N Lambda instances would. Like Lambda, it kills a job at
//! its deadline (the future is dropped wherever it is: mid-send, mid-flush) and can kill
//! jobs at random moments before it (a crash); a killed job counts as failed, so SQS
//! delivers it again after the visibility timeout, or dead-letters it on its last receive.
//!
//! moto's SQS (used in `batches_moto.rs` with real SQS event JSON) applies one request at a
//! time and has no redrive here; this queue is for the faults and the scale.

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::{Job, JobQueue, QueueError};

struct Entry {
    at: Instant,
    job: Job,
    receives: u32,
}

#[derive(Default)]
pub struct SimQueue {
    entries: Mutex<Vec<Entry>>,
    refuse_next: AtomicU32,
    /// Jobs queued by the code under test (not redeliveries).
    pub queued: AtomicUsize,
}

/// How the workers treat the queue.
#[derive(Clone, Debug)]
pub struct Drive {
    pub workers: usize,
    /// Each invocation's time budget (the Lambda timeout).
    pub budget: Duration,
    /// A job that failed comes back after this.
    pub visibility: Duration,
    /// The queue's `maxReceiveCount`: the next failure dead-letters the job.
    pub max_receives: u32,
    /// The share of successful jobs delivered once more.
    pub duplicate_rate: f64,
    pub seed: u64,
    /// The drive gives up after this long.
    pub limit: Duration,
    /// The share of deliveries killed at a random moment within `kill_within` (besides
    /// every job still running at its deadline, which is always killed).
    pub kill_rate: f64,
    pub kill_within: Duration,
}

impl Default for Drive {
    fn default() -> Self {
        Drive {
            workers: 4,
            budget: Duration::from_secs(60),
            visibility: Duration::from_millis(200),
            max_receives: 5,
            duplicate_rate: 0.0,
            seed: 7,
            limit: Duration::from_secs(120),
            kill_rate: 0.0,
            kill_within: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Default)]
pub struct DriveReport {
    pub runs: usize,
    pub failures: usize,
    pub duplicates: usize,
    pub dead_lettered: Vec<Job>,
    /// Deliveries killed (at their deadline or at random).
    pub killed: usize,
    /// Whether the queue ran dry (else the limit ended the drive).
    pub drained: bool,
}

impl SimQueue {
    pub fn new() -> Arc<SimQueue> {
        Arc::new(SimQueue::default())
    }

    /// The next `n` enqueues are refused.
    pub fn refuse_next(&self, n: u32) {
        self.refuse_next.store(n, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every job waiting, due or not.
    pub fn jobs(&self) -> Vec<Job> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.job.clone())
            .collect()
    }

    /// Takes every waiting job out, due or not (a test then runs them by hand).
    pub fn drain(&self) -> Vec<(Job, Duration)> {
        let now = Instant::now();
        self.entries
            .lock()
            .unwrap()
            .drain(..)
            .map(|e| (e.job, e.at.saturating_duration_since(now)))
            .collect()
    }

    fn push(&self, job: Job, at: Instant, receives: u32) {
        self.entries
            .lock()
            .unwrap()
            .push(Entry { at, job, receives });
    }

    /// The earliest due job, taken out.
    fn take_due(&self) -> Option<Entry> {
        let mut entries = self.entries.lock().unwrap();
        let now = Instant::now();
        let i = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.at <= now)
            .min_by_key(|(_, e)| e.at)
            .map(|(i, _)| i)?;
        Some(entries.swap_remove(i))
    }

    /// Runs jobs with `runner` until the queue is empty and every worker idle, or the limit.
    pub async fn drive(self: &Arc<Self>, runner: Arc<JobRunner>, drive: Drive) -> DriveReport {
        let report = Arc::new(Mutex::new(DriveReport::default()));
        let busy = Arc::new(AtomicUsize::new(0));
        let end = Instant::now() + drive.limit;
        let mut workers = Vec::new();
        for w in 0..drive.workers.max(1) {
            let (queue, runner, report, busy, drive) = (
                self.clone(),
                runner.clone(),
                report.clone(),
                busy.clone(),
                drive.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(drive.seed + w as u64);
                while Instant::now() < end {
                    busy.fetch_add(1, Ordering::SeqCst);
                    let Some(entry) = queue.take_due() else {
                        busy.fetch_sub(1, Ordering::SeqCst);
                        if queue.is_empty() && busy.load(Ordering::SeqCst) == 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let receives = entry.receives + 1;
                    let last = receives >= drive.max_receives;
                    // Lambda's end of the invocation, or a crash before it.
                    let kill_at = if rng.random_bool(drive.kill_rate) {
                        drive.budget.min(Duration::from_micros(
                            rng.random_range(0..drive.kill_within.as_micros().max(1) as u64),
                        ))
                    } else {
                        drive.budget
                    };
                    let run = runner.run_delivery(&entry.job, Instant::now() + drive.budget, last);
                    let (result, killed) = match tokio::time::timeout(kill_at, run).await {
                        Ok(result) => (result.map_err(|e| e.to_string()), false),
                        Err(_) => (Err("killed".to_string()), true),
                    };
                    {
                        let mut r = report.lock().unwrap();
                        r.runs += 1;
                        r.killed += usize::from(killed);
                        match &result {
                            Err(_) if last => r.dead_lettered.push(entry.job.clone()),
                            Err(_) => {
                                r.failures += 1;
                                queue.push(
                                    entry.job.clone(),
                                    Instant::now() + drive.visibility,
                                    receives,
                                );
                            }
                            Ok(()) if rng.random_bool(drive.duplicate_rate) => {
                                r.duplicates += 1;
                                queue.push(entry.job.clone(), Instant::now(), receives);
                            }
                            Ok(()) => {}
                        }
                    }
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let mut r = std::mem::take(&mut *report.lock().unwrap());
        r.drained = self.is_empty();
        r
    }
}

#[async_trait]
impl JobQueue for SimQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.enqueue_after(job, Duration::ZERO).await
    }

    async fn enqueue_after(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let refused = self
            .refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(QueueError::Unavailable(
                "injected fault: ThrottlingException".into(),
            ));
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.push(job.clone(), Instant::now() + delay, 0);
        Ok(())
    }
}
