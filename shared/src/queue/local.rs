//! [`LocalJobQueue`]: the job queue of `wxpush serve`, kept in the server's own redb file in
//! place of SQS, so jobs, their delays and their retries survive a crash or a restart
//! (`kill -9` loses nothing that was queued).
//!
//! It behaves like SQS:
//! - `enqueue` / `enqueue_after` / `enqueue_many` commit each job (its JSON) with the time it
//!   becomes visible before they return. Past [`LOCAL_QUEUE_CAPACITY`] stored jobs they
//!   refuse ([`QueueError::Unavailable`]; the route answers 503).
//! - The worker's side, [`LocalJobs`], takes visible jobs under a lease: a taken job stays
//!   stored, invisible until its lease ends, and counts one more receive.
//!   [`LocalJobs::delete`] ends a job that ran; [`LocalJobs::fail`] makes it visible again
//!   after a backoff (2, 4, 8, 16 s), or, when it failed its [`MAX_RECEIVES`]th receive (run
//!   as the queue's last delivery), moves it to the dead table (kept, logged).
//! - Opening the file again ([`LocalJobQueue::open`]) after the process died: the jobs it held
//!   are visible at once (a delivery cut short by the process's end does not count as a
//!   receive); delayed jobs keep their time.
//!
//! Tables: `queue_jobs` (id → [`Stored`] as JSON), `queue_visible` ((visible at, Unix ms; id)
//! → (), the index the worker reads in order), `queue_dead` (id → [`Stored`] with why).

use super::{Job, JobQueue, QueueError};
use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{error, warn};

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_jobs");
const VISIBLE: TableDefinition<(u64, u64), ()> = TableDefinition::new("queue_visible");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_dead");

/// Jobs stored at most in the local queue; one more is refused (the caller answers 503).
/// Jobs are small; this bounds the file, not work (a 100 000-recipient batch is 200 jobs).
pub const LOCAL_QUEUE_CAPACITY: usize = 65_536;
/// Receives of a job at most (SQS's `maxReceiveCount`): the last one runs as the last
/// delivery, and its failure moves the job to the dead table.
pub const MAX_RECEIVES: u32 = 5;

/// One stored job: its JSON and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    /// The job as `serde_json` writes a [`Job`].
    job: String,
    /// When it is visible (again), Unix ms; while leased, when the lease ends.
    visible_at: u64,
    /// Times a worker took it.
    receives: u32,
    /// Whether a worker holds it.
    leased: bool,
    /// Why it failed last (dead jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The producers' side: a [`JobQueue`] over the database. Clones share the database and the
/// worker's wake-up.
#[derive(Clone)]
pub struct LocalJobQueue {
    shared: Arc<Shared>,
}

/// The worker's side: takes visible jobs and settles them.
pub struct LocalJobs {
    shared: Arc<Shared>,
    retry_backoff: Duration,
}

struct Shared {
    db: Arc<Database>,
    /// The next job id (ids only grow; the dead table keeps the ids of its jobs).
    next_id: AtomicU64,
    /// Woken after every enqueue, so the worker need not poll for new jobs.
    wake: Notify,
    capacity: usize,
}

/// A job taken from the queue, with the receive it is.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub job: Job,
    id: u64,
    /// 1 for the first delivery.
    pub receive: u32,
    /// The last delivery: a failure now moves the job to the dead table.
    pub last: bool,
}

/// What one [`LocalJobs::take`] got: the jobs now leased, and when the next stored job
/// becomes visible (if any job is stored).
#[derive(Debug, Default)]
pub struct Taken {
    pub deliveries: Vec<Delivery>,
    pub next_visible: Option<Duration>,
}

/// What [`LocalJobs::fail`] did with the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Visible again after this long.
    RetryIn(Duration),
    /// Moved to the dead table.
    Dead,
    /// Not this delivery's any more (its lease ended and another delivery took it, or it
    /// is gone): left as it is.
    Stale,
}

fn now_ms() -> u64 {
    crate::clock::now_unix_millis().max(0) as u64
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("local queue: {e}"))
}

impl std::fmt::Debug for LocalJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalJobQueue").finish_non_exhaustive()
    }
}

