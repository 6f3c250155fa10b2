//! The Lambda handlers called directly with real event JSON, and the local server over HTTP.

#[path = "common/one_app_server.rs"]
mod one_app_server;

use lambda_runtime::{Context, LambdaEvent};
use one_app_server::one_app_server;
use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::AppKind;
use wxpush_shared::clock::now_unix;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{SsmApp, TokenWorld, apigw_v1_request, emulated, put_app, random_appid};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn apigw_get_token(appid: &str, method: &str) -> lambda_http::Request {
    let json = fixture("apigw-v2-get-token.json")
        .replace("APPID", appid)
        .replace("METHOD", method);
    lambda_http::request::from_str(&json).expect("a real API Gateway v2 event parses")
}

fn body_json(resp: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test]
async fn refresh_handler_over_a_real_eventbridge_scheduled_event() {
    let (due, fresh, broken, missing) = (
        random_appid(),
        random_appid(),
        random_appid(),
        random_appid(),
    );
    let world = TokenWorld::new(vec![
        emulated(&due, "s-due", AppKind::OfficialAccount),
        emulated(&fresh, "s-fresh", AppKind::MiniProgram),
        emulated(&broken, "s-broken", AppKind::MiniProgram),
    ])
    .await;
    for (appid, secret) in [
        (&due, Some("s-due")),
        (&fresh, Some("s-fresh")),
        (&broken, Some("wrong-secret")),
        (&missing, None),
    ] {
        put_app(
            &world.ssm,
            &world.prefix,
            SsmApp {
                appid,
                kind: Some("mini_program"),
                app_secret: secret,
                token_api: None,
            },
        )
        .await;
    }
    let tokens = world.manager(TokenPolicy::default(), 2000);
    tokens.get(&fresh).await.unwrap();

    let payload = serde_json::from_str(&fixture("eventbridge-scheduled-event.json")).unwrap();
    let event = LambdaEvent::new(payload, Context::default());
    let window = Duration::from_secs(900);
    let err = wxpush_token_refresh::handle_event(tokens.clone(), window, None, event)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("2 app(s)") && message.contains(&broken) && message.contains(&missing),
        "{message}"
    );
    assert!(!message.contains("wrong-secret"), "{message}");

    let report = wxpush_token_refresh::refresh_all(tokens.clone(), window).await;
    assert_eq!(report.not_due.len(), 2, "{report:?}");
    assert!(report.not_due.contains(&due) && report.not_due.contains(&fresh));
    // The app whose refresh just failed is backing off (its lease is held); the app without a
    // secret fails again at once, before any WeChat call.
    assert_eq!(report.busy, vec![broken.clone()]);
    assert_eq!(
        report
            .failed
            .iter()
            .map(|f| f.appid.as_str())
            .collect::<Vec<_>>(),
        vec![missing.as_str()]
    );
    assert!(report.failed[0].error.contains("app_secret"));
    let stored = world.store().load(&due).await.unwrap().unwrap();
    assert!(
        stored.expires_at > now_unix() + 7000,
        "the due app was refreshed by the first run"
    );

    // A window wider than the token's life makes every healthy app due again.
    let report = wxpush_token_refresh::refresh_all(tokens, Duration::from_secs(8000)).await;
    assert_eq!(report.refreshed.len(), 2, "{report:?}");
}

