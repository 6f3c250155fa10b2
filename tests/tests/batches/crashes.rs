//! Workers that die mid-send: neither a redelivered job nor a takeover sends again.

use serde_json::json;
use std::time::{Duration, Instant};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::clock::now_unix;
use wxpush_shared::queue::{Job, JobQueue};
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// A worker killed after WeChat accepted the message but before the outcome was written:
/// the redelivered job does not send again (a template message is resent with the same
/// `client_msg_id`, which WeChat dedupes; a customer-service message ends `unknown`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_wechat_accepted_does_not_resend() {
    let w = world(BatchConfig {
        concurrency: 1,
        ..test_config()
    })
    .await;
    w.add_users("k", 6).await;
    let tpl = w
        .create(
            OA,
            json!({"message": template("到货提醒"), "recipients": [{"openid": "k0"}, {"openid": "k1"}, {"openid": "k2"}]}),
        )
        .await;
    let cs = w
        .create(
            OA,
            json!({"message": custom("您好"), "recipients": [{"openid": "k3"}, {"openid": "k4"}, {"openid": "k5"}]}),
        )
        .await;
    // The fan-outs run; their chunk jobs are taken by hand.
    w.run_fanouts().await;
    let chunks: Vec<Job> = w.queue.drain().into_iter().map(|(j, _)| j).collect();
    assert_eq!(chunks.len(), 2);
    kill_each_worker_once_wechat_has_the_message(&w, &chunks).await;
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("k0"), Some(&1));
    assert_eq!(per_user.get("k3"), Some(&1));
    assert_eq!(per_user.values().sum::<usize>(), 2, "{per_user:?}");
    // SQS delivers the jobs again; the claims are held until the killed invocations' leases
    // end, then taken over.
    for job in chunks {
        w.queue.enqueue(&job).await.unwrap();
    }
    let report = w
        .drive(Drive {
            budget: Duration::from_secs(5),
            limit: Duration::from_secs(60),
            ..Drive::default()
        })
        .await
        .unwrap();
    assert!(report.drained, "{report:?}");
    let per_user = w.delivered().await;
    for u in ["k0", "k1", "k2", "k3", "k4", "k5"] {
        assert_eq!(per_user.get(u), Some(&1), "{u}: {per_user:?}");
    }
    let t = w.status(OA, &tpl).await;
    assert_eq!(
        (t["sent"].as_i64(), t["done"].as_bool()),
        (Some(3), Some(true)),
        "{t}"
    );
    let c = w.status(OA, &cs).await;
    assert_eq!(
        (
            c["sent"].as_i64(),
            c["unknown"].as_i64(),
            c["done"].as_bool()
        ),
        (Some(2), Some(1), Some(true)),
        "{c}"
    );
    assert_eq!(c["failures"][0]["recipient"], json!({"openid": "k3"}));
    assert_eq!(c["failures"][0]["status"], "unknown");
}

/// WeChat delivers, then its answer takes 3 s; each chunk's worker is killed once the
/// message to its first recipient (`k0`, `k3`) is delivered (before its client's timeout would have ended
/// the attempt).
async fn kill_each_worker_once_wechat_has_the_message(w: &World, chunks: &[Job]) {
    for path in [
        "/cgi-bin/message/template/send",
        "/cgi-bin/message/custom/send",
    ] {
        w.emulator
            .control(
                "/faults",
                json!({"path": path, "delay_ms": 3000, "after_delivery": true, "times": 1}),
            )
            .await;
    }
    for (job, first) in chunks.iter().zip(["k0", "k3"]) {
        let (runner, job) = (w.runner.clone(), job.clone());
        let task = tokio::spawn(async move {
            runner
                .run(&job, Instant::now() + Duration::from_secs(2))
                .await
        });
        // Killed as soon as WeChat has the message (its answer is 3 s away; the client's
        // timeout would end the attempt after 0.3 s).
        for _ in 0..300 {
            if w.delivered().await.contains_key(first) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let _ = task.await;
    }
}

/// A claim left `attempting` by a worker that died: a template message is resent with its
/// `client_msg_id` only while WeChat's dedupe can be relied on; later it ends `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_takeover_does_not_resend_a_template_message() {
    use wxpush_shared::send::service::{TEMPLATE_RESEND_WINDOW_SECS, body_hash};
    let w = world(test_config()).await;
    w.add_users("z", 2).await;
    let message = template("迟到的接管");
    let id = w
        .create(
            OA,
            json!({"message": message, "recipients": [{"openid": "z0"}, {"openid": "z1"}]}),
        )
        .await;
    w.run_fanouts().await;
    // Claims as a dead worker left them: z0 attempted 10 minutes ago, z1 30 s ago. A
    // recipient's claim is for the batch's message, keyed by the person it reaches.
    let now = now_unix();
    let meta = w.batch_meta(OA, &id).await;
    let Some(Attr::S(stored_message)) = meta.get("message") else {
        panic!("no message in {meta:?}")
    };
    let hash = body_hash(stored_message.as_bytes());
    for (openid, ago) in [("z0", TEMPLATE_RESEND_WINDOW_SECS + 60), ("z1", 30)] {
        let s = |v: &str| Attr::S(v.to_string());
        let op = Op::Set {
            key: ItemKey::batch_claim(OA, &id, &format!("{OA}:{openid}")),
            attrs: attrs([
                ("hash", s(&hash)),
                ("state", s("attempting")),
                (
                    "message_id",
                    s(&format!("msg_{:032x}", rand::random::<u128>())),
                ),
                ("version", Attr::N(2)),
                ("lease_until", Attr::N(now - 1)),
                ("created_at", Attr::N(now - ago - 1)),
                ("attempted_at", Attr::N(now - ago)),
                ("ttl", Attr::N(now + 86_400)),
            ]),
        };
        w.store.record(&[op], now).await.unwrap();
    }
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("z0"), None, "not resent after the window");
    assert_eq!(per_user.get("z1"), Some(&1), "resent within the window");
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(1), Some(1)),
        "{status}"
    );
    assert!(
        status["failures"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may have been delivered"),
        "{status}"
    );
}
