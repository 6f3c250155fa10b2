//! Two syncs at once, and a run nobody works on any more.

use crate::world::{SyncWorld, counters, test_config};
use serde_json::json;
use std::time::Duration;
use wxpush_shared::followers::SyncConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_at_once_one_runs_the_other_is_told() {
    let w = SyncWorld::new(test_config()).await;
    w.add_followers(0..3_000).await;
    let (a, b) = tokio::join!(w.call("POST", None), w.call("POST", None));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["error"]["code"], "sync_in_progress");
    // While it runs, a restart is refused too.
    let (status, _) = w.call("POST", Some(json!({"restart": true}))).await;
    assert_eq!(status, 409);

    // The same job delivered twice, to two workers at once: one works, one stands aside.
    let run_id = w.progress().await["run_id"].as_str().unwrap().to_string();
    let far = std::time::Instant::now() + Duration::from_secs(600);
    let (x, y) = tokio::join!(
        w.sync.run(&w.oa, &run_id, far),
        w.sync.run(&w.oa, &run_id, far)
    );
    let mut ends = [format!("{:?}", x.unwrap()), format!("{:?}", y.unwrap())];
    ends.sort();
    assert_eq!(ends, ["Busy", "Done"]);
    // The queued message is now stale: it changes nothing.
    w.drive(600_000, 3).await;
    let p = w.progress().await;
    assert_eq!(counters(&p), [3_000, 2_700, 300, 0, 0, 1]);
    w.assert_mapped(3_000, 0).await;
    assert_eq!(w.stats().await["/cgi-bin/user/info/batchget"], 30);

    // A finished sync: the next start is a new run, which counts everyone again.
    let (status, again) = w.call("POST", None).await;
    assert_eq!(status, 202);
    assert_ne!(again["run_id"].as_str(), Some(run_id.as_str()));
    assert_eq!(
        (again["followers"].as_i64(), again["resumed"].as_bool()),
        (Some(0), Some(false))
    );
    w.drive(600_000, 5).await;
    assert_eq!(counters(&w.progress().await), [3_000, 2_700, 300, 0, 0, 1]);
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_run_can_be_taken_over() {
    // Runs are stamped in whole seconds: 3 s keeps "fresh" fresh on a busy machine (1 s could
    // pass between two POSTs that land on either side of a second).
    let w = SyncWorld::new(SyncConfig {
        stale_after: Duration::from_secs(3),
        ..test_config()
    })
    .await;
    w.add_followers(0..10).await;
    // Started, but no worker ever picks it up (its job is lost with the queue, say).
    let (status, first) = w.call("POST", None).await;
    assert_eq!(status, 202);
    let (status, _) = w.call("POST", None).await;
    assert_eq!(status, 409, "fresh: still somebody's");
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    let (status, again) = w.call("POST", None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        (again["resumed"].as_bool(), &again["run_id"]),
        (Some(true), &first["run_id"])
    );
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(counters(&p), [10, 9, 1, 0, 0, 1], "{p}");
}
