//! Sending, against real moto DynamoDB/SSM and the WeChat emulator: every message type, the
//! error mappings, unionid routing, idempotency, token refresh mid-stream, timeouts and -1
//! storms without duplicates.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::SendService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, random_appid};

struct World {
    world: TokenWorld,
    oa: String,
    mp: String,
    svc: SendService,
}

const TIMEOUT_MS: u64 = 700;

async fn world() -> World {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), TIMEOUT_MS),
        world.state_store(),
        Duration::from_millis(TIMEOUT_MS),
    );
    World { world, oa, mp, svc }
}

impl World {
    async fn send_with(
        &self,
        appid: &str,
        body: &Value,
        key: Option<&str>,
        budget: Duration,
    ) -> (u16, Value) {
        wxpush_tests::send_message(&self.svc, appid, body, key, budget).await
    }
    async fn send(&self, appid: &str, body: Value) -> (u16, Value) {
        self.send_with(appid, &body, None, Duration::from_secs(20))
            .await
    }
    async fn user(&self, appid: &str, openid: &str, extra: Value) {
        let mut u = json!({"appid": appid, "openid": openid});
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.world.emulator.control("/users", u).await;
    }
    /// The openid↔unionid mapping, as the callback and the login keep it.
    async fn link(&self, appid: &str, openid: &str, unionid: &str) {
        let s = |v: &str| Attr::S(v.to_string());
        let ops = [
            Op::Set {
                key: ItemKey::account(appid, openid),
                attrs: attrs([
                    ("appid", s(appid)),
                    ("openid", s(openid)),
                    ("unionid", s(unionid)),
                ]),
            },
            Op::Set {
                key: ItemKey::union_account(unionid, appid),
                attrs: attrs([("appid", s(appid)), ("openid", s(openid))]),
            },
        ];
        self.world
            .state_store()
            .record(&ops, now_unix())
            .await
            .unwrap();
    }
    async fn delivered(&self, appid: &str) -> Vec<Value> {
        self.world.emulator.delivered(appid).await
    }
    fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }
}

fn template(to: Value) -> Value {
    json!({"type": "template", "to": to, "template_id": "TPL_order", "url": "https://shop.example.com/o/1",
           "data": {"thing1": {"value": "订单已发货"}, "character_string2": {"value": "SN-20261125"}}})
}

fn subscribe(to: Value) -> Value {
    json!({"type": "subscribe", "to": to, "template_id": "SUB_1", "page": "pages/order?id=1", "miniprogram_state": "formal",
           "lang": "zh_CN", "data": {"thing1": {"value": "已发货"}, "phrase2": {"value": "配送中"}}})
}

#[tokio::test]
async fn template_message_sent_then_delivered() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    let (status, body) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sent");
    let id = body["id"].as_str().unwrap().to_string();
    let msgid = body["wechat_msgid"].as_i64().unwrap();
    let delivered = w.delivered(&w.oa).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["msgid"], msgid);
    assert_eq!(delivered[0]["body"]["client_msg_id"], format!("wxp-{id}"));
    assert_eq!(delivered[0]["body"]["url"], "https://shop.example.com/o/1");

    let record = w.svc.sender.message(&w.oa, &id).await.unwrap();
    assert_eq!(
        (record["status"].as_str(), record["wechat_msgid"].as_i64()),
        (Some("sent"), Some(msgid))
    );
    // TEMPLATESENDJOBFINISH arrives through the callback and updates what GET shows.
    let callback = wxpush_shared::callback::service::CallbackService::new(
        w.world.secrets(),
        w.world.state_store(),
        wxpush_tests::faults::RecordingQueue::new(),
    );
    let now = now_unix();
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>fan</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>{msgid}</MsgID><Status>failed:user block</Status></xml>"
    );
    let q = wxpush_tests::signed_query("cbtoken", &now.to_string(), "1", &[]);
    callback
        .receive(&w.oa, &q, xml.as_bytes(), now)
        .await
        .unwrap();
    let record = w.svc.sender.message(&w.oa, &id).await.unwrap();
    assert_eq!(record["status"], "user_blocked");
    assert_eq!(record["delivery"]["status"], "failed:user block");
    assert_eq!(
        w.svc
            .sender
            .message(&w.oa, "msg_nope")
            .await
            .unwrap_err()
            .status(),
        404
    );
}

