//! One person listed twice in a chunk (an openid and its unionid): the chunk sends to one
//! person at a time, so the second waits for the first's answer and replays it, and the
//! chunk ends in one run (not put back, finding the claim held, for the queue's retry delay).

use serde_json::json;
use std::time::{Duration, Instant};
use wxpush_tests::batch_world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_and_its_unionid_in_one_chunk_settle_in_one_run() {
    let w = world(test_config()).await;
    w.add_users("twice", 3).await;
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| (format!("twice{i}"), format!("Utwice{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    // Each person by openid and by unionid, side by side, so their sends start together.
    let recipients: Vec<_> = pairs
        .iter()
        .flat_map(|(o, u)| [json!({"openid": o}), json!({"unionid": u})])
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("两次"), "recipients": recipients}),
        )
        .await;
    w.run_fanouts().await;
    let chunks = w.queue.drain();
    assert_eq!(chunks.len(), 1, "one chunk");
    let (job, _) = &chunks[0];
    w.runner
        .run(job, Instant::now() + Duration::from_secs(20))
        .await
        .expect("the chunk ends in its first run");
    assert!(w.queue.drain().is_empty(), "nothing put back");
    let status = w.status(OA, &id).await;
    assert_eq!(
        (
            status["state"].as_str(),
            status["sent"].as_i64(),
            status["duplicates"].as_i64()
        ),
        (Some("done"), Some(3), Some(3)),
        "{status}"
    );
    let delivered = w.delivered().await;
    for (openid, _) in &pairs {
        assert_eq!(delivered.get(openid), Some(&1), "{openid}: {delivered:?}");
    }
}
