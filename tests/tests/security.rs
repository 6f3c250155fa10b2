//! Attacks on the public edge and the private API, each shown failing: made-up appids that
//! would cost secret-store reads, plaintext pushes to an encrypted app, a replayed signed
//! query string with another body, a stale URL verification, 5xx bodies that would describe
//! the inside, Idempotency-Keys shared across callers, over-long path ids, and the local
//! sandbox's controls from another site.

#[path = "common/ssm_requests.rs"]
mod ssm_requests;

use serde_json::{Value, json};
use ssm_requests::{SsmRequests, callback_secrets};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wxpush_callback::handle as callback_handle;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::callback::{crypto::MsgCrypt, signature};
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile, SecretStore};
use wxpush_shared::store::{DynamoStateStore, StateStore};
use wxpush_tests::faults::{Call, Fault, Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{
    LogCapture, TokenWorld, apigw_callback_request, apigw_v1_request, apigw_v1_request_as,
    local_server, random_appid, signed_query,
};

#[tokio::test]
async fn the_callback_function_never_reads_an_app_secret() {
    let (world, appid) = TokenWorld::with_app("sec-secret-never-read", None).await;
    let (secrets, requests) = callback_secrets(&world).await;
    let app = secrets.app(&appid).await.unwrap();
    assert!(app.app_secret.expose().is_empty());
    assert_eq!(app.callback_token.as_ref().unwrap().expose(), "cbtoken");
    assert!(matches!(
        secrets.app(&random_appid()).await,
        Err(wxpush_shared::secrets::ConfigError::UnknownApp { .. })
    ));
    // The callback works with it, end to end.
    let svc = CallbackService::new(secrets, world.state_store(), RecordingQueue::new());
    let now = now_unix();
    let q = signed_query("cbtoken", &now.to_string(), "1", &[("echostr", "ok")]);
    let resp = callback_handle(&svc, apigw_callback_request("GET", &appid, &q, b"", false)).await;
    assert_eq!(resp.status(), 200);
    // What went to SSM: a listing by names (DescribeParameters) and the callback's four
    // parameters by name; never a path read, never the AppSecret.
    let seen = requests.bodies();
    assert!(
        seen.contains("callback_token") && seen.contains("\"Path\""),
        "{seen}"
    );
    assert!(!seen.contains("app_secret"), "{seen}");
    assert!(!seen.contains("sec-secret-never-read"));
}

/// The callback service as the Lambda builds it (SSM behind the cache, only the callback's
/// parameters), counting SSM calls.
async fn counted_callback(world: &TokenWorld) -> (CallbackService, SsmRequests) {
    let (secrets, requests) = callback_secrets(world).await;
    let store: Arc<dyn StateStore> = world.state_store();
    (
        CallbackService::new(secrets, store, RecordingQueue::new()),
        requests,
    )
}

fn event_xml(from: &str, t: i64) -> String {
    format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>{from}</FromUserName><CreateTime>{t}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey></xml>"
    )
}

#[tokio::test]
async fn made_up_appids_cost_no_secret_reads_and_evict_nothing() {
    let (world, appid) = TokenWorld::with_app("sec-secret", None).await;
    let (svc, ssm_calls) = counted_callback(&world).await;
    // A real app's URL check: one listing, one read of its parameters.
    let now = now_unix();
    let mut q = signed_query("cbtoken", &now.to_string(), "1", &[("echostr", "hi")]);
    let verify = |q: &HashMap<String, String>| apigw_callback_request("GET", &appid, q, b"", false);
    assert_eq!(callback_handle(&svc, verify(&q)).await.status(), 200);
    let after_real = ssm_calls.total();
    assert!(after_real <= 3, "listing + one app read: {after_real}");
    // 300 made-up (well-formed) appids, 300 malformed ones: refused without a read.
    let body = event_xml("attacker", now);
    for i in 0..600 {
        let fake = if i % 2 == 0 {
            random_appid()
        } else {
            format!("wx{}", "z".repeat(i))
        };
        let resp = callback_handle(
            &svc,
            apigw_callback_request("POST", &fake, &q, body.as_bytes(), false),
        )
        .await;
        assert_eq!(resp.status(), 404, "{fake}");
    }
    assert_eq!(ssm_calls.total(), after_real, "no SSM call for them");
    println!(
        "SSM requests: {after_real} for the first request of a real app, {} more for 600 made-up or malformed appids",
        ssm_calls.total() - after_real
    );
    // The real app is still cached: no read either.
    q.insert("nonce".into(), "2".into());
    q.insert(
        "signature".into(),
        signature::compute(&["cbtoken", &now.to_string(), "2"]),
    );
    assert_eq!(callback_handle(&svc, verify(&q)).await.status(), 200);
    assert_eq!(ssm_calls.total(), after_real);
}

