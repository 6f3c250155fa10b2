//! `"type": "oa_subscribe"`: an official account's subscribe notification (订阅通知,
//! `subscribe/bizsend`), end to end in `wxpush serve --sandbox`: the user's acceptance is
//! pushed as `subscribe_msg_popup_event` and recorded as a grant, one notification uses it
//! (WeChat reports it with `subscribe_msg_sent_event`), the next one is refused 403; bad
//! requests are refused 422 before WeChat is called.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_cli::local_server::demo_apps;
use wxpush_shared::AppKind;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::{Attr, ItemKey};

const KEY: &str = "oa-sub-key";

struct Local {
    base: String,
    http: reqwest::Client,
    _server: wxpush_cli::local_server::RunningServer,
}

impl Local {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    /// Waits (bounded) until the emulator lists `n` pushes, all answered `success`.
    async fn pushes(&self, n: usize) -> Vec<Value> {
        for _ in 0..100 {
            let all = self.get("/sandbox/pushes").await;
            let all = all.as_array().cloned().unwrap_or_default();
            if all.len() >= n {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} pushes");
    }
}

async fn local() -> (Local, String, String) {
    let apps = demo_apps();
    let (oa, mp) = (apps.apps[0].appid.clone(), apps.apps[1].appid.clone());
    let server = wxpush_tests::local_server(apps, KEY).await;
    (
        Local {
            base: server.url(),
            http: reqwest::Client::new(),
            _server: server,
        },
        oa,
        mp,
    )
}

fn notification(openid: &str) -> Value {
    json!({"type": "oa_subscribe", "to": {"openid": openid}, "template_id": "OAT1",
           "page": "https://example.com/orders/1",
           "data": {"thing1": {"value": "订单已发货"}, "time2": {"value": "2026年11月26日 10:00"}}})
}

#[tokio::test]
async fn a_grant_is_used_by_one_notification_and_the_next_is_refused() {
    let (l, oa, _) = local().await;
    l.post(
        "/sandbox/users",
        json!({"appid": oa, "openid": "o-oa", "unionid": "u-oa"}),
    )
    .await;
    // No grant yet: WeChat refuses, 403 subscription_required.
    let (status, refused) = l
        .post(&format!("/v1/apps/{oa}/messages"), notification("o-oa"))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "subscription_required");
    assert_eq!(refused["error"]["wechat_errcode"], 43101);

    // The user accepts once (the popup event is pushed back and recorded).
    l.post(
        "/sandbox/grants",
        json!({"appid": oa, "openid": "o-oa", "template_id": "OAT1"}),
    )
    .await;
    let (status, sent) = l
        .post(&format!("/v1/apps/{oa}/messages"), notification("o-oa"))
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "sent");
    let delivered = l.get(&format!("/sandbox/messages?appid={oa}")).await;
    let delivered = delivered.as_array().unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["path"], "/cgi-bin/message/subscribe/bizsend");
    assert_eq!(delivered[0]["body"]["page"], "https://example.com/orders/1");
    assert_eq!(
        delivered[0]["body"]["data"]["thing1"]["value"],
        "订单已发货"
    );
    assert_eq!(delivered[0]["msgid"], sent["wechat_msgid"]);

    // The popup and the sent report were pushed to wxpush and acknowledged.
    let pushes = l.pushes(2).await;
    let events: Vec<&str> = pushes
        .iter()
        .map(|p| p["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["subscribe_msg_popup_event", "subscribe_msg_sent_event"]
    );
    assert!(
        pushes.iter().all(|p| p["answer"] == "success"),
        "{pushes:?}"
    );

    // One acceptance, one notification: the second is refused.
    let (status, again) = l
        .post(&format!("/v1/apps/{oa}/messages"), notification("o-oa"))
        .await;
    assert_eq!(status, 403, "{again}");
    // By unionid too, through the official account's follower record.
    l.post(
        "/sandbox/grants",
        json!({"appid": oa, "openid": "o-oa", "template_id": "OAT1"}),
    )
    .await;
    let mut by_union = notification("x");
    by_union["to"] = json!({"unionid": "u-oa"});
    // The unionid is known once the follower is: map it through the sandbox's follower record.
    let (status, _) = l
        .post(&format!("/v1/apps/{oa}/followers/sync"), json!({}))
        .await;
    assert_eq!(status, 202);
    let mut sent_by_union = (0, Value::Null);
    for _ in 0..100 {
        sent_by_union = l
            .post(&format!("/v1/apps/{oa}/messages"), by_union.clone())
            .await;
        if sent_by_union.0 != 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent_by_union.0, 200, "{}", sent_by_union.1);
}

