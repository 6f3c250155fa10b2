//! Injected faults and the `/sandbox` controls.

use crate::client::*;
use serde_json::json;
use wxpush_tests::EmulatorServer;

const PATH: &str = "/cgi-bin/message/template/send";

#[tokio::test]
async fn faults_errcode_status_and_late_answers() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    emu.control("/users", json!({"appid": OA, "openid": "fan"}))
        .await;
    let msg = json!({"touser": "fan", "template_id": "T1", "data": {"thing1": {"value": "x"}}});
    emu.control("/faults", json!({"path": PATH, "errcode": -1, "times": 2}))
        .await;
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), -1);
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), -1);
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), 0);
    emu.control("/faults", json!({"path": PATH, "http_status": 503}))
        .await;
    let resp = reqwest::Client::new()
        .post(format!("{}{PATH}?access_token={tok}", emu.base))
        .json(&msg)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let send = |c: reqwest::Client| {
        let url = format!("{}{PATH}?access_token={tok}", emu.base);
        let msg = msg.clone();
        async move { c.post(url).json(&msg).send().await }
    };
    late_answers_act_when_the_delay_is_over(&emu, &send).await;
    faults_on_one_path_are_used_in_order(&emu, &tok, &msg, &send).await;
    bad_controls_are_refused_and_reset_forgets_everything(&emu).await;
}

/// How many messages the emulator delivered, to any app.
async fn delivered(emu: &EmulatorServer) -> usize {
    emu.get("/sandbox/messages").await.as_array().unwrap().len()
}

/// A slow WeChat (delay_ms) acts when the delay is over, even for a client that gave up;
/// after_delivery: delivered at once, answered late.
async fn late_answers_act_when_the_delay_is_over<F, Fut>(emu: &EmulatorServer, send: &F)
where
    F: Fn(reqwest::Client) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    emu.control("/faults", json!({"path": PATH, "delay_ms": 800}))
        .await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(send(client.clone()).await.unwrap_err().is_timeout());
    assert_eq!(delivered(emu).await, 1, "not yet");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(delivered(emu).await, 2, "the late call was delivered");
    emu.control(
        "/faults",
        json!({"path": PATH, "delay_ms": 800, "after_delivery": true}),
    )
    .await;
    assert!(send(client.clone()).await.unwrap_err().is_timeout());
    assert_eq!(delivered(emu).await, 3, "delivered before the answer");
}

/// Faults on one path are used in the order given; after_delivery with a status: the
/// message goes out, the answer is the proxy's; 200 after delivery is unreadable.
async fn faults_on_one_path_are_used_in_order<F, Fut>(
    emu: &EmulatorServer,
    tok: &str,
    msg: &serde_json::Value,
    send: &F,
) where
    F: Fn(reqwest::Client) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    for fault in [
        json!({"path": PATH, "errcode": 45009}),
        json!({"path": PATH, "http_status": 502, "after_delivery": true}),
        json!({"path": PATH, "http_status": 200, "after_delivery": true}),
        json!({"path": PATH, "http_status": 503}),
    ] {
        emu.control("/faults", fault).await;
    }
    let plain = reqwest::Client::new();
    assert_eq!(errcode(&template(emu, tok, msg.clone()).await), 45009);
    let r = send(plain.clone()).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(delivered(emu).await, 4);
    let r = send(plain.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).is_err());
    assert_eq!(delivered(emu).await, 5);
    assert_eq!(send(plain.clone()).await.unwrap().status(), 503);
    assert_eq!(delivered(emu).await, 5, "503 before delivery");
    let resp = plain
        .post(format!("{}/sandbox/faults", emu.base))
        .json(&json!({"path": PATH, "errcode": -1, "after_delivery": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "an errcode means WeChat did nothing");
}

/// Bad controls are refused clearly; a reset forgets every message and count.
async fn bad_controls_are_refused_and_reset_forgets_everything(emu: &EmulatorServer) {
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/faults", emu.base))
        .json(&json!({"path": PATH, "errcode": 1, "delay_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/users", emu.base))
        .json(&json!({"appid": "wx1", "openid": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    emu.control("/reset", json!({})).await;
    assert_eq!(emu.get("/sandbox/messages").await, json!([]));
    assert_eq!(emu.get("/sandbox/stats").await, json!({}));
}
