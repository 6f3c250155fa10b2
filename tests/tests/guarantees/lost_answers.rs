//! WeChat's answer or the message record lost: the send answers what it knows, and never
//! resends blindly.

use crate::world::*;
use serde_json::json;
use std::time::Duration;
use wxpush_shared::clock::now_unix;
use wxpush_tests::faults::{Call, Fault};
use wxpush_tests::send_message as send;

#[tokio::test]
async fn timeouts_then_a_rejected_token_end_unknown_and_keep_the_key() {
    let w = world(400).await;
    // Three answers lost after WeChat delivered (each resend carries the same client_msg_id),
    // then the token is refused: the loop ends after a possibly delivered attempt.
    w.fault(json!({"path": TEMPLATE, "delay_ms": 900, "after_delivery": true, "times": 3}))
        .await;
    w.fault(json!({"path": TEMPLATE, "errcode": 40001})).await;
    let (status, body) = w.send(&w.oa, &template(), Some("order-7")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.record(&w.oa, &id).await["status"], "unknown");
    // A template: the answer says until when a retry resends it with the same
    // client_msg_id. The caller's retry does, WeChat dedupes, and the answer is `sent`.
    assert!(body["retry_until"].as_i64().unwrap() > now_unix(), "{body}");
    let (again, replay) = w.send(&w.oa, &template(), Some("order-7")).await;
    assert_eq!(
        (again, replay["id"].as_str()),
        (200, Some(id.as_str())),
        "{replay}"
    );
    assert_eq!(w.calls(TEMPLATE), 5);
    assert_eq!(w.delivered(&w.oa).await.len(), 1, "delivered once");
}

#[tokio::test]
async fn a_5xx_or_an_unreadable_200_after_delivery_is_never_resent_blindly() {
    let w = world(2000).await;
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1", "count": 3}),
        )
        .await;
    // A proxy answered 502 after WeChat acted: customer-service and subscribe messages are
    // `unknown`, not resent.
    for (appid, path, body) in [(&w.oa, CUSTOM, custom()), (&w.mp, SUBSCRIBE, subscribe())] {
        w.fault(json!({"path": path, "http_status": 502, "after_delivery": true}))
            .await;
        let (status, answer) = w.send(appid, &body, None).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some("unknown")),
            "{path}: {answer}"
        );
        assert_eq!(w.calls(path), 1, "{path} not resent");
        assert_eq!(w.delivered(appid).await.len(), 1, "{path}");
    }
    // An unreadable 200 is not `failed`: it may have been delivered.
    w.fault(json!({"path": CUSTOM, "http_status": 200, "after_delivery": true}))
        .await;
    let (status, answer) = w.send(&w.oa, &custom(), None).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("unknown")),
        "{answer}"
    );
    let id = answer["id"].as_str().unwrap();
    assert_eq!(w.record(&w.oa, id).await["status"], "unknown");
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // A template message is resent with its client_msg_id, which WeChat dedupes.
    w.fault(json!({"path": TEMPLATE, "http_status": 502, "after_delivery": true}))
        .await;
    let (status, answer) = w.send(&w.oa, &template(), None).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("sent")),
        "{answer}"
    );
    assert_eq!(w.calls(TEMPLATE), 2);
    let templates = w
        .delivered(&w.oa)
        .await
        .into_iter()
        .filter(|m| m["path"] == TEMPLATE)
        .count();
    assert_eq!(templates, 1, "the resend was deduped");
    // A 502 before anything happened (no after_delivery) is still `unknown` for a custom
    // message: wxpush cannot tell the two apart, so it never risks a second delivery.
    w.fault(json!({"path": CUSTOM, "http_status": 502})).await;
    let (status, _) = w.send(&w.oa, &custom(), None).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn an_accepted_send_whose_record_write_fails_answers_the_truth() {
    let w = world(2000).await;
    // The record write fails twice (throttled, then a conflict): retried, answered `sent`.
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        1,
    );
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("TransactionConflict"),
        0,
        1,
    );
    let (status, body) = w.send(&w.oa, &template(), Some("k-rec")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.record(&w.oa, &id).await["status"], "sent");

    // The store stays down after WeChat accepted, for the whole lease: the answer is what
    // a retry will answer (`unknown`: a customer-service message is never resent), with
    // WeChat's answer in it — not a 503 that would make the caller send again.
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        10_000,
    );
    let (status, body) = send(
        &w.svc,
        &w.oa,
        &custom(),
        Some("k-down"),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["wechat_answer"]["status"].as_str()
        ),
        (202, Some("unknown"), Some("sent")),
        "{body}"
    );
    w.faults.clear();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // The claim could not be finished: a retry after its lease finds what the earlier
    // holder may have done and does not send the custom message again.
    w.expire_lease(&w.oa, "k-down").await;
    let (status, body) = w.send(&w.oa, &custom(), Some("k-down")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "{body}"
    );
    assert_eq!(body["id"].as_str(), Some(id.as_str()), "the same message");
    assert_eq!(w.record(&w.oa, &id).await["status"], "unknown");
    assert_eq!(w.delivered(&w.oa).await.len(), 2, "not sent twice");

    // A write that committed but whose answer was lost is found by the retry.
    w.faults
        .script(Call::Record, "msg#", Fault::After("timeout"), 0, 1);
    let (status, body) = w.send(&w.oa, &template(), Some("k-lost")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.record(&w.oa, body["id"].as_str().unwrap()).await["status"],
        "sent"
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 3);
}