#[tokio::test]
async fn send_handler_over_real_api_gateway_v2_events() {
    let (world, appid) = TokenWorld::with_app("secret-1", None).await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_millis(2000),
    );

    let resp = handle(&svc, apigw_get_token(&appid, "GET")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = body_json(&resp);
    assert_eq!(body["appid"], appid.as_str());
    assert!(body["access_token"].as_str().unwrap().len() > 100);
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((7190..=7200).contains(&expires_in), "{expires_in}");
    assert_eq!(
        body["expires_at"].as_i64().unwrap() - now_unix(),
        expires_in
    );

    let resp = handle(&svc, apigw_get_token(&random_appid(), "GET")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(body_json(&resp)["error"]["code"], "unknown_app");
    let resp = handle(&svc, apigw_get_token(&appid, "DELETE")).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    assert_eq!(body_json(&resp)["error"]["code"], "method_not_allowed");
    let json = fixture("apigw-v2-get-token.json")
        .replace("/v1/apps/APPID/token", "/v1/nothing")
        .replace("METHOD", "GET");
    let resp = handle(&svc, lambda_http::request::from_str(&json).unwrap()).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(body_json(&resp)["error"]["code"], "not_found");
    assert_eq!(world.emulator.emu.calls("/cgi-bin/stable_token"), 1);
}

#[tokio::test]
async fn local_server_serves_the_token_route_behind_the_bearer_key_with_its_sandbox() {
    let appid = "wx0000000000000c01";
    let server = one_app_server(appid).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/apps/{appid}/token", server.url());
    let token = only_the_bearer_key_gets_a_token(&http, &url).await;
    the_sandbox_issued_the_token_and_accepts_it(&http, &server.url(), appid, &token).await;
    the_send_route_is_served(&http, &server.url(), appid).await;
    unknown_routes_and_oversize_bodies_are_refused(&http, &server.url(), &url).await;
    drop(server);
    let stopped = http
        .get(&url)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(stopped.is_err(), "the server stops when dropped");
}

/// Without the bearer key `test-key` the token route is 401; with it, 200 and a token.
async fn only_the_bearer_key_gets_a_token(http: &reqwest::Client, url: &str) -> String {
    for auth in [
        None,
        Some("Bearer wrong-key"),
        Some("test-key"),
        Some("Bearer test-key-and-more"),
    ] {
        let mut req = http.get(url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"]["code"],
            "unauthorized"
        );
    }
    let resp = http.get(url).bearer_auth("test-key").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The sandbox under /sandbox issued the token, and accepts it.
async fn the_sandbox_issued_the_token_and_accepts_it(
    http: &reqwest::Client,
    base: &str,
    appid: &str,
    token: &str,
) {
    let stats: Value = http
        .get(format!("{base}/sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({"/cgi-bin/stable_token": 1}));
    http.post(format!("{base}/sandbox/users"))
        .json(&json!({"appid": appid, "openid": "o1"}))
        .send()
        .await
        .unwrap();
    let sent: Value = http
        .post(format!(
            "{base}/sandbox/cgi-bin/message/template/send?access_token={token}"
        ))
        .json(&json!({"touser": "o1", "template_id": "T", "data": {"k": {"value": "v"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["errcode"], 0);
}

/// The send route, over the same server.
async fn the_send_route_is_served(http: &reqwest::Client, base: &str, appid: &str) {
    let resp = http
        .post(format!("{base}/v1/apps/{appid}/messages"))
        .bearer_auth("test-key")
        .header("idempotency-key", "local-1")
        .json(&json!({"type": "template", "to": {"openid": "o1"}, "template_id": "T", "data": {"k": {"value": "v"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = http
        .get(format!("{base}/v1/apps/{appid}/messages/{id}"))
        .bearer_auth("test-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "sent");
}

/// Unknown routes are 404; a body over the limit is 413.
async fn unknown_routes_and_oversize_bodies_are_refused(
    http: &reqwest::Client,
    base: &str,
    url: &str,
) {
    let resp = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let big = vec![b'x'; wxpush_send::MAX_BODY_BYTES + 1];
    let resp = http
        .post(url)
        .bearer_auth("test-key")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
}

/// `POST /v1/apps/{appid}/messages` and `GET .../messages/{id}` as API Gateway delivers them.
fn apigw_v1(
    method: &str,
    path: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> lambda_http::Request {
    let headers: Vec<(&str, &str)> = idempotency_key
        .map(|k| ("idempotency-key", k))
        .into_iter()
        .collect();
    apigw_v1_request(method, path, body, &headers)
}

#[tokio::test]
async fn send_route_over_real_api_gateway_v2_events() {
    let (world, appid) = TokenWorld::with_app("secret-2", None).await;
    world
        .emulator
        .control("/users", json!({"appid": appid, "openid": "fan"}))
        .await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_millis(2000),
    );
    let body = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T1", "data": {"thing1": {"value": "你好"}}});
    let path = format!("/v1/apps/{appid}/messages");
    let resp = handle(&svc, apigw_v1("POST", &path, Some(&body), Some("req-7"))).await;
    assert_eq!(resp.status(), 200);
    let sent = body_json(&resp);
    let again = handle(&svc, apigw_v1("POST", &path, Some(&body), Some("req-7"))).await;
    assert_eq!(body_json(&again), sent);
    let id = sent["id"].as_str().unwrap();
    let resp = handle(&svc, apigw_v1("GET", &format!("{path}/{id}"), None, None)).await;
    assert_eq!(
        (resp.status().as_u16(), body_json(&resp)["status"].as_str()),
        (200, Some("sent"))
    );
    let resp = handle(&svc, apigw_v1("GET", &path, None, None)).await;
    assert_eq!(
        (
            resp.status().as_u16(),
            resp.headers()["allow"].to_str().unwrap()
        ),
        (405, "POST")
    );
    let resp = handle(
        &svc,
        apigw_v1("POST", &path, Some(&json!({"type": "template"})), None),
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(body_json(&resp)["error"]["field"], "to");
    assert_eq!(
        world
            .emulator
            .get(&format!("/sandbox/messages?appid={appid}"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