#[tokio::test]
async fn subscribe_grant_is_one_time() {
    let w = world().await;
    w.user(&w.mp, "mpuser", json!({})).await;
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1"}),
        )
        .await;
    let (status, body) = w.send(&w.mp, subscribe(json!({"openid": "mpuser"}))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    let (status, body) = w.send(&w.mp, subscribe(json!({"openid": "mpuser"}))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (Some("subscription_required"), Some(43101))
    );
    assert_eq!(w.delivered(&w.mp).await.len(), 1);
    let sent = &w.delivered(&w.mp).await[0]["body"];
    assert_eq!(
        (
            sent["page"].as_str(),
            sent["miniprogram_state"].as_str(),
            sent["lang"].as_str()
        ),
        (Some("pages/order?id=1"), Some("formal"), Some("zh_CN"))
    );
}

/// `uniform` is posted to the official account it goes out through (so IAM scopes it to that
/// account's route), naming the mini program user as `{"openid", "appid"}`; the old form on
/// the mini program's route is refused, naming the new one.
#[tokio::test]
async fn uniform_reaches_the_official_account_through_the_unionid() {
    let w = world().await;
    w.user(&w.oa, "oa-openid", json!({"unionid": "U-42"})).await;
    w.link(&w.mp, "mp-openid", "U-42").await;
    w.link(&w.oa, "oa-openid", "U-42").await;
    let uniform = |to: Value| {
        let mut body = template(to);
        body["type"] = json!("uniform");
        body
    };
    let mut body = uniform(json!({"openid": "mp-openid", "appid": w.mp}));
    body["miniprogram"] = json!({"appid": w.mp, "pagepath": "pages/index"});
    let (status, resp) = w.send(&w.oa, body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let delivered = w.delivered(&w.oa).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["touser"], "oa-openid");
    assert_eq!(delivered[0]["path"], "/cgi-bin/message/template/send");
    assert_eq!(
        w.calls("/cgi-bin/message/wxopen/template/uniform_send"),
        0,
        "the withdrawn API is never called"
    );
    let record = w
        .svc
        .sender
        .message(&w.oa, resp["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(record["sent_by"], w.oa.as_str());

    // The old form, on the mini program's route: refused before anything is sent.
    for to in [json!({"openid": "mp-openid"}), json!({"unionid": "U-42"})] {
        let (status, resp) = w.send(&w.mp, uniform(to)).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some("type"))
        );
        let why = resp["error"]["message"].as_str().unwrap();
        assert!(
            why.contains(&format!("POST /v1/apps/{}/messages", w.oa))
                && why.contains(&format!("\"appid\": \"{}\"", w.mp)),
            "{why}"
        );
    }
    // A bare openid is ambiguous under uniform; `to.appid` belongs to uniform only, and must
    // name a mini program linked to this official account.
    let refusals = [
        (uniform(json!({"openid": "oa-openid"})), "to"),
        (
            template(json!({"openid": "mp-openid", "appid": w.mp})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": w.oa})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": random_appid()})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": "nope"})),
            "to.appid",
        ),
        (
            uniform(json!({"unionid": "U-42", "appid": w.mp})),
            "to.appid",
        ),
    ];
    for (body, field) in refusals {
        let (status, resp) = w.send(&w.oa, body.clone()).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {resp}"
        );
    }
    assert_eq!(w.delivered(&w.oa).await.len(), 1, "nothing more was sent");

    // A mini program user with no unionid known, and a unionid with no official account.
    let (status, resp) = w
        .send(&w.oa, uniform(json!({"openid": "stranger", "appid": w.mp})))
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (404, Some("unknown_recipient"))
    );
    w.link(&w.mp, "mp-only", "U-7").await;
    let (status, resp) = w.send(&w.oa, uniform(json!({"unionid": "U-7"}))).await;
    assert_eq!(status, 404);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no account in app"),
        "{resp}"
    );
}