const SAFE: &str = "wx00000000000005a1";
const PLAIN: &str = "wx00000000000005a2";
const COMPAT: &str = "wx00000000000005a3";
const TOKEN: &str = "sec-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

async fn modes() -> (CallbackService, Arc<dyn StateStore>) {
    let entry = |appid: &str, key: Option<&str>, mode: Option<&str>| AppEntry {
        appid: appid.into(),
        kind: "official_account".into(),
        app_secret: "s".into(),
        callback_token: Some(TOKEN.into()),
        encoding_aes_key: key.map(str::to_string),
        callback_mode: mode.map(str::to_string),
        ..AppEntry::default()
    };
    let file = AppsFile {
        apps: vec![
            entry(SAFE, Some(AES_KEY), None),
            entry(PLAIN, None, None),
            entry(COMPAT, Some(AES_KEY), Some("compatible")),
        ],
    };
    let secrets: Arc<dyn SecretStore> =
        Arc::new(wxpush_shared::secrets::FileSecretStore::from_file(file).unwrap());
    let store: Arc<dyn StateStore> = Arc::new(wxpush_shared::store::EmbeddedStateStore::new(
        wxpush_tests::memory_db(),
    ));
    (
        CallbackService::new(secrets, store.clone(), RecordingQueue::new()),
        store,
    )
}

#[tokio::test]
async fn plaintext_pushes_to_encrypted_apps_are_refused() {
    let (svc, _) = modes().await;
    let now = now_unix();
    let xml = event_xml("u1", now);
    for appid in [SAFE, COMPAT] {
        let q = signed_query(TOKEN, &now.to_string(), "7", &[]);
        let resp = callback_handle(
            &svc,
            apigw_callback_request("POST", appid, &q, xml.as_bytes(), false),
        )
        .await;
        assert_eq!(resp.status(), 401, "{appid}");
        // The same event, encrypted, is accepted.
        let crypt = MsgCrypt::new(AES_KEY).unwrap();
        let encrypt = crypt.encrypt(&xml, appid, b"0123456789abcdef");
        let msg_signature = signature::compute(&[TOKEN, &now.to_string(), "7", &encrypt]);
        let q = signed_query(
            TOKEN,
            &now.to_string(),
            "7",
            &[("encrypt_type", "aes"), ("msg_signature", &msg_signature)],
        );
        let body = format!(
            "<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        let resp = callback_handle(
            &svc,
            apigw_callback_request("POST", appid, &q, body.as_bytes(), false),
        )
        .await;
        assert_eq!(resp.status(), 200, "{appid}");
    }
}