#[tokio::test]
async fn bad_notifications_are_refused_before_wechat() {
    let (l, oa, mp) = local().await;
    l.post("/sandbox/users", json!({"appid": oa, "openid": "o-bad"}))
        .await;
    l.post("/sandbox/users", json!({"appid": mp, "openid": "m-bad"}))
        .await;
    let before = l.get("/sandbox/stats").await;
    let cases = [
        (mp.clone(), notification("m-bad"), "type"),
        (
            oa.clone(),
            {
                let mut n = notification("o-bad");
                n["page"] = json!("pages/index");
                n
            },
            "page",
        ),
        (
            oa.clone(),
            {
                let mut n = notification("o-bad");
                n["data"]["thing1"]["value"] =
                    json!("这是一条超过二十个字符长度限制的订阅通知内容文字");
                n
            },
            "data.thing1.value",
        ),
        (
            oa.clone(),
            {
                let mut n = notification("o-bad");
                n["lang"] = json!("zh_CN");
                n
            },
            "lang",
        ),
        (
            oa.clone(),
            {
                let mut n = notification("o-bad");
                n["miniprogram"] = json!({"appid": "nope"});
                n
            },
            "miniprogram.appid",
        ),
    ];
    for (appid, body, field) in cases {
        let (status, err) = l.post(&format!("/v1/apps/{appid}/messages"), body).await;
        assert_eq!(status, 422, "{field}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    // A template wxpush knows: a missing key is named before WeChat is called.
    l.post(
        "/sandbox/templates",
        json!({"appid": oa, "id": "OAT1", "kind": "subscribe_once", "title": "发货通知",
               "content": "商品:{{thing1.DATA}}\n时间:{{time2.DATA}}\n单号:{{character_string3.DATA}}"}),
    )
    .await;
    let listed = l
        .http
        .get(format!("{}/v1/apps/{oa}/templates", l.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let (status, err) = l
        .post(&format!("/v1/apps/{oa}/messages"), notification("o-bad"))
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "data.character_string3", "{err}");
    let after = l.get("/sandbox/stats").await;
    assert_eq!(
        before.get("/cgi-bin/message/subscribe/bizsend"),
        after.get("/cgi-bin/message/subscribe/bizsend"),
        "WeChat was never called"
    );
    assert!(after.get("/cgi-bin/message/subscribe/bizsend").is_none());
}

/// The callback keeps an official account's grants as it keeps a mini program's: an
/// acceptance adds one, a reported sent message uses it up.
#[tokio::test]
async fn an_official_accounts_grants_are_kept_by_its_callback() {
    let appid = wxpush_tests::random_appid();
    let (svc, store, _emulator): (CallbackService, _, _) =
        wxpush_tests::callback_service(&[(&appid, "oatoken", None, AppKind::OfficialAccount)])
            .await;
    let push = |xml: String| {
        let now = now_unix();
        let q =
            wxpush_tests::signed_query("oatoken", &now.to_string(), &wxpush_tests::nonce(), &[]);
        let (svc, appid) = (&svc, appid.as_str());
        async move { svc.receive(appid, &q, xml.as_bytes(), now).await.unwrap() }
    };
    let head = |event: &str, t: i64| {
        format!(
            "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o-g]]></FromUserName><CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
        )
    };
    push(format!("{}<SubscribeMsgPopupEvent><List><TemplateId>OAT1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent></xml>", head("subscribe_msg_popup_event", 1_700_000_000))).await;
    let grant = store
        .get(&ItemKey::grant(&appid, "o-g", "OAT1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.get("available"), Some(&Attr::N(1)));
    push(format!("{}<SubscribeMsgSentEvent><List><TemplateId>OAT1</TemplateId><MsgID>77</MsgID><ErrorCode>0</ErrorCode><ErrorStatus>success</ErrorStatus></List></SubscribeMsgSentEvent></xml>", head("subscribe_msg_sent_event", 1_700_000_010))).await;
    let grant = store
        .get(&ItemKey::grant(&appid, "o-g", "OAT1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.get("available"), Some(&Attr::N(0)));
    assert_eq!(grant.get("last_msgid"), Some(&Attr::S("77".into())));
}

/// The send Lambda's handler with a real API Gateway event, the state on moto's DynamoDB:
/// a granted notification is sent by `bizsend` and recorded; a mini program cannot send one.
#[tokio::test]
async fn the_send_lambda_sends_a_notification_on_moto() {
    use wxpush_send::{SendService, handle};
    use wxpush_shared::token::TokenPolicy;
    let (world, oa, mp) = wxpush_tests::TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_millis(2000),
    );
    let call = |appid: &str, body: Value| {
        let req = wxpush_tests::apigw_v1_request(
            "POST",
            &format!("/v1/apps/{appid}/messages"),
            Some(&body),
            &[],
        );
        let svc = &svc;
        async move {
            let resp = handle(svc, req).await;
            let status = resp.status().as_u16();
            (
                status,
                serde_json::from_slice::<Value>(resp.body().as_ref()).unwrap(),
            )
        }
    };
    world
        .emulator
        .control("/users", json!({"appid": oa, "openid": "o-moto"}))
        .await;
    world
        .emulator
        .control(
            "/grants",
            json!({"appid": oa, "openid": "o-moto", "template_id": "OAT1"}),
        )
        .await;
    let (status, sent) = call(&oa, notification("o-moto")).await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["id"].as_str().unwrap();
    let record = world
        .state_store()
        .get(&ItemKey::message(&oa, id))
        .await
        .unwrap()
        .expect("the message is recorded in DynamoDB");
    assert_eq!(record.get("type"), Some(&Attr::S("oa_subscribe".into())));
    assert_eq!(
        world
            .emulator
            .emu
            .calls("/cgi-bin/message/subscribe/bizsend"),
        1
    );
    let (status, err) = call(&mp, notification("m-moto")).await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("official account"),
        "{err}"
    );
    assert_eq!(
        world
            .emulator
            .emu
            .calls("/cgi-bin/message/subscribe/bizsend"),
        1
    );
}
