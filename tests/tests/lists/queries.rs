//! The list route on `wxpush serve` over HTTP: the bearer key, and every bad query refused
//! with its status, code and the parameter at fault.

use serde_json::{Value, json};
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::local_server;

const OA: &str = "wxd0000000000000a1";
const KEY: &str = "lists-key";

async fn get(url: &str, key: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap_or(Value::Null), allow)
}

#[tokio::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let server = local_server(demo_apps(), KEY).await;
    for (what, allow) in [
        ("messages", "GET, POST"),
        ("batches", "GET, POST"),
        ("events", "GET"),
    ] {
        refusals(&server, what, allow).await;
    }
}

/// Every refusal of one list route (`what`: messages, batches or events).
async fn refusals(server: &wxpush_cli::local_server::RunningServer, what: &str, allow: &str) {
    let list = format!("{}/v1/apps/{OA}/{what}", server.url());
    let (status, empty, _) = get(&list, Some(KEY)).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty, json!({what: [], "next_cursor": null}));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=ffffffffffff.msg%23x", "cursor"),
        ("limit=5&cursor=FFFFFFFFFFFF.msg_1", "cursor"),
    ] {
        let (status, body, _) = get(&format!("{list}?{query}"), Some(KEY)).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // A well-formed cursor past the end is an empty last page.
    let (status, body, _) = get(&format!("{list}?cursor=000000000000.msg_x"), Some(KEY)).await;
    assert_eq!(
        (status, body),
        (200, json!({what: [], "next_cursor": null}))
    );

    let unknown = format!("{}/v1/apps/wx00000000000000ff/{what}", server.url());
    let (status, body, _) = get(&unknown, Some(KEY)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_app"))
    );
    let (status, body, _) = get(&format!("{list}/"), Some(KEY)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body, _) = get(&list, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, _) = get(&list, Some("wrong-key")).await;
    assert_eq!(status, 401);

    let resp = reqwest::Client::new()
        .delete(&list)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], allow);
}
