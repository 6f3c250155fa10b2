//! A sync through pages and faults: resumed where it failed, and after a worker that died.

use crate::world::{SyncWorld, counters, test_config};
use serde_json::json;
use std::time::Duration;
use wxpush_shared::followers::{RunEnd, SyncConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_2500_followers_in_pages_through_a_fault_midway() {
    let w = SyncWorld::new(test_config()).await;
    // Pages of 1 000 (WeChat's are 10 000): three pages, as 25 000 followers would be.
    w.paging(1_000).await;
    w.add_followers(0..2_500).await;
    w.add_departed(50).await;

    let (status, started) = w.call("POST", None).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["state"], "running");
    assert_eq!(started["resumed"], false);

    // The first invocation has almost no time left: one page, then a continuation.
    assert_eq!(w.drive(1_000, 1).await, 1);
    let p = w.progress().await;
    assert_eq!(
        (p["state"].as_str(), p["followers"].as_i64()),
        (Some("running"), Some(1_000))
    );

    // Mid-way, WeChat fails twice (system busy) and once with a bare 503.
    let fault = "/cgi-bin/user/info/batchget";
    w.world
        .emulator
        .control("/faults", json!({"path": fault, "errcode": -1, "times": 2}))
        .await;
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": fault, "http_status": 503, "times": 1}),
        )
        .await;
    let invocations = w.drive(600_000, 20).await;
    assert_eq!(invocations, 1, "the rest fits in one invocation");

    let p = w.progress().await;
    assert_eq!(p["state"], "done", "{p}");
    assert_eq!(counters(&p), [2_500, 2_250, 250, 50, 0, 3]);
    assert_eq!(p["errors"], 3, "each failed attempt is counted");
    assert_eq!(p["total"], 2_500);
    w.assert_mapped(2_500, 50).await;

    let stats = w.stats().await;
    assert_eq!(stats["/cgi-bin/user/get"], 3, "{stats}");
    // 25 lookups of 100, the 3 failed attempts, one lookup of the 50 departed.
    assert_eq!(stats["/cgi-bin/user/info/batchget"], 29, "{stats}");
    assert_eq!(stats["/cgi-bin/stable_token"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_resumes_where_it_stopped() {
    let w = SyncWorld::new(test_config()).await;
    w.paging(1_000).await;
    w.add_followers(0..1_200).await;
    w.call("POST", None).await;
    w.drive(1_000, 1).await;
    assert_eq!(w.progress().await["followers"], 1_000);

    // WeChat keeps failing longer than the retries: the run fails, keeping its place.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info/batchget", "http_status": 502, "times": 40}),
        )
        .await;
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(p["state"], "failed", "{p}");
    assert!(
        p["last_error"].as_str().unwrap().contains("batchget"),
        "{p}"
    );
    assert_eq!(p["followers"], 1_000);
    assert!(p["errors"].as_i64().unwrap() >= 4, "{p}");
    let failed_calls = w.stats().await["/cgi-bin/user/info/batchget"]
        .as_i64()
        .unwrap();

    // The faults pass; a new start resumes the same run from page two.
    w.world.emulator.clear_faults().await;
    let (status, resumed) = w.call("POST", None).await;
    assert_eq!(status, 202, "{resumed}");
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["run_id"], p["run_id"]);
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(p["state"], "done", "{p}");
    assert_eq!(counters(&p), [1_200, 1_080, 120, 0, 0, 2]);
    assert_eq!(p["resumes"], 1);
    w.assert_mapped(1_200, 0).await;
    let stats = w.stats().await;
    // Page one once, page two before the failure and again after it.
    assert_eq!(stats["/cgi-bin/user/get"], 3, "{stats}");
    let after = stats["/cgi-bin/user/info/batchget"].as_i64().unwrap() - failed_calls;
    assert_eq!(after, 2, "only the 200 followers left were looked up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_page_loses_only_its_last_step() {
    let w = SyncWorld::new(SyncConfig {
        lease: Duration::from_secs(3),
        ..test_config()
    })
    .await;
    w.add_followers(0..3_000).await;
    let run_id = w.call("POST", None).await.1["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Slow lookups; the worker is killed (as a Lambda timeout would) after its first checkpoint.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info/batchget", "delay_ms": 300, "times": 30}),
        )
        .await;
    let far = std::time::Instant::now() + Duration::from_secs(600);
    let worker = {
        let (sync, oa, run_id) = (w.sync.clone(), w.oa.clone(), run_id.clone());
        tokio::spawn(async move { sync.run(&oa, &run_id, far).await })
    };
    let mut done = 0;
    for _ in 0..600 {
        done = w.progress().await["followers"].as_i64().unwrap();
        if done > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    assert!(
        worker.await.unwrap_err().is_cancelled(),
        "killed while running"
    );
    assert!((1_000..3_000).contains(&done), "{done}");

    // A redelivery while the dead worker's lease holds does nothing; after it, the run goes on.
    assert_eq!(w.sync.run(&w.oa, &run_id, far).await.unwrap(), RunEnd::Busy);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.sync.run(&w.oa, &run_id, far).await.unwrap(), RunEnd::Done);
    let p = w.progress().await;
    assert_eq!(counters(&p), [3_000, 2_700, 300, 0, 0, 1], "{p}");
    w.assert_mapped(3_000, 0).await;
    let stats = w.stats().await;
    assert_eq!(
        stats["/cgi-bin/user/get"], 2,
        "the page fetched again: {stats}"
    );
    let lookups = stats["/cgi-bin/user/info/batchget"].as_i64().unwrap();
    assert!(
        (30..=40).contains(&lookups),
        "at most one step looked up twice: {lookups}"
    );
}