impl LocalJobQueue {
    /// A queue in a database of its own in memory (gone with the process): benchmarks and
    /// tests that only need somewhere to put jobs.
    pub fn new() -> (LocalJobQueue, LocalJobs) {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database opens");
        LocalJobQueue::open(Arc::new(db)).expect("an empty in-memory queue opens")
    }

    /// The queue kept in `db` (shared with the embedded stores), and its worker's side. Jobs
    /// a process that died was running are made visible at once.
    pub fn open(db: Arc<Database>) -> Result<(LocalJobQueue, LocalJobs), QueueError> {
        LocalJobQueue::open_with_capacity(db, LOCAL_QUEUE_CAPACITY)
    }

    /// [`LocalJobQueue::open`], refusing past `capacity` stored jobs.
    pub fn open_with_capacity(
        db: Arc<Database>,
        capacity: usize,
    ) -> Result<(LocalJobQueue, LocalJobs), QueueError> {
        let next_id = recover(&db, now_ms())?;
        let shared = Arc::new(Shared {
            db,
            next_id: AtomicU64::new(next_id),
            wake: Notify::new(),
            capacity,
        });
        let jobs = LocalJobs {
            shared: shared.clone(),
            retry_backoff: Duration::from_secs(2),
        };
        Ok((LocalJobQueue { shared }, jobs))
    }

    /// Stores `jobs`, visible `delay` from now, in one transaction; refused as a whole past
    /// the capacity.
    async fn put(&self, jobs: &[Job], delay: Duration) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let texts = jobs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        let shared = self.shared.clone();
        let visible_at = now_ms() + delay.as_millis() as u64;
        blocking(move || {
            let txn = shared.db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(JOBS).map_err(unavailable)?;
                let stored = table.len().map_err(unavailable)? as usize;
                if stored + texts.len() > shared.capacity {
                    return Err(QueueError::Unavailable(format!(
                        "local queue is full ({stored} of {} jobs stored)",
                        shared.capacity
                    )));
                }
                let mut visible = txn.open_table(VISIBLE).map_err(unavailable)?;
                for job in texts {
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let row = Stored {
                        job,
                        visible_at,
                        receives: 0,
                        leased: false,
                        error: None,
                    };
                    write_row(&mut table, id, &row)?;
                    visible.insert((visible_at, id), ()).map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await?;
        self.shared.wake.notify_one();
        Ok(())
    }
}

#[async_trait]
impl JobQueue for LocalJobQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.put(std::slice::from_ref(job), Duration::ZERO).await
    }

    async fn enqueue_after(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        self.put(std::slice::from_ref(job), delay).await
    }

    async fn enqueue_many(&self, jobs: &[Job]) -> Result<(), QueueError> {
        self.put(jobs, Duration::ZERO).await
    }
}

impl LocalJobs {
    /// Failed jobs are visible again after `base`, doubled each receive (default 2 s).
    pub fn with_retry_backoff(mut self, base: Duration) -> LocalJobs {
        self.retry_backoff = base;
        self
    }

    /// Resolves after the next enqueue (or at once if one happened since the last wait).
    pub async fn enqueued(&self) {
        self.shared.wake.notified().await
    }

    /// Leases up to `max` visible jobs, oldest visible first, each for `lease`. A stored job
    /// that is no [`Job`] (unreadable JSON) goes to the dead table instead.
    pub async fn take(&self, max: usize, lease: Duration) -> Result<Taken, QueueError> {
        let shared = self.shared.clone();
        blocking(move || {
            let now = now_ms();
            if max == 0 || !any_visible(&shared.db, now)? {
                return Ok(Taken {
                    deliveries: Vec::new(),
                    next_visible: next_visible(&shared.db, now)?,
                });
            }
            let txn = shared.db.begin_write().map_err(unavailable)?;
            let deliveries = lease_visible(&txn, max, now, now + lease.as_millis() as u64)?;
            txn.commit().map_err(unavailable)?;
            Ok(Taken {
                deliveries,
                next_visible: next_visible(&shared.db, now)?,
            })
        })
        .await
    }

