//! The emulator keeps WeChat's customer-service allowances on its own clock (45015 when
//! none is open, 45047 when the open ones are used up), intercepts a blocked template's
//! messages and lists them with `queryblocktmplmsg`.

use serde_json::{Value, json};
use wxpush_shared::AppKind;
use wxpush_tests::{EmulatorServer, emulated};

const OA: &str = "wx00000000000000c1";

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}

/// A fresh token (the emulator's clock may have moved past the last one).
async fn token(emu: &EmulatorServer) -> String {
    let body = json!({"grant_type": "client_credential", "appid": OA, "secret": "s", "force_refresh": false});
    emu.post("/cgi-bin/stable_token", body).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn custom(emu: &EmulatorServer, openid: &str) -> i64 {
    let path = format!(
        "/cgi-bin/message/custom/send?access_token={}",
        token(emu).await
    );
    let text = json!({"touser": openid, "msgtype": "text", "text": {"content": "你好"}});
    errcode(&emu.post(&path, text).await)
}

#[tokio::test]
async fn allowances_by_kind_on_the_emulators_clock() {
    let emu = EmulatorServer::start(vec![emulated(OA, "s", AppKind::OfficialAccount)]).await;
    emu.control(
        "/users",
        json!([{"appid": OA, "openid": "a"}, {"appid": OA, "openid": "b"}]),
    )
    .await;
    assert_eq!(custom(&emu, "a").await, 45015, "no interaction");
    emu.control("/users/a/click", json!({"appid": OA, "key": "K"}))
        .await;
    for _ in 0..3 {
        assert_eq!(custom(&emu, "a").await, 0);
    }
    assert_eq!(custom(&emu, "a").await, 45047, "a click's 3 used up");
    emu.control("/clock", json!({"advance_secs": 61})).await;
    assert_eq!(
        custom(&emu, "a").await,
        45015,
        "a minute later the click's window is over"
    );
    // A message opens 5 in 48 hours; a click after it adds 3, used first (it closes first).
    emu.control("/users/b/message", json!({"appid": OA, "content": "在吗"}))
        .await;
    emu.control("/users/b/click", json!({"appid": OA, "key": "K"}))
        .await;
    for _ in 0..8 {
        assert_eq!(custom(&emu, "b").await, 0);
    }
    assert_eq!(custom(&emu, "b").await, 45047);
    emu.control("/users/b/scan", json!({"appid": OA, "key": "shop"}))
        .await;
    assert_eq!(custom(&emu, "b").await, 0, "a scan opens 3 more");
    emu.control("/clock", json!({"advance_secs": 48 * 3600}))
        .await;
    assert_eq!(custom(&emu, "b").await, 45015);
    let pushes = emu.get("/sandbox/pushes").await;
    let events: Vec<&str> = pushes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["CLICK", "text", "CLICK", "SCAN"],
        "each pushed (here: nowhere)"
    );
}

#[tokio::test]
async fn a_blocked_templates_messages_are_intercepted_and_listed() {
    let emu = EmulatorServer::start(vec![emulated(OA, "s", AppKind::OfficialAccount)]).await;
    emu.control("/users", json!([{"appid": OA, "openid": "x"}]))
        .await;
    emu.control(
        "/templates",
        json!({"appid": OA, "id": "TPL_b", "kind": "template", "title": "通知", "content": "{{thing1.DATA}}"}),
    )
    .await;
    emu.control("/templates/TPL_b/block", json!({"appid": OA}))
        .await;
    let tok = token(&emu).await;
    let send = format!("/cgi-bin/message/template/send?access_token={tok}");
    let mut msgids = Vec::new();
    for i in 0..3 {
        let body = json!({"touser": "x", "template_id": "TPL_b", "data": {"thing1": {"value": format!("第{i}条")}}});
        let answer = emu.post(&send, body).await;
        assert_eq!(errcode(&answer), 0, "{answer}");
        msgids.push(answer["msgid"].as_i64().unwrap());
    }
    assert!(emu.delivered(OA).await.is_empty(), "never delivered");
    let query = format!("/wxa/sec/queryblocktmplmsg?access_token={tok}");
    let page = emu
        .post(
            &query,
            json!({"tmpl_msg_id": "TPL_b", "largest_id": 0, "limit": 2}),
        )
        .await;
    let list = page["msginfo"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{page}");
    assert_eq!(list[1]["content"], "第1条");
    assert_eq!(list[0]["openid"], "x");
    let last = list[1]["id"].as_i64().unwrap();
    let rest = emu
        .post(
            &query,
            json!({"tmpl_msg_id": "TPL_b", "largest_id": last, "limit": 100}),
        )
        .await;
    assert_eq!(rest["msginfo"].as_array().unwrap().len(), 1, "{rest}");
    let bad = emu
        .post(&query, json!({"tmpl_msg_id": "TPL_b", "limit": 101}))
        .await;
    assert_eq!(errcode(&bad), 47001);
    let other = emu.post(&query, json!({"tmpl_msg_id": "TPL_other"})).await;
    assert!(other["msginfo"].as_array().unwrap().is_empty());
}