#[tokio::test]
async fn unionid_recipients_and_validation() {
    let w = world().await;
    w.user(&w.oa, "fan-u", json!({})).await;
    w.link(&w.oa, "fan-u", "U-1").await;
    let (status, _) = w.send(&w.oa, template(json!({"unionid": "U-1"}))).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await[0]["touser"], "fan-u");
    let (status, body) = w
        .send(&w.oa, template(json!({"unionid": "U-unknown"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_recipient"))
    );
    // Refused before WeChat is called.
    let before = (
        w.calls("/cgi-bin/message/template/send"),
        w.calls("/cgi-bin/message/subscribe/send"),
    );
    let (status, body) = w
        .send(&w.mp, {
            let mut b = subscribe(json!({"openid": "x"}));
            b["data"]["phrase2"]["value"] = json!("abc");
            b
        })
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(body["error"]["field"], "data.phrase2.value");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("phrase"),
        "{body}"
    );
    let (status, _) = w.send(&w.mp, template(json!({"openid": "x"}))).await;
    assert_eq!(status, 422, "template from a mini program");
    let (status, _) = w
        .send(&random_appid(), template(json!({"openid": "x"})))
        .await;
    assert_eq!(status, 404);
    let after = (
        w.calls("/cgi-bin/message/template/send"),
        w.calls("/cgi-bin/message/subscribe/send"),
    );
    assert_eq!(after, before, "invalid requests never reach WeChat");
}

#[tokio::test]
async fn customer_service_messages_and_the_48_hour_window() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    w.user(&w.oa, "talker", json!({"last_interaction": now - 60}))
        .await;
    w.user(
        &w.oa,
        "silent",
        json!({"last_interaction": now - 49 * 3600}),
    )
    .await;
    let text = |to: &str| json!({"type": "custom", "to": {"openid": to}, "msgtype": "text", "text": {"content": "您好，订单已发货"}});
    let (status, body) = w.send(&w.oa, text("talker")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert!(body["wechat_msgid"].is_null());
    let (status, body) = w.send(&w.oa, text("silent")).await;
    assert_eq!(status, 403);
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (Some("outside_service_window"), Some(45015))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("48 hours")
    );
    for (msgtype, object) in [
        ("image", json!({"media_id": "MEDIA"})),
        (
            "news",
            json!({"articles": [{"title": "上新", "url": "https://shop.example.com/n", "picurl": "https://shop.example.com/p.jpg"}]}),
        ),
        (
            "miniprogrampage",
            json!({"title": "看看", "appid": w.mp, "pagepath": "pages/index", "thumb_media_id": "THUMB"}),
        ),
    ] {
        let mut body = json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": msgtype});
        body[msgtype] = object;
        let (status, resp) = w.send(&w.oa, body).await;
        assert_eq!(status, 200, "{msgtype}: {resp}");
    }
    assert_eq!(w.delivered(&w.oa).await.len(), 4);
}

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
        w.world
            .emulator
            .control(
                "/faults",
                json!({"path": "/cgi-bin/message/template/send", "errcode": errcode}),
            )
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
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "delay_ms": 400}),
        )
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
    // Template: the answer is lost after delivery; the resend carries the same client_msg_id.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "delay_ms": 1500}),
        )
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

    // Subscribe: no dedupe at WeChat, so no resend: recorded `unknown`.
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1", "count": 5}),
        )
        .await;
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/subscribe/send", "delay_ms": 1500}),
        )
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

    // -1 three times: retried with backoff, delivered once.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 3}),
        )
        .await;
    let (status, _) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // A storm longer than the retries: 503, nothing delivered, and the key is free for a later retry.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 50}),
        )
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

