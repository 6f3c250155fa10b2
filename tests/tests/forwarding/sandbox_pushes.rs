//! The sandbox pushing back as WeChat would, end to end and in the standalone emulator.

use crate::webhook::{Webhook, eventually, webhook};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_tests::random_appid;

/// `wxpush serve --sandbox --forward URL` with the demo apps, forwarding to a webhook; the
/// calls the test makes on it.
struct Sandbox {
    _server: wxpush_cli::local_server::RunningServer,
    base: String,
    http: reqwest::Client,
    hook: Webhook,
    oa: String,
    mp: String,
}

impl Sandbox {
    async fn start() -> Sandbox {
        use wxpush_cli::local_server::demo_apps;
        let hook = webhook(0).await;
        let apps = demo_apps();
        let (oa, mp) = (apps.apps[0].appid.clone(), apps.apps[1].appid.clone());
        let server = wxpush_tests::local_server_forwarding(
            apps,
            "sandbox-key",
            Some(hook.url.clone()),
            Duration::from_secs(3600),
        )
        .await;
        Sandbox {
            base: server.url(),
            _server: server,
            http: reqwest::Client::new(),
            hook,
            oa,
            mp,
        }
    }

    /// A control call (`/sandbox/...`), required to succeed.
    async fn control(&self, path: &str, body: Value) -> Value {
        let req = self
            .http
            .post(format!("{}/sandbox{path}", self.base))
            .json(&body);
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json::<Value>().await.unwrap()
    }

    /// A `GET /v1{path}` with the API key.
    async fn api_get(&self, path: &str) -> Value {
        let req = self
            .http
            .get(format!("{}/v1{path}", self.base))
            .bearer_auth("sandbox-key");
        req.send().await.unwrap().json::<Value>().await.unwrap()
    }

    /// A message sent through `POST /v1/apps/{appid}/messages`.
    async fn send(&self, appid: &str, message: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/apps/{appid}/messages", self.base))
            .bearer_auth("sandbox-key")
            .json(message)
            .send()
            .await
            .unwrap()
    }
}

/// A user follows: the push is recorded, the unionid looked up, and the event forwarded.
async fn a_follow_is_recorded_completed_and_forwarded(s: &Sandbox) {
    s.control(
        "/users/o-fan/follow",
        json!({"appid": s.oa, "unionid": "u-fan"}),
    )
    .await;
    let subscribed = s
        .hook
        .forwarded("wechat.event.subscribe")
        .await
        .expect("the subscribe event reaches the webhook");
    assert_eq!(subscribed[0]["openid"], "o-fan");
    assert_eq!(subscribed[0]["message"]["Event"], "subscribe");
    let accounts = eventually(10, move || async move {
        let u = s.api_get("/users/u-fan").await;
        (u["accounts"][0]["subscribed"] == true).then_some(u)
    })
    .await
    .expect("the follower is mapped to its unionid");
    assert_eq!(accounts["accounts"][0]["openid"], "o-fan");
}

