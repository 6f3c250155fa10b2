//! The customer-service window: opened by each kind of interaction with its own allowance,
//! closed by count and by time before WeChat is called; a user wxpush never saw is left to
//! WeChat.

use crate::world::{Know, event_xml, text};
use serde_json::json;
use std::time::Duration;
use wxpush_shared::clock::now_unix;

const CUSTOM: &str = "/cgi-bin/message/custom/send";

/// Sends customer-service messages to `openid` until wxpush holds one back: how many went.
async fn sent_until_held(k: &Know, openid: &str) -> (u64, serde_json::Value) {
    for n in 0..10 {
        let (status, body) = k.send(&k.oa, &text(openid), None).await;
        if status != 200 {
            assert_eq!(status, 409, "{body}");
            return (n, body);
        }
    }
    panic!("the window never closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_interaction_opens_its_allowance_and_a_full_one_is_held_back() {
    let k = Know::new(&[]).await;
    for openid in ["by-message", "by-click", "by-scan"] {
        k.user(&k.oa, openid, json!({})).await;
    }
    k.control(
        "/users/by-message/message",
        json!({"appid": k.oa, "content": "在吗"}),
    )
    .await;
    k.control(
        "/users/by-click/click",
        json!({"appid": k.oa, "key": "ORDERS"}),
    )
    .await;
    k.control(
        "/users/by-scan/scan",
        json!({"appid": k.oa, "key": "shop-7"}),
    )
    .await;
    k.control("/users/by-follow/follow", json!({"appid": k.oa}))
        .await;
    k.pushed(4).await;
    for (openid, kind, allowance) in [
        ("by-message", "message", 5),
        ("by-click", "click", 3),
        ("by-scan", "scan", 3),
        ("by-follow", "follow", 3),
    ] {
        let (status, view) = k.view(&k.oa, openid).await;
        assert_eq!(status, 200, "{view}");
        let window = &view["service_window"];
        assert_eq!(window["open"], true, "{openid}: {view}");
        assert_eq!(window["remaining"], allowance, "{openid}: {view}");
        assert_eq!(window["allowances"][0]["kind"], kind, "{view}");
        let before = k.calls(CUSTOM);
        let (sent, held) = sent_until_held(&k, openid).await;
        assert_eq!(sent, allowance, "{openid}: the allowance, exactly");
        assert_eq!(
            k.calls(CUSTOM) - before,
            allowance,
            "the held one never reached WeChat"
        );
        assert_eq!(held["error"]["code"], "outside_service_window", "{held}");
        let window = &held["error"]["service_window"];
        assert_eq!(
            (window["open"].as_bool(), window["remaining"].as_i64()),
            (Some(false), Some(0)),
            "{held}"
        );
        assert!(
            window["closes_at"].as_i64().unwrap() > now_unix(),
            "used up, not over: {held}"
        );
        assert_eq!(k.delivered_to(&k.oa, openid).await.len() as u64, allowance);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_closes_by_time_and_a_new_interaction_reopens_it() {
    let k = Know::new(&[]).await;
    let now = now_unix();
    // The user wrote 48 hours less 2 seconds ago (WeChat's push arrives now): WeChat and
    // wxpush both count the window from that message.
    let at = now - 48 * 3600 + 2;
    k.user(&k.oa, "late", json!({"last_interaction": at})).await;
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>late</FromUserName><CreateTime>{at}</CreateTime>\
         <MsgType>text</MsgType><Content>在吗</Content><MsgId>{at}01</MsgId></xml>"
    );
    k.push(&k.oa, &xml).await;
    let (status, body) = k.send(&k.oa, &text("late"), None).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = k.calls(CUSTOM);
    let (status, held) = k.send(&k.oa, &text("late"), None).await;
    assert_eq!(status, 409, "{held}");
    assert_eq!(held["error"]["code"], "outside_service_window");
    let window = &held["error"]["service_window"];
    assert!(
        window["closes_at"].as_i64().unwrap() <= now_unix(),
        "over: {held}"
    );
    assert_eq!(k.calls(CUSTOM), before, "held back before WeChat");
    // A click opens 3 more.
    k.control("/users/late/click", json!({"appid": k.oa, "key": "K"}))
        .await;
    k.pushed(1).await;
    let (sent, _) = sent_until_held(&k, "late").await;
    assert_eq!(sent, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_wxpush_never_saw_is_left_to_wechat() {
    let k = Know::new(&[]).await;
    let now = k.world.emulator.emu.now();
    k.user(&k.oa, "quiet", json!({"last_interaction": now - 60}))
        .await;
    let (status, view) = k.view(&k.oa, "quiet").await;
    assert_eq!(status, 404, "nothing known yet: {view}");
    assert_eq!(view["error"]["code"], "unknown_user");
    let (status, body) = k.send(&k.oa, &text("quiet"), None).await;
    assert_eq!(status, 200, "WeChat decides, and accepts: {body}");
    let (_, view) = k.view(&k.oa, "quiet").await;
    assert_eq!(view["service_window"]["known"], false, "{view}");
    assert_eq!(view["sent_today"], 1, "{view}");
    // Unfollowing and an old event change nothing of the window.
    k.push(
        &k.oa,
        &event_xml("quiet", now - 10, "VIEW", "<EventKey>https://x</EventKey>"),
    )
    .await;
    let (_, view) = k.view(&k.oa, "quiet").await;
    assert_eq!(
        view["service_window"]["known"], false,
        "a VIEW opens nothing: {view}"
    );
}
