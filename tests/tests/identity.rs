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

#[tokio::test(flavor = "current_thread")]
async fn login_maps_the_user_and_never_shows_the_session_key() {
    let (logs, _guard) = LogCapture::start();

    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        std::time::Duration::from_secs(2),
    );
    let emu = &world.emulator;
    emu.control(
        "/users",
        json!({"appid": mp, "openid": "mp-o1", "unionid": "U-100"}),
    )
    .await;
    let code = emu
        .control("/login-codes", json!({"appid": mp, "openid": "mp-o1"}))
        .await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/apps/{mp}/sessions");

    let (status, body) = call(&svc, "POST", &path, Some(json!({"code": code}))).await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"openid": "mp-o1", "unionid": "U-100"}))
    );

    // A used code, a made-up code, throttling and a high-risk user.
    let (status, body) = call(&svc, "POST", &path, Some(json!({"code": code}))).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (400, Some("invalid_code"), Some(40029))
    );
    assert_eq!(
        call(&svc, "POST", &path, Some(json!({"code": "nope"})))
            .await
            .0,
        400
    );
    for (errcode, status, name) in [(45011, 429, "rate_limited"), (40226, 403, "high_risk_user")] {
        emu.control(
            "/faults",
            json!({"path": "/sns/jscode2session", "errcode": errcode}),
        )
        .await;
        let fresh = emu
            .control("/login-codes", json!({"appid": mp, "openid": "mp-o1"}))
            .await["code"]
            .as_str()
            .unwrap()
            .to_string();
        let (got, body) = call(&svc, "POST", &path, Some(json!({"code": fresh}))).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(name)));
    }
    assert_eq!(
        call(&svc, "POST", &path, Some(json!({}))).await.1["error"]["field"],
        "code"
    );
    assert_eq!(
        call(
            &svc,
            "POST",
            &format!("/v1/apps/{oa}/sessions"),
            Some(json!({"code": "x"}))
        )
        .await
        .0,
        422
    );

    // The directory: the login's mapping plus the official account's follower.
    let store = world.state_store();
    let acct = store
        .get(&ItemKey::account(&mp, "mp-o1"))
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
    emu.control(
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
            &oa,
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
    let (status, user) = call(&svc, "GET", "/v1/users/U-100", None).await;
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
    assert_eq!(call(&svc, "GET", "/v1/users/U-nobody", None).await.0, 404);

    // Every session_key WeChat issued: in no response, stored item or log line.
    let keys: Vec<String> = emu
        .get("/sandbox/session-keys")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["session_key"].as_str().unwrap().to_string())
        .collect();
    assert!(!keys.is_empty());
    let stored = format!(
        "{:?} {:?}",
        store.query(&format!("acct#{mp}")).await.unwrap(),
        store.query("union#U-100").await.unwrap()
    );
    let logged = logs.text();
    assert!(logged.contains("mini program login"), "logs were captured");
    for key in &keys {
        assert!(
            !stored.contains(key.as_str()) && !logged.contains(key.as_str()),
            "session_key leaked"
        );
        assert!(!body.to_string().contains(key.as_str()));
    }
}
