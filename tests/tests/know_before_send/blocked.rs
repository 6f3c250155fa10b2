//! What happened after errcode 0: WeChat's intercepted messages found through
//! `GET .../templates/{id}/blocked` and marked `blocked`; `TEMPLATESENDJOBFINISH` statuses
//! normalised; a message's status never goes back.

use crate::world::{Know, event_xml, template};
use serde_json::json;
use wxpush_shared::clock::now_unix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intercepted_message_is_found_and_marked_blocked_for_good() {
    let k = Know::new(&[]).await;
    k.control(
        "/templates",
        json!({"appid": k.oa, "id": "TPL_promo", "kind": "template", "title": "优惠通知",
               "content": "{{thing1.DATA}}"}),
    )
    .await;
    k.control("/templates/TPL_promo/block", json!({"appid": k.oa}))
        .await;
    let mut ids = Vec::new();
    for openid in ["p1", "p2", "p3"] {
        k.user(&k.oa, openid, json!({})).await;
        let (status, body) = k.send(&k.oa, &template(openid, "TPL_promo"), None).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("sent")),
            "errcode 0: {body}"
        );
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert!(
        k.world.emulator.delivered(&k.oa).await.is_empty(),
        "never delivered"
    );
    let path = format!("/v1/apps/{}/templates/TPL_promo/blocked", k.oa);
    let (status, page) = k.api("GET", &format!("{path}?limit=2"), None, None).await;
    assert_eq!(status, 200, "{page}");
    let listed = page["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{page}");
    assert_eq!(listed[0]["openid"], "p1");
    assert_eq!(listed[0]["title"], "优惠通知");
    assert_eq!(listed[0]["content"], "订单已发货");
    assert_eq!(listed[0]["message_id"], ids[0].as_str());
    let cursor = page["cursor"].as_str().expect("more to come").to_string();
    let (_, rest) = k
        .api(
            "GET",
            &format!("{path}?limit=2&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(rest["messages"][0]["message_id"], ids[2].as_str(), "{rest}");
    assert!(rest.get("cursor").is_none(), "{rest}");
    let record = k.message(&k.oa, &ids[0]).await;
    assert_eq!(record["status"], "blocked", "{record}");
    assert_eq!(k.message(&k.oa, &ids[1]).await["status"], "blocked");
    // A late receipt does not take the final state back.
    let msgid = record["wechat_msgid"].as_i64().unwrap();
    let rest = format!("<MsgID>{msgid}</MsgID><Status>success</Status>");
    k.push(
        &k.oa,
        &event_xml("p1", now_unix(), "TEMPLATESENDJOBFINISH", &rest),
    )
    .await;
    assert_eq!(k.message(&k.oa, &ids[0]).await["status"], "blocked");
    for (bad, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?cursor=x", "cursor"),
    ] {
        let (status, body) = k.api("GET", &format!("{path}{bad}"), None, None).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_are_normalised_and_the_first_final_state_stays() {
    let k = Know::new(&[]).await;
    k.user(&k.oa, "r1", json!({})).await;
    let (_, body) = k.send(&k.oa, &template("r1", "TPL_a"), None).await;
    let (id, msgid) = (
        body["id"].as_str().unwrap().to_string(),
        body["wechat_msgid"].as_i64().unwrap(),
    );
    // The emulator's receipt (success) comes first; later ones say otherwise.
    k.pushed(1).await;
    assert_eq!(k.message(&k.oa, &id).await["status"], "delivered");
    let at = now_unix();
    for status in ["failed: user block", "failed:system failed"] {
        let rest = format!("<MsgID>{msgid}</MsgID><Status>{status}</Status>");
        k.push(
            &k.oa,
            &event_xml("r1", at + 1, "TEMPLATESENDJOBFINISH", &rest),
        )
        .await;
    }
    let record = k.message(&k.oa, &id).await;
    assert_eq!(record["status"], "delivered", "never back: {record}");
    assert_eq!(record["delivery"]["status"], "success");
    // A user who blocked the account: WeChat's first receipt says so, and stays.
    k.user(&k.oa, "r2", json!({"blocks_templates": true})).await;
    let (_, body) = k.send(&k.oa, &template("r2", "TPL_a"), None).await;
    let (id, msgid) = (
        body["id"].as_str().unwrap().to_string(),
        body["wechat_msgid"].as_i64().unwrap(),
    );
    k.pushed(2).await;
    let rest = format!("<MsgID>{msgid}</MsgID><Status>success</Status>");
    k.push(
        &k.oa,
        &event_xml("r2", at + 2, "TEMPLATESENDJOBFINISH", &rest),
    )
    .await;
    let record = k.message(&k.oa, &id).await;
    assert_eq!(record["status"], "user_blocked", "{record}");
    assert_eq!(record["delivery"]["status"], "failed:user block");
}
