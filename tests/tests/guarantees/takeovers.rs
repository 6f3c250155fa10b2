//! Sends killed mid-way, and late retries: a claim is taken over only where nothing can be
//! sent twice.

use crate::world::*;
use serde_json::{Value, json};
use std::time::Duration;
use wxpush_shared::clock::now_unix;
use wxpush_tests::faults::{Call, Fault};
use wxpush_tests::send_message as send;

#[tokio::test]
async fn a_send_killed_before_wechat_is_taken_over_after_its_lease() {
    let w = world(2000).await;
    w.tokens.get(&w.oa).await.unwrap();
    // The write that would move the claim to `attempting` is slow, and the invocation dies
    // during it: nothing reached WeChat.
    w.faults.script(
        Call::Record,
        "idem#",
        Fault::Delay(Duration::from_millis(5000)),
        1,
        1,
    );
    let svc = w.svc.clone();
    let oa = w.oa.clone();
    let killed = tokio::spawn(async move {
        send(
            &svc,
            &oa,
            &template(),
            Some("k-early"),
            Duration::from_secs(3),
        )
        .await
    });
    w.await_claim(&w.oa, "k-early", "in_progress").await;
    tokio::time::sleep(Duration::from_millis(200)).await; // into the slow write
    killed.abort();
    assert_eq!(
        w.claim_state(&w.oa, "k-early").await.as_deref(),
        Some("in_progress")
    );
    // While the lease holds, a retry is told to come back later.
    let (status, body) = w.send(&w.oa, &template(), Some("k-early")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_progress"))
    );
    // After it, the retry takes the claim over and sends, once.
    w.expire_lease(&w.oa, "k-early").await;
    let (status, body) = w.send(&w.oa, &template(), Some("k-early")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert_eq!(w.calls(TEMPLATE), 1);
    assert_eq!(w.delivered(&w.oa).await.len(), 1);
    assert_eq!(
        w.claim_state(&w.oa, "k-early").await.as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn a_send_killed_at_wechat_is_resent_only_where_wechat_dedupes() {
    let w = world(2000).await;
    // WeChat is slow and acts late; the invocation dies while waiting for it.
    for (path, key, body) in [(TEMPLATE, "k-tpl", template()), (CUSTOM, "k-cs", custom())] {
        w.fault(json!({"path": path, "delay_ms": 1200})).await;
        let (svc, oa, k, b) = (w.svc.clone(), w.oa.clone(), key.to_string(), body.clone());
        let killed =
            tokio::spawn(
                async move { send(&svc, &oa, &b, Some(&k), Duration::from_secs(10)).await },
            );
        // Killed once the request reached WeChat (which answers only after 1.2 s).
        let calls_before = w.calls(path);
        for _ in 0..500 {
            if w.calls(path) > calls_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        killed.abort();
        assert_eq!(
            w.claim_state(&w.oa, key).await.as_deref(),
            Some("attempting")
        );
        w.expire_lease(&w.oa, key).await;
        let (status, answer) = w.send(&w.oa, &body, Some(key)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // the late delivery lands
        let delivered: Vec<Value> = w
            .delivered(&w.oa)
            .await
            .into_iter()
            .filter(|m| m["path"] == path)
            .collect();
        assert_eq!(delivered.len(), 1, "{path}: delivered once");
        if path == TEMPLATE {
            // Resent with the same client_msg_id: WeChat deduped it.
            assert_eq!(
                (status, answer["status"].as_str()),
                (200, Some("sent")),
                "{answer}"
            );
            assert_eq!(w.calls(TEMPLATE), 2);
        } else {
            assert_eq!(
                (status, answer["status"].as_str()),
                (202, Some("unknown")),
                "{answer}"
            );
            assert_eq!(w.calls(CUSTOM), 1, "never resent");
        }
        // And the answer is kept for the next retry.
        let (again, replay) = w.send(&w.oa, &body, Some(key)).await;
        assert_eq!((again, &replay), (status, &answer));
    }
}

#[tokio::test]
async fn two_late_retries_of_an_expired_key_send_once() {
    let w = world(2000).await;
    // A key used a day ago (its TTL passed; DynamoDB has not deleted it yet).
    let first = w.send(&w.oa, &template(), Some("k-old")).await;
    assert_eq!(first.0, 200);
    w.set_claim_time(&w.oa, "k-old", "ttl", now_unix() - 10)
        .await;
    // Two retries read the expired claim at the same moment; the second acts on what it
    // read only after the first has claimed the key (a takeover must not trust a stale read).
    w.faults.script(
        Call::Get,
        "idem#",
        Fault::Staggered(2, Duration::from_millis(400)),
        0,
        2,
    );
    let body = template();
    let (a, b) = tokio::join!(
        w.send(&w.oa, &body, Some("k-old")),
        w.send(&w.oa, &body, Some("k-old"))
    );
    // One claims the key and sends; the other is told it is in progress, or (once the
    // first finished) gets the first one's answer replayed: the same message either way.
    match (a.0, b.0) {
        (200, 200) => assert_eq!(a.1["id"], b.1["id"], "one message: {a:?} {b:?}"),
        (200, 409) | (409, 200) => {}
        other => panic!("unexpected answers {other:?}: {a:?} {b:?}"),
    }
    assert_eq!(
        w.delivered(&w.oa).await.len(),
        2,
        "the first send and one of the retries"
    );
}

#[tokio::test]
async fn a_fence_that_finds_the_claim_taken_sends_nothing() {
    let w = world(2000).await;
    // The `in_progress` → `attempting` write finds another holder (this invocation outlived
    // its lease and was taken over): nothing is sent and nothing recorded.
    w.faults
        .script(Call::Record, "idem#", Fault::ConditionFailed, 1, 1);
    let (status, body) = w.send(&w.oa, &template(), Some("k-fence")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_progress")),
        "{body}"
    );
    assert_eq!(w.calls(TEMPLATE), 0);
    // A store failure at the same step: nothing sent, the key released for the retry.
    w.faults.script(
        Call::Record,
        "idem#",
        Fault::Before("ThrottlingException"),
        1,
        1,
    );
    let (status, body) = w.send(&w.oa, &custom(), Some("k-fence2")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    assert_eq!(w.calls(CUSTOM), 0);
    assert_eq!(
        w.claim_state(&w.oa, "k-fence2").await.as_deref(),
        Some("released")
    );
    let (status, _) = w.send(&w.oa, &custom(), Some("k-fence2")).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await.len(), 1);
    // The `attempting` write commits but its answer is lost: the claim, read back, shows it
    // is ours, and the message goes out (once) instead of ending a false `unknown` later.
    w.faults
        .script(Call::Record, "idem#", Fault::After("timeout"), 1, 1);
    let (status, body) = w.send(&w.oa, &custom(), Some("k-fence3")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
}
