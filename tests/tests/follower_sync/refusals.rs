//! What the sync routes refuse, and a start without a queue.

use crate::world::{SyncWorld, test_config};
use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::apigw_v1_request;

#[tokio::test(flavor = "current_thread")]
async fn refusals_are_clear() {
    let w = SyncWorld::new(test_config()).await;
    let (status, body) = w.call("GET", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_sync"))
    );
    for (body, status, code) in [
        (json!({"restart": "yes"}), 422, "validation_failed"),
        (json!({"from": "o1"}), 422, "validation_failed"),
        (json!([1]), 400, "bad_request"),
    ] {
        let (s, b) = w.call("POST", Some(body)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{b}"
        );
    }
    // A mini program has no followers; an unknown app is unknown.
    let path = format!("/v1/apps/{}/followers/sync", w.mp);
    let resp = handle(&w.svc, apigw_v1_request("POST", &path, None, &[])).await;
    assert_eq!(resp.status().as_u16(), 422);
    let resp = handle(
        &w.svc,
        apigw_v1_request(
            "POST",
            "/v1/apps/wx0000000000000000/followers/sync",
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 404);
    let resp = handle(&w.svc, apigw_v1_request("DELETE", &path, None, &[])).await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");

    // Without a queue (WXPUSH_QUEUE_URL unset) the start is refused and left resumable.
    let tokens = w.world.manager(TokenPolicy::default(), 2000);
    let no_queue = SendService::new(tokens, w.store.clone(), Duration::from_secs(2));
    let path = format!("/v1/apps/{}/followers/sync", w.oa);
    let resp = handle(&no_queue, apigw_v1_request("POST", &path, None, &[])).await;
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(
        (resp.status().as_u16(), body["error"]["code"].as_str()),
        (503, Some("queue_unavailable")),
        "{body}"
    );
    let p = w.progress().await;
    assert_eq!(p["state"], "failed");
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("WXPUSH_QUEUE_URL"),
        "{p}"
    );
    // With the queue, the same start resumes that run.
    let (status, body) = w.call("POST", None).await;
    assert_eq!((status, body["resumed"].as_bool()), (202, Some(true)));
}