#[tokio::test]
async fn a_replayed_signed_query_with_another_body_is_refused() {
    let (svc, store) = modes().await;
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), "424242", &[]);
    let first = event_xml("u1", now);
    let post = |body: &str| apigw_callback_request("POST", PLAIN, &q, body.as_bytes(), false);
    assert_eq!(callback_handle(&svc, post(&first)).await.status(), 200);
    // WeChat's own retry: the same body.
    assert_eq!(callback_handle(&svc, post(&first)).await.status(), 200);
    // Someone who saw the signed query string posts a forged follow with it.
    let forged = "<xml><ToUserName>gh</ToUserName><FromUserName>victim</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>";
    let resp = callback_handle(&svc, post(forged)).await;
    assert_eq!(resp.status(), 401);
    let account = store
        .get(&wxpush_shared::store::ItemKey::account(PLAIN, "victim"))
        .await
        .unwrap();
    assert!(account.is_none(), "nothing of the forged body was recorded");
    // An over-long nonce never becomes a key.
    let q = signed_query(TOKEN, &now.to_string(), &"9".repeat(500), &[]);
    let resp = callback_handle(
        &svc,
        apigw_callback_request("POST", PLAIN, &q, first.as_bytes(), false),
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn url_verification_has_a_time_window_and_is_never_sniffed() {
    let (svc, _) = modes().await;
    let now = now_unix();
    for (ts, status) in [
        (now.to_string(), 200),
        ((now - 400).to_string(), 401),
        ((now + 400).to_string(), 401),
        (i64::MIN.to_string(), 401),
        (i64::MAX.to_string(), 401),
    ] {
        let q = signed_query(TOKEN, &ts, "5", &[("echostr", "<script>alert(1)</script>")]);
        let resp =
            callback_handle(&svc, apigw_callback_request("GET", PLAIN, &q, b"", false)).await;
        assert_eq!(resp.status(), status, "timestamp {ts}");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        if status == 200 {
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain")
            );
        }
    }
    // The same extremes on a push do not overflow either.
    let q = signed_query(TOKEN, &i64::MIN.to_string(), "5", &[]);
    let resp = callback_handle(
        &svc,
        apigw_callback_request("POST", PLAIN, &q, b"<xml/>", false),
    )
    .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_5xx_on_the_public_route_says_nothing_about_the_inside() {
    let (world, appid) = TokenWorld::with_app("sec-secret", None).await;
    let broken: Arc<dyn StateStore> = Arc::new(DynamoStateStore::new(
        world.dynamo.clone(),
        "wxpush-no-such-table",
    ));
    let svc = CallbackService::new(world.secrets(), broken, RecordingQueue::new());
    let now = now_unix();
    let q = signed_query("cbtoken", &now.to_string(), "3", &[]);
    let (logs, _guard) = LogCapture::start();
    let resp = callback_handle(
        &svc,
        apigw_callback_request("POST", &appid, &q, event_xml("u", now).as_bytes(), false),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let body = String::from_utf8_lossy(resp.body().as_ref()).to_string();
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["error"]["code"], "service_unavailable");
    for inside in [
        "wxpush-no-such-table",
        "arn:",
        "ResourceNotFound",
        "TransactWriteItems",
        "dynamodb",
        "DynamoDB",
    ] {
        assert!(!body.contains(inside), "{inside} in {body}");
    }
    assert!(
        logs.text().contains("wxpush-no-such-table"),
        "the detail is logged"
    );

    // A misconfigured app (no callback_token): 500 without the parameter's name.
    world
        .ssm
        .delete_parameter()
        .name(format!("{}/apps/{appid}/callback_token", world.prefix))
        .send()
        .await
        .unwrap();
    let svc = CallbackService::new(world.secrets(), world.state_store(), RecordingQueue::new());
    let resp = callback_handle(
        &svc,
        apigw_callback_request("POST", &appid, &q, event_xml("u", now).as_bytes(), false),
    )
    .await;
    assert_eq!(resp.status(), 500);
    let body = String::from_utf8_lossy(resp.body().as_ref()).to_string();
    assert!(
        !body.contains("callback_token") && !body.contains(&world.prefix),
        "{body}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn keys_belong_to_their_caller_and_every_request_names_it() {
    let (logs, _guard) = LogCapture::start();
    let (world, oa, _mp) = TokenWorld::with_oa_and_mp().await;
    world
        .emulator
        .control("/users", json!({"appid": oa, "openid": "fan"}))
        .await;
    let svc = wxpush_send::SendService::new(
        world.manager(wxpush_shared::token::TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_secs(2),
    );
    let body = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T",
                      "data": {"thing1": {"value": "hi"}}});
    let path = format!("/v1/apps/{oa}/messages");
    let orders = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-1";
    let billing = "arn:aws-cn:sts::123456789012:assumed-role/billing-service/i-2";
    let send = |caller: &str| {
        apigw_v1_request_as(
            caller,
            "POST",
            &path,
            Some(&body),
            &[("idempotency-key", "k-1")],
        )
    };
    let a = wxpush_send::handle(&svc, send(orders)).await;
    let b = wxpush_send::handle(&svc, send(billing)).await;
    let a_again = wxpush_send::handle(&svc, send(orders)).await;
    // The same role from another instance (another session name) is the same caller.
    let other_instance = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-9";
    let a_elsewhere = wxpush_send::handle(&svc, send(other_instance)).await;
    let json_of = |r: &lambda_http::Response<lambda_http::Body>| -> Value {
        serde_json::from_slice(r.body().as_ref()).unwrap()
    };
    let (a, b, a_again) = (json_of(&a), json_of(&b), json_of(&a_again));
    assert_ne!(a["id"], b["id"], "another caller's key is another request");
    assert_eq!(
        a["id"], a_again["id"],
        "the same caller's retry is replayed"
    );
    assert_eq!(
        a["id"],
        json_of(&a_elsewhere)["id"],
        "and so is its retry from another instance"
    );
    let delivered = world
        .emulator
        .get(&format!("/sandbox/messages?appid={oa}"))
        .await;
    assert_eq!(delivered.as_array().unwrap().len(), 2);
    // requested_by on the record; the caller in the log line of every /v1 request.
    let get = apigw_v1_request_as(
        orders,
        "GET",
        &format!("{path}/{}", a["id"].as_str().unwrap()),
        None,
        &[],
    );
    let record = json_of(&wxpush_send::handle(&svc, get).await);
    assert_eq!(record["requested_by"], orders);
    let logged = logs.text();
    assert!(
        logged.contains(orders) && logged.contains(billing),
        "callers logged"
    );
}

#[tokio::test]
async fn over_long_path_ids_never_reach_the_store() {
    let (world, oa, _mp) = TokenWorld::with_oa_and_mp().await;
    // Every store call fails: a 404 proves the request never touched it.
    let faults = Faults::new(5);
    faults.random(
        Call::Get,
        "",
        1.0,
        vec![Fault::Before("should not be called")],
    );
    faults.random(
        Call::Query,
        "",
        1.0,
        vec![Fault::Before("should not be called")],
    );
    let store = FaultyStateStore::new(world.state_store(), faults.clone());
    let svc = wxpush_send::SendService::new(
        world.manager(wxpush_shared::token::TokenPolicy::default(), 2000),
        store,
        Duration::from_secs(2),
    );
    let long = "x".repeat(4000);
    for path in [
        format!("/v1/apps/{oa}/messages/{long}"),
        format!("/v1/apps/{long}/token"),
        format!("/v1/users/{long}"),
        format!("/v1/apps/{oa}/messages/msg_ZZ"),
    ] {
        let resp = wxpush_send::handle(&svc, apigw_v1_request("GET", &path, None, &[])).await;
        assert_eq!(resp.status(), 404, "{}", &path[..40.min(path.len())]);
    }
    assert_eq!(faults.injected(), 0);
}

#[tokio::test]
async fn sandbox_controls_refuse_other_sites() {
    let server = local_server(wxpush_cli::local_server::demo_apps(), "sec-key").await;
    let url = format!("{}/sandbox/users", server.url());
    let appid = wxpush_cli::local_server::demo_apps().apps[0].appid.clone();
    let user = json!({"appid": appid, "openid": "o-sec"});
    let http = reqwest::Client::new();
    // A page whose DNS name was rebound to 127.0.0.1 sends its own name.
    let rebound = http
        .post(&url)
        .header("host", "evil.example:3000")
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // A cross-site form post cannot send JSON.
    let form = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("appid=x&openid=y")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let ok = http.post(&url).json(&user).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let localhost = http
        .get(format!("{}/sandbox/stats", server.url()))
        .header("host", "localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(localhost.status(), 200);
}
