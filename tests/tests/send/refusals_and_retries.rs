//! WeChat's refusals mapped to clear codes; idempotency keys; a rejected token refreshed
//! once; late answers and busy storms never sending twice.

use crate::{World, subscribe, template, world};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn wechat_refusals_map_to_clear_codes() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    w.user(&w.oa, "gone", json!({"subscribed": false})).await;
    let (status, body) = w.send(&w.oa, template(json!({"openid": "nobody"}))).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (422, Some("invalid_recipient"), Some(40003))
    );
    let (status, body) = w.send(&w.oa, template(json!({"openid": "gone"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_following"))
    );
    for (errcode, status, code) in [
        (40037, 422, "invalid_template"),
        (47003, 422, "invalid_data"),
        (45009, 429, "wechat_quota_exceeded"),
        (45011, 429, "wechat_quota_exceeded"),
        (48001, 403, "api_unauthorized"),
    ] {
        w.fault(json!({"path": "/cgi-bin/message/template/send", "errcode": errcode}))
            .await;
        let (got, body) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
        assert_eq!(
            (
                got,
                body["error"]["code"].as_str(),
                body["error"]["wechat_errcode"].as_i64()
            ),
            (status, Some(code), Some(errcode)),
            "{errcode}"
        );
    }
    assert!(w.delivered(&w.oa).await.is_empty());
}

#[tokio::test]
async fn idempotency_key_replays_conflicts_and_in_flight() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    let body = template(json!({"openid": "fan"}));
    let first = w
        .send_with(&w.oa, &body, Some("order-1001"), Duration::from_secs(20))
        .await;
    let again = w
        .send_with(&w.oa, &body, Some("order-1001"), Duration::from_secs(20))
        .await;
    assert_eq!(first.0, 200);
    assert_eq!(first, again, "the retry gets the first result");
    assert_eq!(
        w.delivered(&w.oa).await.len(),
        1,
        "and nothing is sent twice"
    );
    let mut other = body.clone();
    other["data"]["thing1"]["value"] = json!("另一条");
    let (status, resp) = w
        .send_with(&w.oa, &other, Some("order-1001"), Duration::from_secs(20))
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    // While the first is still at WeChat, a retry is told so and sends nothing.
    w.fault(json!({"path": "/cgi-bin/message/template/send", "delay_ms": 400}))
        .await;
    let slow = w.send_with(&w.oa, &body, Some("order-1002"), Duration::from_secs(20));
    let retry = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.send_with(&w.oa, &body, Some("order-1002"), Duration::from_secs(20))
            .await
    };
    let (slow, retry) = tokio::join!(slow, retry);
    assert_eq!(slow.0, 200, "{:?}", slow.1);
    assert_eq!(
        (retry.0, retry.1["error"]["code"].as_str()),
        (409, Some("in_progress"))
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    let (status, _) = w
        .send_with(
            &w.oa,
            &body,
            Some(&"k".repeat(129)),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_the_message_sent_once() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    assert_eq!(
        w.send(&w.oa, template(json!({"openid": "fan"}))).await.0,
        200
    );
    w.world
        .emulator
        .control("/tokens/invalidate", json!({"appid": w.oa}))
        .await;
    let (status, body) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.calls("/cgi-bin/stable_token"), 2, "one refresh");
    assert_eq!(w.calls("/cgi-bin/message/template/send"), 3, "one retry");
    assert_eq!(w.delivered(&w.oa).await.len(), 2, "each message once");
}

#[tokio::test]
async fn late_answers_and_busy_storms_never_duplicate() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    w.user(&w.mp, "mpuser", json!({})).await;
    a_lost_template_answer_is_resent_and_deduped(&w).await;
    a_lost_subscribe_answer_is_unknown_and_never_resent(&w).await;
    busy_storms_are_retried_then_release_the_key(&w).await;
}

async fn a_lost_template_answer_is_resent_and_deduped(w: &World) {
    // Template: the answer is lost after delivery; the resend carries the same client_msg_id.
    w.fault(json!({"path": "/cgi-bin/message/template/send", "delay_ms": 1500}))
        .await;
    let (status, body) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert_eq!(w.calls("/cgi-bin/message/template/send"), 2);
    assert_eq!(
        w.delivered(&w.oa).await.len(),
        1,
        "WeChat deduped the resend"
    );
}

async fn a_lost_subscribe_answer_is_unknown_and_never_resent(w: &World) {
    // Subscribe: no dedupe at WeChat, so no resend: recorded `unknown`.
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1", "count": 5}),
        )
        .await;
    w.fault(json!({"path": "/cgi-bin/message/subscribe/send", "delay_ms": 1500}))
        .await;
    let (status, body) = w.send(&w.mp, subscribe(json!({"openid": "mpuser"}))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "{body}"
    );
    assert_eq!(w.calls("/cgi-bin/message/subscribe/send"), 1, "not resent");
    assert_eq!(
        w.svc
            .sender
            .message(&w.mp, body["id"].as_str().unwrap())
            .await
            .unwrap()["status"],
        "unknown"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(w.delivered(&w.mp).await.len(), 1);
}

async fn busy_storms_are_retried_then_release_the_key(w: &World) {
    // -1 three times: retried with backoff, delivered once.
    w.fault(json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 3}))
        .await;
    let (status, _) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // A storm longer than the retries: 503, nothing delivered, and the key is free for a later retry.
    w.fault(json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 50}))
        .await;
    let body = template(json!({"openid": "fan"}));
    let (status, resp) = w
        .send_with(&w.oa, &body, Some("storm-1"), Duration::from_secs(20))
        .await;
    assert_eq!(
        (
            status,
            resp["error"]["code"].as_str(),
            resp["error"]["wechat_errcode"].as_i64()
        ),
        (503, Some("wechat_unavailable"), Some(-1))
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    w.world.emulator.control("/reset", json!({})).await;
    w.user(&w.oa, "fan", json!({})).await;
    let (status, _) = w
        .send_with(&w.oa, &body, Some("storm-1"), Duration::from_secs(20))
        .await;
    assert_eq!(status, 200, "the key was released");
    assert_eq!(w.delivered(&w.oa).await.len(), 1);
}
