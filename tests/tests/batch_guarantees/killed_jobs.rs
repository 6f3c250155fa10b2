//! Path 3: jobs killed at any moment and dead-lettered; the sweep finds what no job will run
//! again.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_shared::clock::now_unix;
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// Drives the queue, then sweeps as the schedule would `round` hours later (every job the
/// drive started has ended by then), until the batch is done or `rounds` run out.
async fn drive_and_sweep(w: &World, id: &str, drive: Drive, rounds: usize) -> (Value, usize) {
    let mut killed = 0;
    for round in 1..=rounds {
        let report = w.drive(drive.clone()).await.unwrap();
        killed += report.killed;
        let status = w.status(OA, id).await;
        if status["state"] == "done" {
            return (status, killed);
        }
        w.batches
            .sweep(now_unix() + 3_600 * round as i64)
            .await
            .unwrap();
    }
    (w.status(OA, id).await, killed)
}

/// Path 3: every job of a 2 000-recipient batch may be killed at a random moment (mid-send,
/// mid-flush) or at its deadline, and dead-lettered on its second delivery. The sweep finds
/// what no job will run again. Before: the batch stayed `running` with recipients never
/// sent and never failed (nothing requeued a dead-lettered fan-out or chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_killed_at_every_step_and_dead_lettered_still_reach_everyone_once() {
    let mut config = test_config();
    config.chunk_size = 250;
    config.concurrency = 16;
    let w = world(config).await;
    let n = 2_000;
    w.add_users("k", n).await;
    let recipients: Vec<Value> = (0..n).map(|i| json!({"openid": format!("k{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("杀不死"), "recipients": recipients}),
        )
        .await;
    let drive = Drive {
        workers: 6,
        budget: Duration::from_secs(2),
        visibility: Duration::from_millis(100),
        max_receives: 2,
        kill_rate: 0.5,
        kill_within: Duration::from_millis(400),
        limit: Duration::from_secs(30),
        ..Drive::default()
    };
    let (status, killed) = drive_and_sweep(&w, &id, drive, 12).await;
    let per_user = w.delivered().await;
    let twice = per_user.values().filter(|&&c| c > 1).count();
    let missing = (0..n)
        .filter(|i| !per_user.contains_key(&format!("k{i}")))
        .count();
    println!(
        "batch kill storm: {n} recipients, {killed} deliveries killed; sent {} unknown {} failed {}; missing {missing}; twice {twice}",
        status["sent"], status["unknown"], status["failed"]
    );
    assert!(killed >= 5, "the harness killed jobs ({killed})");
    assert_eq!(status["state"], "done", "state {}", status["state"]);
    assert_eq!(status["queued"], 0);
    assert_eq!(twice, 0, "nobody got two messages");
    // A recipient killed mid-send of a template is resent with its client_msg_id while
    // WeChat remembers it: everyone got the message, and it counts as sent.
    assert_eq!(missing, 0, "everyone got the message");
    assert_eq!(status["sent"], n, "sent {}", status["sent"]);
}