    /// The job of `delivery` ran: it is deleted (unless another delivery took it since).
    pub async fn delete(&self, delivery: &Delivery) -> Result<bool, QueueError> {
        let (shared, id, receive) = (self.shared.clone(), delivery.id, delivery.receive);
        blocking(move || {
            let txn = shared.db.begin_write().map_err(unavailable)?;
            let deleted = {
                let mut jobs = txn.open_table(JOBS).map_err(unavailable)?;
                match read_row(&jobs, id)? {
                    Some(row) if row.receives == receive => {
                        jobs.remove(id).map_err(unavailable)?;
                        let mut visible = txn.open_table(VISIBLE).map_err(unavailable)?;
                        visible.remove((row.visible_at, id)).map_err(unavailable)?;
                        true
                    }
                    _ => false,
                }
            };
            txn.commit().map_err(unavailable)?;
            Ok(deleted)
        })
        .await
    }

    /// The job of `delivery` failed with `error`: visible again after the backoff, or, on the
    /// last delivery, moved to the dead table.
    pub async fn fail(&self, delivery: &Delivery, error: &str) -> Result<Failed, QueueError> {
        let (shared, id, receive) = (self.shared.clone(), delivery.id, delivery.receive);
        let backoff = self.retry_backoff * (1u32 << receive.saturating_sub(1).min(10));
        let error: String = error.chars().take(1_000).collect();
        blocking(move || {
            let txn = shared.db.begin_write().map_err(unavailable)?;
            let outcome = {
                let mut jobs = txn.open_table(JOBS).map_err(unavailable)?;
                let mut visible = txn.open_table(VISIBLE).map_err(unavailable)?;
                match read_row(&jobs, id)? {
                    Some(mut row) if row.receives == receive => {
                        visible.remove((row.visible_at, id)).map_err(unavailable)?;
                        row.leased = false;
                        row.error = Some(error);
                        if receive >= MAX_RECEIVES {
                            jobs.remove(id).map_err(unavailable)?;
                            bury(&txn, id, &row)?;
                            Failed::Dead
                        } else {
                            row.visible_at = now_ms() + backoff.as_millis() as u64;
                            write_row(&mut jobs, id, &row)?;
                            visible
                                .insert((row.visible_at, id), ())
                                .map_err(unavailable)?;
                            Failed::RetryIn(backoff)
                        }
                    }
                    _ => Failed::Stale,
                }
            };
            txn.commit().map_err(unavailable)?;
            Ok(outcome)
        })
        .await
    }

    /// Jobs stored (waiting, delayed or leased) and jobs in the dead table.
    pub async fn counts(&self) -> Result<(u64, u64), QueueError> {
        let shared = self.shared.clone();
        blocking(move || {
            let txn = shared.db.begin_read().map_err(unavailable)?;
            let len = |def| match txn.open_table(def) {
                Ok(t) => t.len().map_err(unavailable),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(unavailable(e)),
            };
            Ok((len(JOBS)?, len(DEAD)?))
        })
        .await
    }
}

/// Runs a database step off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f).await.map_err(unavailable)?
}

fn read_row(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Stored>, QueueError> {
    match table.get(id).map_err(unavailable)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| unavailable(format!("job {id} unreadable: {e}"))),
    }
}

fn write_row(
    table: &mut redb::Table<u64, &'static [u8]>,
    id: u64,
    row: &Stored,
) -> Result<(), QueueError> {
    let bytes = serde_json::to_vec(row).map_err(unavailable)?;
    table.insert(id, bytes.as_slice()).map_err(unavailable)?;
    Ok(())
}

/// Keeps a job that will not run again in the dead table, and says so in the log.
fn bury(txn: &WriteTransaction, id: u64, row: &Stored) -> Result<(), QueueError> {
    let mut dead = txn.open_table(DEAD).map_err(unavailable)?;
    write_row(&mut dead, id, row)?;
    error!(
        job = %row.job,
        receives = row.receives,
        error = row.error.as_deref().unwrap_or(""),
        "background job given up: kept in the local queue's dead table"
    );
    Ok(())
}

