//! The local queue's SQS-like semantics, and what survives reopening its file.

use super::*;

fn job(n: u32) -> Job {
    Job::CompleteFollower {
        appid: "wx1".into(),
        openid: format!("o{n}"),
    }
}

const LEASE: Duration = Duration::from_secs(60);

/// A database file of its own, removed when dropped.
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new() -> TempDb {
        TempDb(std::env::temp_dir().join(format!("wxpush-queue-{:x}.redb", rand::random::<u64>())))
    }
    fn open(&self) -> Arc<Database> {
        Arc::new(Database::create(&self.0).unwrap())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn taken_jobs_stay_stored_until_deleted() {
    let (queue, jobs) = LocalJobQueue::new();
    queue.enqueue_many(&[job(1), job(2), job(3)]).await.unwrap();
    let taken = jobs.take(2, LEASE).await.unwrap();
    let got: Vec<Job> = taken.deliveries.iter().map(|d| d.job.clone()).collect();
    assert_eq!(got, vec![job(1), job(2)], "oldest first, at most max");
    assert!(taken.deliveries.iter().all(|d| d.receive == 1 && !d.last));
    assert_eq!(taken.next_visible, Some(Duration::ZERO), "job 3 is visible");
    assert_eq!(jobs.counts().await.unwrap(), (3, 0));
    // Leased jobs are invisible: only job 3 is left to take.
    let rest = jobs.take(10, LEASE).await.unwrap();
    assert_eq!(rest.deliveries.len(), 1);
    assert_eq!(rest.deliveries[0].job, job(3));
    assert!(rest.next_visible.unwrap() > Duration::from_secs(50));
    for d in taken.deliveries.iter().chain(&rest.deliveries) {
        assert!(jobs.delete(d).await.unwrap());
    }
    assert_eq!(jobs.counts().await.unwrap(), (0, 0));
    let none = jobs.take(10, LEASE).await.unwrap();
    assert!(none.deliveries.is_empty() && none.next_visible.is_none());
}

#[tokio::test]
async fn delayed_jobs_wait_and_an_enqueue_wakes_the_worker() {
    let (queue, jobs) = LocalJobQueue::new();
    queue
        .enqueue_after(&job(1), Duration::from_millis(300))
        .await
        .unwrap();
    // The enqueue left a wake-up behind.
    tokio::time::timeout(Duration::from_secs(1), jobs.enqueued())
        .await
        .unwrap();
    let early = jobs.take(10, LEASE).await.unwrap();
    assert!(early.deliveries.is_empty());
    assert!(early.next_visible.unwrap() > Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let due = jobs.take(10, LEASE).await.unwrap();
    assert_eq!(due.deliveries.len(), 1);
}

#[tokio::test]
async fn failures_back_off_then_the_last_delivery_goes_dead() {
    let (queue, jobs) = LocalJobQueue::new();
    let jobs = jobs.with_retry_backoff(Duration::from_millis(20));
    queue.enqueue(&job(7)).await.unwrap();
    for receive in 1..=MAX_RECEIVES {
        let d = loop {
            let t = jobs.take(1, LEASE).await.unwrap();
            if let Some(d) = t.deliveries.into_iter().next() {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(d.receive, receive);
        assert_eq!(d.last, receive == MAX_RECEIVES);
        let failed = jobs.fail(&d, "boom").await.unwrap();
        if receive < MAX_RECEIVES {
            let backoff = Duration::from_millis(20 << (receive - 1));
            assert_eq!(failed, Failed::RetryIn(backoff));
        } else {
            assert_eq!(failed, Failed::Dead);
        }
    }
    assert_eq!(
        jobs.counts().await.unwrap(),
        (0, 1),
        "kept in the dead table"
    );
}

#[tokio::test]
async fn a_delivery_whose_lease_ended_cannot_settle_the_next_one() {
    let (queue, jobs) = LocalJobQueue::new();
    queue.enqueue(&job(1)).await.unwrap();
    let first = jobs
        .take(1, Duration::from_millis(1))
        .await
        .unwrap()
        .deliveries;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = jobs.take(1, LEASE).await.unwrap().deliveries;
    assert_eq!(second[0].receive, 2);
    assert!(!jobs.delete(&first[0]).await.unwrap());
    assert_eq!(jobs.fail(&first[0], "late").await.unwrap(), Failed::Stale);
    assert!(jobs.delete(&second[0]).await.unwrap());
    assert_eq!(jobs.counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn past_capacity_enqueues_are_refused_whole() {
    let db = Arc::new(
        Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap(),
    );
    let (queue, jobs) = LocalJobQueue::open_with_capacity(db, 3).unwrap();
    queue.enqueue_many(&[job(1), job(2)]).await.unwrap();
    let refused = queue.enqueue_many(&[job(3), job(4)]).await;
    assert!(matches!(refused, Err(QueueError::Unavailable(m)) if m.contains("full")));
    assert_eq!(jobs.counts().await.unwrap(), (2, 0));
    queue.enqueue(&job(3)).await.unwrap();
    assert!(queue.enqueue(&job(4)).await.is_err());
}

#[tokio::test]
async fn reopening_the_file_makes_held_jobs_visible_and_keeps_delays() {
    let file = TempDb::new();
    {
        let (queue, jobs) = LocalJobQueue::open(file.open()).unwrap();
        queue.enqueue(&job(1)).await.unwrap();
        queue
            .enqueue_after(&job(2), Duration::from_secs(600))
            .await
            .unwrap();
        let held = jobs.take(10, Duration::from_secs(3600)).await.unwrap();
        assert_eq!(held.deliveries.len(), 1);
        // The process "dies" here: nothing is settled.
    }
    let (queue, jobs) = LocalJobQueue::open(file.open()).unwrap();
    assert_eq!(jobs.counts().await.unwrap(), (2, 0));
    let again = jobs.take(10, LEASE).await.unwrap();
    assert_eq!(again.deliveries.len(), 1, "the delayed job still waits");
    assert_eq!(again.deliveries[0].job, job(1));
    assert_eq!(
        again.deliveries[0].receive, 1,
        "a cut-short delivery is not counted"
    );
    assert!(jobs.delete(&again.deliveries[0]).await.unwrap());
    // Ids go on after the stored ones: the new job does not take the delayed one's place.
    queue.enqueue(&job(3)).await.unwrap();
    let third = jobs.take(10, LEASE).await.unwrap();
    assert_eq!(third.deliveries.len(), 1);
    assert_eq!(third.deliveries[0].job, job(3));
    assert!(jobs.delete(&third.deliveries[0]).await.unwrap());
    let rest = jobs.take(10, LEASE).await.unwrap();
    assert!(rest.deliveries.is_empty());
    assert!(rest.next_visible.unwrap() > Duration::from_secs(500));
    assert_eq!(jobs.counts().await.unwrap(), (1, 0));
}

#[tokio::test]
async fn an_unreadable_job_goes_dead_instead_of_blocking_the_queue() {
    let (queue, jobs) = LocalJobQueue::new();
    queue.enqueue(&job(1)).await.unwrap();
    {
        let txn = queue.shared.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(JOBS).unwrap();
            let mut v = txn.open_table(VISIBLE).unwrap();
            let row = Stored {
                job: r#"{"job":"from_the_future"}"#.into(),
                visible_at: 0,
                receives: 0,
                leased: false,
                error: None,
            };
            write_row(&mut t, 99, &row).unwrap();
            v.insert((0, 99), ()).unwrap();
        }
        txn.commit().unwrap();
    }
    let taken = jobs.take(10, LEASE).await.unwrap();
    assert_eq!(taken.deliveries.len(), 1);
    assert_eq!(taken.deliveries[0].job, job(1));
    assert_eq!(jobs.counts().await.unwrap(), (1, 1));
}
