//! `GET /sandbox/phones` on `wxpush serve --sandbox`: each emulated user as their WeChat
//! shows it after real sends through the API — a template rendered from its content, a
//! subscribe message, customer-service messages by kind — with follow state, the
//! customer-service window and accepted subscriptions; paged; bad queries refused.

use serde_json::{Value, json};
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::{LocalClient, local_server};

const OA: &str = "wxd0000000000000a1";
const MP: &str = "wxd0000000000000b2";
const KEY: &str = "phones-key";

/// The local server, and a template message or a text sent through its API.
struct Local {
    server: wxpush_cli::local_server::RunningServer,
    client: LocalClient,
}

impl Local {
    async fn start() -> Local {
        let server = local_server(demo_apps(), KEY).await;
        let client = LocalClient::new(&server, KEY);
        Local { server, client }
    }
    async fn control(&self, path: &str, body: Value) {
        self.client.control(path, body).await;
    }
    async fn send(&self, appid: &str, body: Value) -> Value {
        let (status, answer) = self
            .client
            .post(&format!("/v1/apps/{appid}/messages"), body)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
    async fn phones(&self, query: &str) -> (u16, Value) {
        self.client.sandbox_get(&format!("/phones{query}")).await
    }
}

#[tokio::test]
async fn each_user_is_a_phone_showing_what_wechat_shows() {
    let w = Local::start().await;
    w.control("/templates", json!({"appid": OA, "id": "TPL_ORDER", "kind": "template",
        "title": "订单发货通知", "content": "订单号：{{character_string1.DATA}}\n商品：{{thing2.DATA}}"}))
        .await;
    w.control(
        "/templates",
        json!({"appid": MP, "id": "SUB_PAY", "kind": "subscribe_once",
        "title": "支付成功通知", "content": "金额：{{amount1.DATA}}"}),
    )
    .await;
    w.control("/users/o_alice/follow", json!({"appid": OA}))
        .await;
    w.control("/users", json!({"appid": MP, "openid": "m_bob"}))
        .await;
    w.control(
        "/grants",
        json!({"appid": MP, "openid": "m_bob", "template_id": "SUB_PAY", "count": 2}),
    )
    .await;
    w.send(OA, json!({"type": "template", "to": {"openid": "o_alice"}, "template_id": "TPL_ORDER",
        "data": {"character_string1": {"value": "A1024"}, "thing2": {"value": "<svg onload=alert()>"}}}))
        .await;
    w.send(
        OA,
        json!({"type": "custom", "to": {"openid": "o_alice"}, "msgtype": "text",
        "text": {"content": "您好"}}),
    )
    .await;
    w.send(
        MP,
        json!({"type": "subscribe", "to": {"openid": "m_bob"}, "template_id": "SUB_PAY",
        "data": {"amount1": {"value": "9.90元"}}}),
    )
    .await;

    let (status, all) = w.phones("").await;
    assert_eq!(status, 200, "{all}");
    let phones = all["phones"].as_array().unwrap();
    assert_eq!(phones.len(), 2);
    let alice = &phones[0];
    assert_eq!(alice["openid"], "o_alice");
    assert_eq!(alice["following"], true);
    // Following opened an allowance of 3 messages for a minute; the text used one.
    let window = &alice["service_window"];
    assert_eq!(window.as_array().unwrap().len(), 1, "{window}");
    assert_eq!(window[0]["opened_by"], "follow");
    assert_eq!(window[0]["replies_left"], 2);
    let left = window[0]["closes_at"].as_i64().unwrap() - all["now"].as_i64().unwrap();
    assert!((1..=60).contains(&left), "{left}");
    assert_eq!(alice["inbox_total"], 2);
    let template = &alice["inbox"][0];
    assert_eq!(template["kind"], "template");
    assert_eq!(template["title"], "订单发货通知");
    assert_eq!(
        template["lines"],
        json!(["订单号：A1024", "商品：<svg onload=alert()>"])
    );
    assert_eq!(alice["inbox"][1]["kind"], "text");
    assert_eq!(alice["inbox"][1]["lines"], json!(["您好"]));

    let bob = &phones[1];
    assert_eq!(
        (bob["appid"].as_str(), bob["following"].clone()),
        (Some(MP), Value::Null)
    );
    assert_eq!(bob["service_window"], json!([]));
    assert_eq!(
        bob["subscriptions"],
        json!([{"template_id": "SUB_PAY", "title": "支付成功通知", "left": 1, "long_term": false}])
    );
    assert_eq!(bob["inbox"][0]["title"], "支付成功通知");
    assert_eq!(bob["inbox"][0]["lines"], json!(["金额：9.90元"]));
    let apps = all["apps"].as_array().unwrap();
    assert_eq!(apps[0]["templates"][0]["title"], "订单发货通知");
    // No secret of the emulator's in what the console reads.
    let text = all.to_string();
    for secret in w.server.emulator.as_ref().unwrap().secrets() {
        assert!(!text.contains(&secret), "a secret in /sandbox/phones");
    }
}

#[tokio::test]
async fn a_phone_shows_only_what_its_user_sees_and_acceptances_left() {
    let w = Local::start().await;
    w.control(
        "/templates",
        json!({"appid": OA, "id": "TPL_A", "kind": "template",
        "title": "通知", "content": "内容：{{thing1.DATA}}"}),
    )
    .await;
    w.control(
        "/templates",
        json!({"appid": MP, "id": "SUB_ONCE", "kind": "subscribe_once",
        "title": "一次", "content": "{{thing1.DATA}}"}),
    )
    .await;
    w.control(
        "/templates",
        json!({"appid": MP, "id": "SUB_LONG", "kind": "subscribe_long_term",
        "title": "长期", "content": "{{thing1.DATA}}"}),
    )
    .await;
    // A follower who refuses template messages: WeChat answers 0 and reports
    // `failed:user block`, and the user's WeChat shows nothing.
    w.control(
        "/users",
        json!({"appid": OA, "openid": "o_refuser", "blocks_templates": true}),
    )
    .await;
    w.control("/users", json!({"appid": MP, "openid": "m_sub"}))
        .await;
    for template in ["SUB_ONCE", "SUB_LONG"] {
        w.control(
            "/grants",
            json!({"appid": MP, "openid": "m_sub", "template_id": template}),
        )
        .await;
    }
    w.send(
        OA,
        json!({"type": "template", "to": {"openid": "o_refuser"}, "template_id": "TPL_A",
        "data": {"thing1": {"value": "x"}}}),
    )
    .await;
    for template in ["SUB_ONCE", "SUB_LONG"] {
        w.send(
            MP,
            json!({"type": "subscribe", "to": {"openid": "m_sub"}, "template_id": template,
            "data": {"thing1": {"value": "y"}}}),
        )
        .await;
    }
    let (status, oa) = w.phones(&format!("?appid={OA}")).await;
    assert_eq!(status, 200, "{oa}");
    let refuser = &oa["phones"][0];
    assert_eq!(refuser["blocks_templates"], true);
    assert_eq!(
        (refuser["inbox_total"].clone(), refuser["inbox"].clone()),
        (json!(0), json!([]))
    );
    let (_, mp) = w.phones(&format!("?appid={MP}")).await;
    let sub = &mp["phones"][0];
    assert_eq!(sub["inbox_total"], 2);
    // The one-time acceptance is used up and gone; the long-term one stays.
    assert_eq!(
        sub["subscriptions"],
        json!([{"template_id": "SUB_LONG", "title": "长期", "left": 1, "long_term": true}])
    );
}

#[tokio::test]
async fn phones_come_a_page_at_a_time_and_bad_queries_are_refused() {
    let w = Local::start().await;
    let users: Vec<Value> = (0..5)
        .map(|i| json!({"appid": OA, "openid": format!("o_{i}")}))
        .collect();
    w.control("/users", json!(users)).await;
    let (status, first) = w.phones(&format!("?appid={OA}&limit=2")).await;
    assert_eq!(status, 200, "{first}");
    let openids = |p: &Value| -> Vec<String> {
        p["phones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ph| ph["openid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(openids(&first), ["o_0", "o_1"]);
    let mut seen = openids(&first);
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (_, page) = w.phones(&format!("?appid={OA}&limit=2&cursor={c}")).await;
        seen.extend(openids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["o_0", "o_1", "o_2", "o_3", "o_4"]);
    let (_, mp_only) = w.phones(&format!("?appid={MP}")).await;
    assert_eq!(mp_only["phones"], json!([]));

    for (query, status, code) in [
        ("?limit=0", 400, "bad_request"),
        ("?limit=51", 400, "bad_request"),
        ("?limit=x", 400, "bad_request"),
        ("?cursor=-1", 400, "bad_request"),
        ("?appid=wx00000000000000ff", 404, "unknown_app"),
    ] {
        let (got, body) = w.phones(query).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}
