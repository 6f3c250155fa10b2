//! A recipient's claim: one per person, replaced by a real outcome after a give-up, and
//! living as long as its batch (paths 5, 6 and 7).

use serde_json::json;
use std::time::{Duration, Instant};
use wxpush_shared::send::service::MESSAGE_TTL_SECS;
use wxpush_shared::store::ItemRead;
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// Path 5: an openid and its own unionid in one batch are one person. Before: two claims,
/// two messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_listed_twice_gets_one_message() {
    let w = world(test_config()).await;
    w.add_users("p", 3).await;
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| (format!("p{i}"), format!("Up{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    for message in [template("一人一条"), custom("一人一条")] {
        let id = w
            .create(
                OA,
                json!({"message": message, "recipients": [
                    {"openid": "p0"}, {"unionid": "Up0"}, {"unionid": "Up1"}, {"openid": "p1"}, {"openid": "p2"}
                ]}),
            )
            .await;
        assert!(w.drive(Drive::default()).await.unwrap().drained);
        let status = w.status(OA, &id).await;
        assert_eq!(status["sent"], 3, "{status}");
        assert_eq!(status["duplicates"], 2, "{status}");
        assert_eq!(status["state"], "done", "{status}");
    }
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("p0"), Some(&2), "one template and one custom");
    assert_eq!(per_user.get("p1"), Some(&2));
}

/// Path 6: a chunk given up by one run (its last delivery) while another run still sends:
/// the real outcome replaces the give-up, and its failure row goes with it. Before: the
/// "not sent" row stayed in `failures` while the counts said sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_give_up_replaced_by_a_real_send_leaves_no_failure_row() {
    let mut config = test_config();
    config.concurrency = 1;
    config.flush_interval = Duration::from_secs(30);
    let w = world(config).await;
    w.add_users("g", 2).await;
    let id = w
        .create(
            OA,
            json!({"message": template("并发"), "recipients": [{"openid": "g0"}, {"openid": "g1"}]}),
        )
        .await;
    w.run_fanouts().await;
    let job = w.queue.drain().remove(0).0;
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 3}),
        )
        .await;
    let runner = w.runner.clone();
    let slow_job = job.clone();
    let slow = tokio::spawn(async move {
        runner
            .run_delivery(&slow_job, Instant::now() + Duration::from_secs(20), false)
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A run of the same chunk past its retries gives up what it finds unsent.
    let gave_up = w
        .runner
        .run_delivery(
            &job.with_attempt(test_config().max_retries + 1),
            Instant::now() + Duration::from_secs(20),
            false,
        )
        .await;
    assert!(
        gave_up.is_err(),
        "a given-up chunk goes to the dead-letter queue"
    );
    let given_up = w.status(OA, &id).await;
    assert!(
        given_up["failed"].as_i64() >= Some(1),
        "given up: {given_up}"
    );
    slow.await.unwrap().unwrap();
    let status = w.status(OA, &id).await;
    let listed = status["failures"].as_array().unwrap().len() as i64;
    let counted = status["failed"].as_i64().unwrap() + status["unknown"].as_i64().unwrap();
    assert_eq!(
        listed, counted,
        "failures listed = failed + unknown: {status}"
    );
    assert_eq!(status["failed"], 0, "sent after the give-up: {status}");
    assert_eq!(w.delivered().await.len(), 2);
}

/// Path 7: a recipient's claim lives as long as its batch. Before: 24 hours, after which a
/// slow or paused batch sent an unflushed recipient again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_claims_live_as_long_as_the_batch() {
    let w = world(test_config()).await;
    w.add_users("c", 1).await;
    let id = w
        .create(
            OA,
            json!({"message": template("长寿"), "recipients": [{"openid": "c0"}]}),
        )
        .await;
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let meta = w.batch_meta(OA, &id).await;
    let claims = w.store.query(&format!("bclaim#{OA}#{id}")).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert!(
        claims[0].1.num("ttl").unwrap_or(0)
            >= meta.num("created_at").unwrap_or(0) + MESSAGE_TTL_SECS,
        "claim ttl {} < the batch's life",
        claims[0].1.num("ttl").unwrap_or(0)
    );
}
