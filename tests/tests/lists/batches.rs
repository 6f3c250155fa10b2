//! `GET /v1/apps/{appid}/batches` on `wxpush serve --sandbox`: the app's batches newest
//! first, each with its state and counts as its workers move it to `done`.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::LocalClient;

const OA: &str = "wxd0000000000000a1";
const KEY: &str = "batches-key";

/// The local server's API.
struct Local {
    client: LocalClient,
}

impl Local {
    /// A batch of a template to the first `size` users; its id.
    async fn batch(&self, size: usize) -> String {
        let recipients: Vec<Value> = (0..size)
            .map(|i| json!({"openid": format!("o_{i}")}))
            .collect();
        let body = json!({"message": {"type": "template", "template_id": "TPL_1",
                                      "data": {"thing1": {"value": "hi"}}},
                          "recipients": recipients});
        let (status, answer) = self
            .client
            .post(&format!("/v1/apps/{OA}/batches"), body)
            .await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_string()
    }

    async fn list(&self, query: &str) -> Value {
        let (status, page) = self
            .client
            .get(&format!("/v1/apps/{OA}/batches{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The list once every batch on it is done (within 20 s).
    async fn list_when_done(&self) -> Value {
        for _ in 0..200 {
            let page = self.list("").await;
            let batches = page["batches"].as_array().unwrap();
            if batches.iter().all(|b| b["done"] == true) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the batches never finished: {}", self.list("").await);
    }
}

#[tokio::test]
async fn batches_are_listed_newest_first_with_their_counts() {
    let server = wxpush_tests::local_server(demo_apps(), KEY).await;
    let w = Local {
        client: LocalClient::new(&server, KEY),
    };
    let users: Vec<Value> = (0..30)
        .map(|i| json!({"appid": OA, "openid": format!("o_{i}")}))
        .collect();
    w.client.control("/users", json!(users)).await;
    let mut created = Vec::new();
    for size in [5, 10, 30] {
        created.push(w.batch(size).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done = w.list_when_done().await;
    let batches = done["batches"].as_array().unwrap();
    let ids: Vec<&str> = batches.iter().map(|b| b["id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = created.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);
    let counts: Vec<(i64, i64, &str)> = batches
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_i64().unwrap();
            (n("total"), n("sent"), b["state"].as_str().unwrap())
        })
        .collect();
    assert_eq!(counts, [(30, 30, "done"), (10, 10, "done"), (5, 5, "done")]);
    assert!(
        batches[0].get("failures").is_none(),
        "a list entry has no failures"
    );
    let first = w.list("?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = w.list(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["batches"][0]["id"], created[0].as_str());
    assert!(rest["next_cursor"].is_null());
}