/// Whether some stored job is visible at `now` (a read: no write when nothing is due).
fn any_visible(db: &Database, now: u64) -> Result<bool, QueueError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let visible = match txn.open_table(VISIBLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(unavailable(e)),
    };
    Ok(visible
        .first()
        .map_err(unavailable)?
        .is_some_and(|(k, _)| k.value().0 <= now))
}

/// How long from `now` until the first stored job is visible (zero: one is).
fn next_visible(db: &Database, now: u64) -> Result<Option<Duration>, QueueError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let visible = match txn.open_table(VISIBLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    };
    Ok(visible
        .first()
        .map_err(unavailable)?
        .map(|(k, _)| Duration::from_millis(k.value().0.saturating_sub(now))))
}

/// Leases up to `max` jobs visible at `now` until `until`.
fn lease_visible(
    txn: &WriteTransaction,
    max: usize,
    now: u64,
    until: u64,
) -> Result<Vec<Delivery>, QueueError> {
    let mut jobs = txn.open_table(JOBS).map_err(unavailable)?;
    let mut visible = txn.open_table(VISIBLE).map_err(unavailable)?;
    let due: Vec<(u64, u64)> = visible
        .range(..=(now, u64::MAX))
        .map_err(unavailable)?
        .take(max)
        .map(|e| e.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    let mut deliveries = Vec::with_capacity(due.len());
    for (at, id) in due {
        visible.remove((at, id)).map_err(unavailable)?;
        let raw = match jobs.get(id).map_err(unavailable)? {
            Some(bytes) => bytes.value().to_vec(),
            // An index entry without its job is left behind by nothing; skip it if met.
            None => continue,
        };
        let mut row = serde_json::from_slice::<Stored>(&raw).unwrap_or_else(|e| Stored {
            job: String::from_utf8_lossy(&raw).into_owned(),
            visible_at: now,
            receives: 0,
            leased: false,
            error: Some(format!("stored record unreadable: {e}")),
        });
        row.receives += 1;
        match serde_json::from_str::<Job>(&row.job) {
            Ok(job) => {
                row.leased = true;
                row.visible_at = until;
                write_row(&mut jobs, id, &row)?;
                visible.insert((until, id), ()).map_err(unavailable)?;
                deliveries.push(Delivery {
                    job,
                    id,
                    receive: row.receives,
                    last: row.receives >= MAX_RECEIVES,
                });
            }
            Err(e) => {
                let why = format!("not a job this version runs: {e}");
                row.error = Some(row.error.take().unwrap_or(why));
                jobs.remove(id).map_err(unavailable)?;
                bury(txn, id, &row)?;
            }
        }
    }
    Ok(deliveries)
}

/// At open: every job a process that died held is visible at `now`, its cut-short receive
/// not counted. Answers the next free id.
fn recover(db: &Database, now: u64) -> Result<u64, QueueError> {
    let txn = db.begin_write().map_err(unavailable)?;
    let next_id = {
        let mut jobs = txn.open_table(JOBS).map_err(unavailable)?;
        let mut visible = txn.open_table(VISIBLE).map_err(unavailable)?;
        let dead = txn.open_table(DEAD).map_err(unavailable)?;
        let mut held = Vec::new();
        for entry in jobs.iter().map_err(unavailable)? {
            let (id, bytes) = entry.map_err(unavailable)?;
            let id = id.value();
            match serde_json::from_slice::<Stored>(bytes.value()) {
                Ok(row) if row.leased => held.push((id, row)),
                Ok(_) => {}
                Err(e) => warn!(id, error = %e, "local queue: a stored job is unreadable"),
            }
        }
        for (id, mut row) in held {
            visible.remove((row.visible_at, id)).map_err(unavailable)?;
            row.leased = false;
            row.receives = row.receives.saturating_sub(1);
            row.visible_at = now;
            write_row(&mut jobs, id, &row)?;
            visible.insert((now, id), ()).map_err(unavailable)?;
        }
        let last = |k: Option<u64>, d: Option<u64>| k.max(d).map_or(1, |n| n + 1);
        last(
            jobs.last().map_err(unavailable)?.map(|(k, _)| k.value()),
            dead.last().map_err(unavailable)?.map(|(k, _)| k.value()),
        )
    };
    txn.commit().map_err(unavailable)?;
    Ok(next_id)
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
