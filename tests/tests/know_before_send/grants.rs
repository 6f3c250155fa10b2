//! The grant ledger: acceptances from WeChat's popup events, taken by wxpush's own sends
//! before WeChat is called and confirmed by WeChat's sent reports, used by messages sent
//! elsewhere, cleared by a rejection; `require_grant` refused with no WeChat call.

use crate::world::{Know, event_xml};
use serde_json::{Value, json};
use wxpush_shared::clock::now_unix;

const SUBSCRIBE: &str = "/cgi-bin/message/subscribe/send";

fn subscribe(openid: &str, template_id: &str, require_grant: bool) -> Value {
    json!({"type": "subscribe", "to": {"openid": openid}, "template_id": template_id,
           "data": {"thing1": {"value": "已发货"}}, "require_grant": require_grant})
}

/// The user view's subscription of `template_id`.
async fn subscription(k: &Know, openid: &str, template_id: &str) -> Value {
    let (status, view) = k.view(&k.mp, openid).await;
    assert_eq!(status, 200, "{view}");
    view["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template_id"] == template_id)
        .cloned()
        .unwrap_or_else(|| panic!("no {template_id} in {view}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_counted_down_and_require_grant_is_refused_before_wechat() {
    let k = Know::new(&[]).await;
    k.user(&k.mp, "m1", json!({})).await;
    k.control(
        "/grants",
        json!({"appid": k.mp, "openid": "m1", "template_id": "SUB_1", "count": 2}),
    )
    .await;
    k.pushed(1).await;
    let s = subscription(&k, "m1", "SUB_1").await;
    assert_eq!(
        (s["kind"].as_str(), s["remaining"].as_i64()),
        (Some("once"), Some(2)),
        "{s}"
    );
    assert_eq!(s["status"], "accepted");
    // Two sends in a row, before WeChat's report of the first: each takes its own.
    for _ in 0..2 {
        let (status, body) = k.send(&k.mp, &subscribe("m1", "SUB_1", true), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = k.calls(SUBSCRIBE);
    let (status, held) = k.send(&k.mp, &subscribe("m1", "SUB_1", true), None).await;
    assert_eq!(status, 409, "{held}");
    assert_eq!(held["error"]["code"], "no_grant");
    assert_eq!(held["error"]["subscription"]["remaining"], 0, "{held}");
    assert_eq!(k.calls(SUBSCRIBE), before, "no WeChat call");
    // WeChat's reports of the two sends confirm them: nothing is counted twice.
    k.pushed(3).await;
    let s = subscription(&k, "m1", "SUB_1").await;
    assert_eq!(s["remaining"], 0, "{s}");
    // A second acceptance, in another second than the first: two popup events of one user
    // in one second are one event to WeChat's dedupe key (docs/callbacks.md).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    k.control(
        "/grants",
        json!({"appid": k.mp, "openid": "m1", "template_id": "SUB_1"}),
    )
    .await;
    k.pushed(4).await;
    assert_eq!(subscription(&k, "m1", "SUB_1").await["remaining"], 1);
    let (status, body) = k.send(&k.mp, &subscribe("m1", "SUB_1", true), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(k.delivered_to(&k.mp, "m1").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_elsewhere_rejections_and_wechats_43101_update_the_ledger() {
    let k = Know::new(&[]).await;
    k.user(&k.mp, "m2", json!({})).await;
    k.control(
        "/grants",
        json!({"appid": k.mp, "openid": "m2", "template_id": "SUB_1", "count": 3}),
    )
    .await;
    k.pushed(1).await;
    // Another system sent one (WeChat reports it; wxpush took nothing for it).
    let list = "<SubscribeMsgSentEvent><List><TemplateId>SUB_1</TemplateId><MsgID>77</MsgID>\
                <ErrorCode>0</ErrorCode><ErrorStatus>success</ErrorStatus></List></SubscribeMsgSentEvent>";
    k.push(
        &k.mp,
        &event_xml("m2", now_unix(), "subscribe_msg_sent_event", list),
    )
    .await;
    assert_eq!(subscription(&k, "m2", "SUB_1").await["remaining"], 2);
    // The user turns the template off in their settings.
    let change = "<SubscribeMsgChangeEvent><List><TemplateId>SUB_1</TemplateId>\
                  <SubscribeStatusString>reject</SubscribeStatusString></List></SubscribeMsgChangeEvent>";
    k.push(
        &k.mp,
        &event_xml("m2", now_unix() + 1, "subscribe_msg_change_event", change),
    )
    .await;
    let s = subscription(&k, "m2", "SUB_1").await;
    assert_eq!(
        (s["remaining"].as_i64(), s["status"].as_str()),
        (Some(0), Some("rejected")),
        "{s}"
    );
    let (status, _) = k.send(&k.mp, &subscribe("m2", "SUB_1", true), None).await;
    assert_eq!(status, 409);
    // Without require_grant WeChat decides: its 43101 is recorded for the template.
    k.user(&k.mp, "m3", json!({})).await;
    let (status, refused) = k.send(&k.mp, &subscribe("m3", "SUB_9", false), None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("subscription_required")),
        "{refused}"
    );
    let s = subscription(&k, "m3", "SUB_9").await;
    assert_eq!(s["remaining"], 0, "WeChat's 43101 recorded: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_term_template_is_on_until_the_user_turns_it_off() {
    let k = Know::new(&[]).await;
    k.user(&k.mp, "m4", json!({})).await;
    k.control(
        "/templates",
        json!({"appid": k.mp, "id": "LT_1", "kind": "subscribe_long_term", "title": "服务提醒",
               "content": "状态:{{phrase1.DATA}}"}),
    )
    .await;
    let (status, list) = k
        .api(
            "GET",
            &format!("/v1/apps/{}/templates?refresh=true", k.mp),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    k.control(
        "/grants",
        json!({"appid": k.mp, "openid": "m4", "template_id": "LT_1"}),
    )
    .await;
    k.pushed(1).await;
    let long_term = json!({"type": "subscribe", "to": {"openid": "m4"}, "template_id": "LT_1",
                           "data": {"phrase1": {"value": "已发货"}}, "require_grant": true});
    for _ in 0..3 {
        let (status, body) = k.send(&k.mp, &long_term, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let s = subscription(&k, "m4", "LT_1").await;
    assert_eq!(
        (s["kind"].as_str(), s["on"].as_bool()),
        (Some("long_term"), Some(true)),
        "{s}"
    );
    let change = "<SubscribeMsgChangeEvent><List><TemplateId>LT_1</TemplateId>\
                  <SubscribeStatusString>reject</SubscribeStatusString></List></SubscribeMsgChangeEvent>";
    k.push(
        &k.mp,
        &event_xml("m4", now_unix() + 1, "subscribe_msg_change_event", change),
    )
    .await;
    assert_eq!(subscription(&k, "m4", "LT_1").await["on"], false);
    let before = k.calls(SUBSCRIBE);
    let (status, held) = k.send(&k.mp, &long_term, None).await;
    assert_eq!(
        (status, held["error"]["code"].as_str()),
        (409, Some("no_grant")),
        "{held}"
    );
    assert_eq!(k.calls(SUBSCRIBE), before);
}