/// Every customer-service msgtype of facts.md §4.4, one object each (the OA's, then the MP's).
fn custom_types(mp: &str) -> Vec<(&'static str, bool, Value)> {
    vec![
        ("text", false, json!({"content": "您好"})),
        ("image", false, json!({"media_id": "MEDIA_img-1"})),
        ("voice", false, json!({"media_id": "MEDIA_voice"})),
        (
            "video",
            false,
            json!({"media_id": "MEDIA_video", "thumb_media_id": "THUMB_1", "title": "开箱", "description": "新品开箱视频"}),
        ),
        (
            "music",
            false,
            json!({"title": "歌", "description": "一首歌", "musicurl": "https://m.example.com/a.mp3", "hqmusicurl": "https://m.example.com/a-hq.mp3", "thumb_media_id": "THUMB_2"}),
        ),
        (
            "news",
            false,
            json!({"articles": [{"title": "上新", "description": "秋季新品", "url": "https://shop.example.com/n", "picurl": "https://shop.example.com/p.jpg"}]}),
        ),
        ("mpnews", false, json!({"media_id": "MPNEWS_1"})),
        ("mpnewsarticle", false, json!({"article_id": "ARTICLE_1"})),
        (
            "msgmenu",
            false,
            json!({"head_content": "您对本次服务是否满意？", "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}], "tail_content": "欢迎再次光临"}),
        ),
        (
            "wxcard",
            false,
            json!({"card_id": "pDF3iY9tv9zCGCj4jTXFOo1DxHdo"}),
        ),
        (
            "miniprogrampage",
            false,
            json!({"title": "看看", "appid": mp, "pagepath": "pages/index", "thumb_media_id": "THUMB_3"}),
        ),
        (
            "link",
            true,
            json!({"title": "帮助", "description": "常见问题", "url": "https://help.example.com", "thumb_url": "https://help.example.com/t.png"}),
        ),
        ("text", true, json!({"content": "小程序客服"})),
        ("image", true, json!({"media_id": "MEDIA_mp"})),
        (
            "miniprogrampage",
            true,
            json!({"title": "订单", "pagepath": "pages/order", "thumb_media_id": "THUMB_4"}),
        ),
    ]
}

#[tokio::test]
async fn every_custom_type_is_delivered() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    for (i, (msgtype, from_mp, object)) in custom_types(&w.mp).into_iter().enumerate() {
        let app = if from_mp { &w.mp } else { &w.oa };
        // One user each: the 48-hour window allows 5 messages per interaction.
        let openid = format!("talker{i}");
        w.user(app, &openid, json!({"last_interaction": now - 60}))
            .await;
        let mut body = json!({"type": "custom", "to": {"openid": openid}, "msgtype": msgtype});
        body[msgtype] = object.clone();
        if msgtype == "text" && !from_mp {
            body["customservice"] = json!({"kf_account": "test1@kftest"});
        }
        let (status, resp) = w.send(app, body.clone()).await;
        assert_eq!(status, 200, "{msgtype}: {resp}");
        let delivered = w.delivered(app).await;
        let last = delivered.last().unwrap();
        assert_eq!(last["touser"], openid.as_str(), "{msgtype}");
        assert_eq!(last["body"]["msgtype"], msgtype);
        assert_eq!(last["body"][msgtype], object, "{msgtype}");
        assert_eq!(last["body"]["customservice"], body["customservice"]);
    }
    assert_eq!(w.delivered(&w.oa).await.len(), 11);
    assert_eq!(w.delivered(&w.mp).await.len(), 4);
}

#[tokio::test]
async fn bad_custom_messages_are_refused_before_wechat() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    w.user(&w.oa, "talker", json!({"last_interaction": now - 60}))
        .await;
    w.user(&w.mp, "talker", json!({"last_interaction": now - 60}))
        .await;
    let cases: Vec<(&String, &str, Value, &str)> = vec![
        (&w.oa, "fax", json!({}), "msgtype"),
        (&w.oa, "voice", json!({}), "voice.media_id"),
        (
            &w.oa,
            "voice",
            json!({"media_id": "has space"}),
            "voice.media_id",
        ),
        (
            &w.oa,
            "video",
            json!({"media_id": "M"}),
            "video.thumb_media_id",
        ),
        (
            &w.oa,
            "music",
            json!({"musicurl": "ftp://x", "hqmusicurl": "https://x.example.com/a", "thumb_media_id": "T"}),
            "music.musicurl",
        ),
        (&w.oa, "mpnews", json!({"media_id": ""}), "mpnews.media_id"),
        (
            &w.oa,
            "mpnewsarticle",
            json!({}),
            "mpnewsarticle.article_id",
        ),
        (&w.oa, "msgmenu", json!({"list": []}), "msgmenu.list"),
        (
            &w.oa,
            "msgmenu",
            json!({"list": [{"id": "1"}]}),
            "msgmenu.list[0].content",
        ),
        (&w.oa, "wxcard", json!({"cardid": "x"}), "wxcard.cardid"),
        (
            &w.oa,
            "miniprogrampage",
            json!({"title": "t", "pagepath": "pages/a", "thumb_media_id": "T"}),
            "miniprogrampage.appid",
        ),
        (
            &w.oa,
            "link",
            json!({"title": "t", "description": "d", "url": "https://a.example.com", "thumb_url": "https://a.example.com/t"}),
            "msgtype",
        ),
        (&w.mp, "voice", json!({"media_id": "M"}), "msgtype"),
        (
            &w.mp,
            "link",
            json!({"title": "t", "url": "https://a.example.com", "thumb_url": "https://a.example.com/t"}),
            "link.description",
        ),
        (
            &w.oa,
            "text",
            json!({"content": "x".repeat(2049)}),
            "text.content",
        ),
    ];
    for (app, msgtype, object, field) in cases {
        let mut body = json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": msgtype});
        if msgtype != "fax" {
            body[msgtype] = object;
        }
        let (status, resp) = w.send(app, body).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some(field)),
            "{msgtype}: {resp}"
        );
        if field == "msgtype" && msgtype == "fax" {
            let message = resp["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("mpnewsarticle") && message.contains("link"),
                "{message}"
            );
        }
    }
    let (status, resp) = w
        .send(
            &w.oa,
            json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": "text", "text": {"content": "x"}, "customservice": {"kf_account": "nobody"}}),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["field"].as_str()),
        (422, Some("customservice.kf_account"))
    );
    assert_eq!(w.calls("/cgi-bin/message/custom/send"), 0);
    assert!(w.delivered(&w.oa).await.is_empty());
}