/// A template message to the unionid; the emulator reports it delivered, and the report is
/// forwarded.
async fn a_template_message_is_reported_delivered(s: &Sandbox) {
    let sent = s
        .send(
            &s.oa,
            &json!({"type": "template", "to": {"unionid": "u-fan"}, "template_id": "TPL1",
                      "data": {"thing1": {"value": "您的订单已发货"}}}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().await.unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    let path = format!("/apps/{}/messages/{id}", s.oa);
    let delivered = eventually(10, || async {
        let m = s.api_get(&path).await;
        (m["status"] == "delivered").then_some(m)
    })
    .await
    .expect("TEMPLATESENDJOBFINISH marks the message delivered");
    assert_eq!(delivered["delivery"]["status"], "success");
    let finished = s
        .hook
        .forwarded("wechat.event.TEMPLATESENDJOBFINISH")
        .await
        .expect("the delivery report is forwarded too");
    assert_eq!(
        finished[0]["message"]["MsgID"],
        sent["wechat_msgid"].to_string().as_str()
    );
}

/// A mini program subscribe message: granted, sent, reported sent.
async fn a_subscribe_message_is_reported_sent(s: &Sandbox) {
    s.control(
        "/users",
        json!({"appid": s.mp, "openid": "m-fan", "unionid": "u-fan"}),
    )
    .await;
    s.control(
        "/grants",
        json!({"appid": s.mp, "openid": "m-fan", "template_id": "SUB1"}),
    )
    .await;
    let sub = s
        .send(
            &s.mp,
            &json!({"type": "subscribe", "to": {"openid": "m-fan"}, "template_id": "SUB1",
                      "data": {"phrase1": {"value": "已发货"}}}),
        )
        .await;
    assert_eq!(sub.status(), 200, "{}", sub.text().await.unwrap());
    let sent_event = s
        .hook
        .forwarded("wechat.event.subscribe_msg_sent_event")
        .await
        .expect("subscribe_msg_sent_event is pushed and forwarded");
    assert_eq!(
        sent_event[0]["message"]["SubscribeMsgSentEvent"]["List"][0]["TemplateId"],
        "SUB1"
    );
}

/// The user unfollows: recorded in the user's accounts, and forwarded.
async fn an_unfollow_is_recorded_and_forwarded(s: &Sandbox) {
    s.control("/users/o-fan/unfollow", json!({"appid": s.oa}))
        .await;
    eventually(10, || async {
        let u = s.api_get("/users/u-fan").await;
        let oa_account = u["accounts"]
            .as_array()?
            .iter()
            .find(|a| a["appid"] == s.oa.as_str())?
            .clone();
        (oa_account["subscribed"] == false).then_some(())
    })
    .await
    .expect("the unsubscribe is recorded");
    s.hook
        .forwarded("wechat.event.unsubscribe")
        .await
        .expect("and forwarded");
}

/// Every push was answered `success` on its first try, and each event forwarded once.
async fn every_push_was_answered_at_once_and_forwarded_once(s: &Sandbox) {
    let pushes: Value = s
        .http
        .get(format!("{}/sandbox/pushes", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pushes = pushes.as_array().unwrap();
    assert_eq!(pushes.len(), 5, "{pushes:?}");
    for p in pushes {
        assert_eq!(p["status"], "delivered", "{p}");
        assert_eq!(p["answer"], "success", "{p}");
        assert_eq!(p["attempts"], 1, "{p}");
    }
    assert_eq!(s.hook.got.lock().unwrap().len(), 5);
}

/// `wxpush serve --sandbox --forward URL` end to end, with no hand-made callback: a user
/// follows the demo official account (the emulator pushes an encrypted `subscribe`), which is
/// recorded, completed with its unionid and forwarded; a template message to that unionid is
/// sent, the emulator pushes `TEMPLATESENDJOBFINISH`, and the message reads `delivered`; a
/// mini program subscribe message brings `subscribe_msg_sent_event`; an unfollow shows in the
/// user's accounts.
#[tokio::test]
async fn the_sandbox_pushes_back_and_every_push_is_recorded_and_forwarded() {
    let s = Sandbox::start().await;
    a_follow_is_recorded_completed_and_forwarded(&s).await;
    a_template_message_is_reported_delivered(&s).await;
    a_subscribe_message_is_reported_sent(&s).await;
    an_unfollow_is_recorded_and_forwarded(&s).await;
    // The grant itself was pushed too (subscribe_msg_popup_event).
    s.hook
        .forwarded("wechat.event.subscribe_msg_popup_event")
        .await
        .expect("the grant is pushed and forwarded");
    every_push_was_answered_at_once_and_forwarded_once(&s).await;
}

/// The standalone emulator (`wxpush sandbox --callback-base URL`) retries a push WeChat's way
/// (3 tries in all), signs it with the app's Token, and lists every outcome; without a
/// callback base it lists the push as not sent.
#[tokio::test]
async fn the_emulator_retries_a_push_three_times_and_lists_the_outcome() {
    use wxpush_cli::sandbox::CallbackKeys;
    let appid = random_appid();
    let mut app = wxpush_tests::emulated(&appid, "push-secret", AppKind::OfficialAccount);
    app.callback = Some(CallbackKeys {
        token: "pushtoken".into(),
        encoding_aes_key: None,
        encrypted: false,
    });
    wxpush_tests::remember_secrets(["pushtoken".to_string()]);
    let emulator = wxpush_tests::EmulatorServer::start(vec![app]).await;
    let http = reqwest::Client::new();
    let follow = |openid: &'static str| {
        http.post(format!("{}/sandbox/users/{openid}/follow", emulator.base))
            .json(&json!({"appid": appid}))
            .send()
    };
    let pushes = || async {
        http.get(format!("{}/sandbox/pushes", emulator.base))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    };
    // No callback base yet: listed, not sent.
    assert!(follow("o-a").await.unwrap().status().is_success());
    assert_eq!(pushes().await[0]["status"], "not_pushed");

    // A receiver that fails twice, then answers `success`; it checks the signature itself.
    let calls = Arc::new(AtomicU32::new(0));
    let (addr, server) = receiver_failing_twice(calls.clone()).await;
    emulator
        .emu
        .set_callback_base(Some(format!("http://{addr}/wechat")));
    assert!(follow("o-b").await.unwrap().status().is_success());
    let outcome = eventually(10, || async {
        let all = pushes().await;
        (all.len() == 2).then(|| all[1].clone())
    })
    .await
    .expect("the push ends");
    assert_eq!(outcome["status"], "delivered", "{outcome}");
    assert_eq!(outcome["attempts"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.abort();
    // The receiver is gone: three failed tries, listed as failed.
    assert!(follow("o-c").await.unwrap().status().is_success());
    let failed = eventually(10, || async {
        let all = pushes().await;
        (all.len() == 3).then(|| all[2].clone())
    })
    .await
    .expect("the push ends");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 3);
}

/// A callback receiver on 127.0.0.1:0 that checks each push is a `subscribe` signed with the
/// Token `pushtoken`, answers 500 to the first two (counted in `calls`), then `success`.
async fn receiver_failing_twice(
    calls: Arc<AtomicU32>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let receiver = axum::Router::new().route(
        "/wechat/{appid}",
        axum::routing::post(
            move |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >,
                  body: String| {
                let c = calls.clone();
                async move {
                    let signed = wxpush_shared::callback::signature::verify(
                        &q["signature"],
                        &["pushtoken", &q["timestamp"], &q["nonce"]],
                    );
                    assert!(signed && body.contains("<Event><![CDATA[subscribe]]></Event>"));
                    if c.fetch_add(1, Ordering::SeqCst) < 2 {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                    } else {
                        (axum::http::StatusCode::OK, "success".to_string())
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    (addr, server)
}
