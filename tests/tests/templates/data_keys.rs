//! The send path's check of `data` keys against a known template, before WeChat.

use crate::{PRIVATE_LIST, SUBSCRIBE_LIST, World, register, world};
use serde_json::{Value, json};

fn template_send(to: &str, data: Value) -> Value {
    json!({"type": "template", "to": {"openid": to}, "template_id": "OA_order", "data": data})
}

#[tokio::test]
async fn sends_check_data_keys_against_a_known_template_before_wechat() {
    let w = world().await;
    register(&w).await;
    w.control(
        "/users",
        json!({"appid": w.oa, "openid": "fan", "unionid": "u-fan"}),
    )
    .await;
    w.control(
        "/users",
        json!({"appid": w.mp, "openid": "mpfan", "unionid": "u-fan"}),
    )
    .await;
    w.control(
        "/grants",
        json!({"appid": w.mp, "openid": "mpfan", "template_id": "MP_ship"}),
    )
    .await;
    let lists_before = template_keys_are_checked_once_listed(&w).await;
    subscribe_keys_are_checked(&w).await;
    uniform_is_checked_against_the_official_accounts_template(&w).await;
    // A warm cache costs no WeChat listing per send.
    assert_eq!(w.calls(PRIVATE_LIST), lists_before);
    assert_eq!(w.calls(SUBSCRIBE_LIST), 2);
}

/// Before the listing wxpush sends as it always did; once the template is listed, a missing or
/// unknown key is refused before WeChat. Answers the listings WeChat served by then.
async fn template_keys_are_checked_once_listed(w: &World) -> u64 {
    // Not listed yet: wxpush does not know the template and sends as before; WeChat (which
    // knows it) takes the message without first/remark.
    let good = json!({"character_string1": {"value": "SN-1"}, "phrase2": {"value": "已发货"}});
    let (status, body) = w.send(&w.oa, template_send("fan", good.clone())).await;
    assert_eq!(status, 200, "{body}");

    w.templates(&w.oa, "").await;
    w.templates(&w.mp, "").await;
    let (lists_before, sends_before) = (
        w.calls(PRIVATE_LIST),
        w.calls("/cgi-bin/message/template/send"),
    );
    let missing = json!({"character_string1": {"value": "SN-1"}});
    let (status, body) = w.send(&w.oa, template_send("fan", missing)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("data.phrase2")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OA_order")
    );
    let unknown = json!({"character_string1": {"value": "SN-1"}, "phrase2": {"value": "已发货"}, "thing9": {"value": "x"}});
    let (status, body) = w.send(&w.oa, template_send("fan", unknown)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("data.thing9"))
    );
    assert_eq!(
        w.calls("/cgi-bin/message/template/send"),
        sends_before,
        "refused before WeChat"
    );
    let (status, _) = w.send(&w.oa, template_send("fan", good.clone())).await;
    assert_eq!(status, 200);
    lists_before
}

/// Subscribe: a missing key is refused before subscribe/send; the full data goes through.
async fn subscribe_keys_are_checked(w: &World) {
    let sub = |data: Value| json!({"type": "subscribe", "to": {"openid": "mpfan"}, "template_id": "MP_ship", "data": data});
    let (status, body) = w
        .send(&w.mp, sub(json!({"thing1": {"value": "耳机"}})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("data.time2")),
        "{body}"
    );
    assert_eq!(w.calls("/cgi-bin/message/subscribe/send"), 0);
    let (status, body) = w
        .send(
            &w.mp,
            sub(json!({"thing1": {"value": "耳机"}, "time2": {"value": "2026年11月26日 10:00"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Uniform (posted to the official account it goes out through): checked against that
/// account's template.
async fn uniform_is_checked_against_the_official_accounts_template(w: &World) {
    let uniform = json!({"type": "uniform", "to": {"unionid": "u-fan"}, "template_id": "OA_order", "data": {"phrase2": {"value": "已发货"}}});
    let (status, body) = w.send(&w.oa, uniform).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("data.character_string1")),
        "{body}"
    );
}
