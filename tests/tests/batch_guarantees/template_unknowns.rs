//! Path 4 in batches: a template's unknown goes back to its chunk while WeChat dedupes its
//! `client_msg_id`.

use serde_json::{Value, json};
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// A batch world whose sends go one at a time (and, with [`one_worker`], one chunk at a
/// time), so WeChat's ordered faults land on a few recipients (each send retries 4 times
/// itself) instead of being spread thin.
async fn one_at_a_time() -> World {
    let mut config = test_config();
    config.concurrency = 1;
    world(config).await
}

fn one_worker() -> Drive {
    Drive {
        workers: 1,
        ..Drive::default()
    }
}

/// Path 4: WeChat answers 50 × -1, then 20 × HTTP 503, then 10 × 502 after delivering.
/// Before: 15 template recipients ended `unknown` and some never got the message. A
/// template's unknown goes back to the chunk while WeChat dedupes its client_msg_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_recipients_are_not_left_unknown_while_wechat_dedupes() {
    let mut config = test_config();
    config.concurrency = 2;
    let w = world(config).await;
    let n = 1_000;
    w.add_users("t", n).await;
    for fault in [
        json!({"errcode": -1, "times": 50}),
        json!({"http_status": 503, "times": 20}),
        json!({"http_status": 502, "after_delivery": true, "times": 10}),
    ] {
        let mut f = fault;
        f["path"] = json!("/cgi-bin/message/template/send");
        w.emulator.control("/faults", f).await;
    }
    let recipients: Vec<Value> = (0..n).map(|i| json!({"openid": format!("t{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("去重窗口"), "recipients": recipients}),
        )
        .await;
    let report = w.drive(one_worker()).await.unwrap();
    assert!(report.drained);
    let status = w.status(OA, &id).await;
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), n, "everyone got it: {status}");
    assert!(per_user.values().all(|&c| c == 1), "once each");
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(n as i64), Some(0)),
        "{status}"
    );
    assert_eq!(status["state"], "done");
}

/// Path 4, the smallest case: every attempt of the first recipient's send is delivered and
/// answered 502, so the send ends `unknown` with `retry_until`; the chunk puts it back and
/// its resend is deduped. Before: `unknown` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_unknown_goes_back_to_its_chunk_and_ends_sent() {
    let w = one_at_a_time().await;
    w.add_users("v", 5).await;
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "http_status": 502, "after_delivery": true, "times": 6}),
        )
        .await;
    let recipients: Vec<Value> = (0..5).map(|i| json!({"openid": format!("v{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("回到分块"), "recipients": recipients}),
        )
        .await;
    assert!(w.drive(one_worker()).await.unwrap().drained);
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(5), Some(0)),
        "{status}"
    );
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 5);
    assert!(per_user.values().all(|&c| c == 1), "{per_user:?}");
}
