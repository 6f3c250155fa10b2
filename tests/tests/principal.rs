//! Every `/v1` request the send function serves has a principal: the IAM principal API
//! Gateway verified, or the local server's bearer-key holder. A request that reaches the
//! Lambda through API Gateway without an IAM principal is refused with 401
//! `unauthenticated` (and logged); an event that is not an API Gateway HTTP API request (a
//! direct invoke) is an error, never served; the local server keeps working.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wxpush_send::{SendService, handle, handle_lambda};
use wxpush_shared::AppKind;
use wxpush_shared::store::EmbeddedStateStore;
use wxpush_tests::{
    EmulatorServer, LogCapture, apigw_v1_request, embedded_token_manager, emulated, local_server,
    memory_db,
};

const APP: &str = "wx00000000000a0b01";

async fn service(emulator: &EmulatorServer) -> SendService {
    let db = memory_db();
    let tokens = embedded_token_manager(emulator, APP, "principal-secret", db.clone());
    SendService::new(
        tokens,
        Arc::new(EmbeddedStateStore::new(db)),
        Duration::from_secs(2),
    )
}

/// A real API Gateway v2 event for the token route, its request context edited by `edit`.
fn event_without(edit: impl FnOnce(&mut Value)) -> lambda_http::Request {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/apigw-v2-get-token.json"
    ))
    .unwrap()
    .replace("APPID", APP)
    .replace("METHOD", "GET");
    let mut e: Value = serde_json::from_str(&fixture).unwrap();
    edit(&mut e["requestContext"]);
    lambda_http::request::from_str(&e.to_string()).expect("an API Gateway v2 event")
}

fn json_of(resp: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null)
}

/// The emulator with the one official account [`APP`].
async fn emulator() -> EmulatorServer {
    EmulatorServer::start(vec![emulated(
        APP,
        "principal-secret",
        AppKind::OfficialAccount,
    )])
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn api_gateway_requests_without_an_iam_principal_are_refused() {
    let (logs, _guard) = LogCapture::start();
    let emulator = emulator().await;
    let svc = service(&emulator).await;
    // With its principal, the same event is served.
    let resp = handle(
        &svc,
        apigw_v1_request("GET", &format!("/v1/apps/{APP}/token"), None, &[]),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", json_of(&resp));
    let cases: Vec<(&str, lambda_http::Request)> = vec![
        (
            "no authorizer",
            event_without(|ctx| {
                ctx.as_object_mut().unwrap().remove("authorizer");
            }),
        ),
        (
            "an authorizer without iam",
            event_without(|ctx| ctx["authorizer"] = json!({})),
        ),
        (
            "a null userArn",
            event_without(|ctx| ctx["authorizer"]["iam"]["userArn"] = Value::Null),
        ),
        (
            "an empty userArn",
            event_without(|ctx| ctx["authorizer"]["iam"]["userArn"] = json!("")),
        ),
    ];
    for (what, req) in cases {
        let resp = handle(&svc, req).await;
        let body = json_of(&resp);
        assert_eq!(resp.status(), 401, "{what}: {body}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{what}: {body}");
        assert!(body.to_string().find("access_token").is_none(), "{what}");
    }
    let logged = logs.text();
    assert!(
        logged.contains("without an IAM principal"),
        "the refusals are logged: {logged}"
    );
    // Only the request with a principal reached WeChat's token endpoint.
    assert_eq!(emulator.emu.calls("/cgi-bin/stable_token"), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn events_that_are_not_api_gateway_requests_are_not_served() {
    let emulator = emulator().await;
    let svc = service(&emulator).await;
    // The runtime cannot read these as HTTP requests (an invocation error), or the handler
    // refuses them.
    let read = |name: &str| {
        std::fs::read_to_string(format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let rest_v1 = json!({"resource": "/v1/apps/{appid}/token", "path": format!("/v1/apps/{APP}/token"),
        "httpMethod": "GET", "headers": {}, "requestContext": {"stage": "prod",
        "httpMethod": "GET", "path": format!("/prod/v1/apps/{APP}/token")}, "body": null});
    let alb = json!({"requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:x"}},
        "httpMethod": "GET", "path": format!("/v1/apps/{APP}/token"), "headers": {}, "body": ""});
    for (what, event) in [
        ("an SQS event", read("sqs-event.json")),
        (
            "an EventBridge event",
            read("eventbridge-scheduled-event.json"),
        ),
        ("an API Gateway REST (v1) event", rest_v1.to_string()),
        ("an ALB event", alb.to_string()),
        (
            "any JSON",
            json!({"path": format!("/v1/apps/{APP}/token")}).to_string(),
        ),
    ] {
        // Read as an HTTP request only where a feature another function turns on is unified
        // in (the callback reads REST events): then the handler refuses it.
        if let Ok(req) = lambda_http::request::from_str(&event) {
            assert!(
                wxpush_send::handle_lambda(&svc, req).await.is_err(),
                "{what} is served"
            );
        }
    }
    // Whatever else reaches the handler without API Gateway's request context (another
    // event source, a pass-through event) is an invocation error, and `handle` refuses it.
    let bare = || {
        let mut req = lambda_http::Request::new(lambda_http::Body::Empty);
        *req.uri_mut() = format!("/v1/apps/{APP}/token").parse().unwrap();
        req
    };
    let err = handle_lambda(&svc, bare())
        .await
        .expect_err("not an API Gateway request: an error");
    assert!(err.to_string().contains("API Gateway"), "{err}");
    let resp = handle(&svc, bare()).await;
    assert_eq!(resp.status(), 401, "{}", json_of(&resp));
    assert_eq!(json_of(&resp)["error"]["code"], "unauthenticated");
    // A real API Gateway event goes through `handle_lambda` as through `handle`.
    let ok = handle_lambda(
        &svc,
        apigw_v1_request("GET", &format!("/v1/apps/{APP}/token"), None, &[]),
    )
    .await
    .expect("an API Gateway request is served");
    assert_eq!(ok.status(), 200);
    assert_eq!(emulator.emu.calls("/cgi-bin/stable_token"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_still_serves_its_bearer_key_holder() {
    let apps = wxpush_cli::local_server::demo_apps();
    let appid = apps.apps[0].appid.clone();
    let server = local_server(apps, "principal-key").await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/apps/{appid}/token", server.url());
    let ok = http
        .get(&url)
        .bearer_auth("principal-key")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // The holder's sends are recorded as the local caller's.
    let sent = http
        .post(format!("{}/v1/apps/{appid}/messages", server.url()))
        .bearer_auth("principal-key")
        .json(
            &json!({"type": "template", "to": {"openid": "nobody"}, "template_id": "T",
                      "data": {"thing1": {"value": "hi"}}}),
        )
        .send()
        .await
        .unwrap();
    let status = sent.status().as_u16();
    let answer: Value = sent.json().await.unwrap();
    assert_ne!(status, 401, "{answer}");
    assert_ne!(answer["error"]["code"], "unauthenticated", "{answer}");
}
