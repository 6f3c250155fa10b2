//! Mini program login and the unionid directory (moto + the emulator); the session_key
//! appears in no response, no stored item and no log line.

use serde_json::{Value, json};
use wxpush_send::{SendService, handle};
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request};

use wxpush_tests::LogCapture;

async fn call(svc: &SendService, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let resp = handle(svc, apigw_v1_request(method, path, body.as_ref(), &[])).await;
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

/// The send service over moto and the emulator, with an official account and a mini program.
struct Login {
    world: TokenWorld,
    oa: String,
    mp: String,
    svc: SendService,
}

impl Login {
    /// A fresh login code for the mini program's user `mp-o1`.
    async fn code(&self) -> String {
        self.world
            .emulator
            .control("/login-codes", json!({"appid": self.mp, "openid": "mp-o1"}))
            .await["code"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `POST /v1/apps/{mp}/sessions` with `body`.
    async fn login(&self, body: Value) -> (u16, Value) {
        let path = format!("/v1/apps/{}/sessions", self.mp);
        call(&self.svc, "POST", &path, Some(body)).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn login_maps_the_user_and_never_shows_the_session_key() {
    let (logs, _guard) = LogCapture::start();

    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        std::time::Duration::from_secs(2),
    );
    let l = Login { world, oa, mp, svc };
    l.world
        .emulator
        .control(
            "/users",
            json!({"appid": l.mp, "openid": "mp-o1", "unionid": "U-100"}),
        )
        .await;
    let code = l.code().await;
    let (status, logged_in) = l.login(json!({"code": code})).await;
    assert_eq!(
        (status, logged_in.clone()),
        (200, json!({"openid": "mp-o1", "unionid": "U-100"}))
    );
    let refused = refused_logins(&l, &code).await;
    the_directory_has_the_login_and_the_follower(&l).await;
    no_session_key_is_shown(&l, &logs, &[logged_in, refused]).await;
}

/// A used code, a made-up code, throttling and a high-risk user; no code; a login on the
/// official account. Answers the used code's refusal.
async fn refused_logins(l: &Login, used: &str) -> Value {
    let (status, body) = l.login(json!({"code": used})).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (400, Some("invalid_code"), Some(40029))
    );
    assert_eq!(l.login(json!({"code": "nope"})).await.0, 400);
    for (errcode, status, name) in [(45011, 429, "rate_limited"), (40226, 403, "high_risk_user")] {
        l.world
            .emulator
            .control(
                "/faults",
                json!({"path": "/sns/jscode2session", "errcode": errcode}),
            )
            .await;
        let fresh = l.code().await;
        let (got, body) = l.login(json!({"code": fresh})).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(name)));
    }
    assert_eq!(l.login(json!({})).await.1["error"]["field"], "code");
    assert_eq!(
        call(
            &l.svc,
            "POST",
            &format!("/v1/apps/{}/sessions", l.oa),
            Some(json!({"code": "x"}))
        )
        .await
        .0,
        422
    );
    body
}

/// The directory: the login's mapping plus the official account's follower.
async fn the_directory_has_the_login_and_the_follower(l: &Login) {
    let (world, oa, mp) = (&l.world, &l.oa, &l.mp);
    let acct = world
        .state_store()
        .get(&ItemKey::account(mp, "mp-o1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acct["unionid"], Attr::S("U-100".into()));
    let jobs = wxpush_tests::faults::RecordingQueue::new();
    let callback = wxpush_shared::callback::service::CallbackService::new(
        world.secrets(),
        world.state_store(),
        jobs.clone(),
    );
    world
        .emulator
        .control(
            "/users",
            json!({"appid": oa, "openid": "oa-o1", "unionid": "U-100"}),
        )
        .await;
    let now = wxpush_shared::clock::now_unix();
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>oa-o1</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    );
    callback
        .receive(
            oa,
            &wxpush_tests::signed_query("cbtoken", &now.to_string(), "1", &[]),
            xml.as_bytes(),
            now,
        )
        .await
        .unwrap();
    // The unionid look-up is a queued job, not part of the callback.
    let runner = wxpush_tests::job_runner(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        jobs.clone(),
    );
    assert_eq!(wxpush_tests::run_jobs(&jobs, &runner).await, 1);
    let (status, user) = call(&l.svc, "GET", "/v1/users/U-100", None).await;
    assert_eq!(status, 200);
    let mut accounts = user["accounts"].as_array().unwrap().clone();
    accounts.sort_by_key(|a| a["openid"].as_str().unwrap().to_string());
    assert_eq!(
        accounts,
        vec![
            json!({"appid": mp, "openid": "mp-o1", "subscribed": null}),
            json!({"appid": oa, "openid": "oa-o1", "subscribed": true})
        ]
    );
    assert_eq!(call(&l.svc, "GET", "/v1/users/U-nobody", None).await.0, 404);
}

/// Every session_key WeChat issued: in no response, stored item or log line.
async fn no_session_key_is_shown(l: &Login, logs: &LogCapture, responses: &[Value]) {
    let keys: Vec<String> = l
        .world
        .emulator
        .get("/sandbox/session-keys")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["session_key"].as_str().unwrap().to_string())
        .collect();
    assert!(!keys.is_empty());
    let store = l.world.state_store();
    let stored = format!(
        "{:?} {:?}",
        store.query(&format!("acct#{}", l.mp)).await.unwrap(),
        store.query("union#U-100").await.unwrap()
    );
    let logged = logs.text();
    assert!(logged.contains("mini program login"), "logs were captured");
    for key in &keys {
        assert!(
            !stored.contains(key.as_str()) && !logged.contains(key.as_str()),
            "session_key leaked"
        );
        for body in responses {
            assert!(!body.to_string().contains(key.as_str()));
        }
    }
}
