//! A customer-service message's `fallback`: sent instead when wxpush knows the window is
//! closed or WeChat answers 45015/45047, recorded on the one message, and sent once under
//! faults and retries with the same Idempotency-Key — never both, never twice.

use crate::world::{Know, text};
use serde_json::{Value, json};

const CUSTOM: &str = "/cgi-bin/message/custom/send";
const TEMPLATE: &str = "/cgi-bin/message/template/send";

fn with_fallback(openid: &str) -> Value {
    let mut body = text(openid);
    body["fallback"] = json!({"type": "template", "template_id": "TPL_ship",
                              "data": {"thing1": {"value": "订单已发货"}}});
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_closed_window_sends_the_fallback_and_never_the_custom_message() {
    let k = Know::new(&[]).await;
    k.user(&k.oa, "fan", json!({})).await;
    k.control("/users/fan/click", json!({"appid": k.oa, "key": "K"}))
        .await;
    k.pushed(1).await;
    for _ in 0..3 {
        assert_eq!(k.send(&k.oa, &text("fan"), None).await.0, 200);
    }
    let before = k.calls(CUSTOM);
    let (status, body) = k.send(&k.oa, &with_fallback("fan"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent_as"], "fallback", "{body}");
    assert_eq!(
        k.calls(CUSTOM),
        before,
        "the custom message never went to WeChat"
    );
    let id = body["id"].as_str().unwrap();
    let record = k.message(&k.oa, id).await;
    assert_eq!(record["type"], "custom", "what was asked: {record}");
    assert_eq!(record["sent_as"], "fallback");
    assert_eq!(
        record["fallback"],
        json!({"type": "template", "reason": "outside_service_window"})
    );
    assert_eq!(record["template_id"], "TPL_ship");
    assert_eq!(record["wechat_msgid"], body["wechat_msgid"]);
    let delivered = k.delivered_to(&k.oa, "fan").await;
    assert_eq!(delivered.last().unwrap()["path"], TEMPLATE);
    // Without a fallback the same message is refused.
    let (status, held) = k.send(&k.oa, &text("fan"), None).await;
    assert_eq!(
        (status, held["error"]["code"].as_str()),
        (409, Some("outside_service_window"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechats_refusal_sends_the_fallback() {
    let k = Know::new(&[]).await;
    // The emulator knows the user without an interaction; wxpush knows nothing.
    k.user(&k.oa, "stranger", json!({})).await;
    let (status, body) = k.send(&k.oa, &with_fallback("stranger"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent_as"], "fallback");
    assert_eq!(
        k.calls(CUSTOM),
        1,
        "WeChat refused the custom message once (45015)"
    );
    let record = k.message(&k.oa, body["id"].as_str().unwrap()).await;
    assert_eq!(record["fallback"]["reason"], "wechat_45015", "{record}");
    let delivered = k.delivered_to(&k.oa, "stranger").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["path"], TEMPLATE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_goes_once_under_faults_and_retries_with_the_same_key() {
    let k = Know::new(&[]).await;
    k.user(&k.oa, "stranger", json!({})).await;
    // Every answer of template/send is lost after WeChat acted: the first request ends
    // unknown, resendable with its client_msg_id.
    for _ in 0..4 {
        k.control(
            "/faults",
            json!({"path": TEMPLATE, "http_status": 502, "after_delivery": true}),
        )
        .await;
    }
    let body = with_fallback("stranger");
    let (status, first) = k.send(&k.oa, &body, Some("cs-fallback-1")).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["status"], "unknown", "{first}");
    assert!(first["retry_until"].is_i64(), "{first}");
    k.world.emulator.clear_faults().await;
    // The retry resends the fallback (WeChat dedupes it), never the custom message.
    let (status, again) = k.send(&k.oa, &body, Some("cs-fallback-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"], "one message");
    assert_eq!(again["sent_as"], "fallback");
    let (status, replay) = k.send(&k.oa, &body, Some("cs-fallback-1")).await;
    assert_eq!((status, &replay), (200, &again), "replayed");
    assert_eq!(
        k.calls(CUSTOM),
        1,
        "the custom message was tried once, refused"
    );
    let delivered = k.delivered_to(&k.oa, "stranger").await;
    assert_eq!(
        delivered.len(),
        1,
        "the fallback reached the user once: {delivered:?}"
    );
    assert_eq!(delivered[0]["path"], TEMPLATE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_message_that_may_have_gone_out_never_falls_back() {
    let k = Know::new(&[]).await;
    let now = k.world.emulator.emu.now();
    k.user(&k.oa, "talker", json!({"last_interaction": now - 60}))
        .await;
    k.control(
        "/faults",
        json!({"path": CUSTOM, "http_status": 502, "after_delivery": true}),
    )
    .await;
    let body = with_fallback("talker");
    let (status, first) = k.send(&k.oa, &body, Some("cs-maybe")).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (202, Some("unknown")),
        "{first}"
    );
    let (status, again) = k.send(&k.oa, &body, Some("cs-maybe")).await;
    assert_eq!(status, 202, "{again}");
    let delivered = k.delivered_to(&k.oa, "talker").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["path"], CUSTOM, "never both");
    assert_eq!(k.calls(TEMPLATE), 0);
}
