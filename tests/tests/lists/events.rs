//! `GET /v1/apps/{appid}/events` on `wxpush serve --sandbox`: what the emulator pushed to the
//! server's own callback, newest first, with each event's forwarding state as it moves
//! (`pending` while the webhook fails, then `forwarded`; `off` without `--forward`).

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::LocalClient;

const OA: &str = "wxd0000000000000a1";
const KEY: &str = "events-key";

/// The local server's API and controls.
struct Local {
    _server: wxpush_cli::local_server::RunningServer,
    client: LocalClient,
}

impl Local {
    fn new(server: wxpush_cli::local_server::RunningServer) -> Local {
        let client = LocalClient::new(&server, KEY);
        Local {
            _server: server,
            client,
        }
    }

    async fn control(&self, path: &str, body: Value) {
        self.client.control(path, body).await;
    }

    async fn events(&self, query: &str) -> Value {
        let (status, page) = self
            .client
            .get(&format!("/v1/apps/{OA}/events{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The events list once `ready` holds for it (within `secs`).
    async fn events_when(&self, secs: u64, ready: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..secs * 10 {
            let page = self.events("").await;
            if ready(&page) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the events never got there: {}", self.events("").await);
    }
}

/// A webhook that answers 500 to its first call and 200 after.
async fn flaky_webhook() -> String {
    let calls = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move || {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn kinds(page: &Value) -> Vec<(String, String)> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let what = e["event"]
                .as_str()
                .or(e["msg_type"].as_str())
                .unwrap_or("?");
            (
                what.to_string(),
                e["openid"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_push_is_listed_with_its_forwarding_as_it_moves() {
    let w = Local::new(
        wxpush_tests::local_server_forwarding(
            demo_apps(),
            KEY,
            Some(flaky_webhook().await),
            Duration::from_secs(3600),
        )
        .await,
    );
    w.control("/users/o_a/follow", json!({"appid": OA, "unionid": "u_a"}))
        .await;
    // The first delivery fails: pending, with the attempt and why.
    let pending = w
        .events_when(10, |p| p["events"][0]["forwarding"]["attempts"] == 1)
        .await;
    let f = &pending["events"][0]["forwarding"];
    assert_eq!(f["state"], "pending", "{pending}");
    assert!(f["last_error"].as_str().unwrap().contains("500"), "{f}");
    assert!(f["next_attempt_at"].as_i64().is_some());
    // Its retry (5 s later) goes through.
    w.events_when(15, |p| p["events"][0]["forwarding"]["state"] == "forwarded")
        .await;
    w.control("/users/o_a/unfollow", json!({"appid": OA})).await;
    w.control("/users/o_b/follow", json!({"appid": OA, "unionid": "u_b"}))
        .await;
    let all = w
        .events_when(15, |p| {
            p["events"].as_array().unwrap().len() == 3
                && p["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["forwarding"]["state"] == "forwarded")
        })
        .await;
    let expected = [
        ("subscribe", "o_b"),
        ("unsubscribe", "o_a"),
        ("subscribe", "o_a"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(e, o)| (e.to_string(), o.to_string()))
        .collect();
    assert_eq!(kinds(&all), expected);
    let first = &all["events"][0];
    assert_eq!(first["msg_type"], "event");
    assert_eq!(first["id"].as_str().unwrap().len(), 40);
    assert!(first["received_at"].as_i64().unwrap() >= first["create_time"].as_i64().unwrap() - 5);

    // Two at a time: the same three, in the same order.
    let page = w.events("?limit=2").await;
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let rest = w.events(&format!("?limit=2&cursor={cursor}")).await;
    assert!(rest["next_cursor"].is_null());
    let mut paged = kinds(&page);
    paged.extend(kinds(&rest));
    assert_eq!(paged, expected);
}

#[tokio::test]
async fn without_forwarding_an_event_says_so() {
    let w = Local::new(wxpush_tests::local_server(demo_apps(), KEY).await);
    w.control("/users/o_c/follow", json!({"appid": OA})).await;
    let page = w
        .events_when(10, |p| p["events"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(kinds(&page), [("subscribe".to_string(), "o_c".to_string())]);
    assert_eq!(page["events"][0]["forwarding"], json!({"state": "off"}));
}
