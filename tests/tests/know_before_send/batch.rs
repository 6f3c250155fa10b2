//! A batch of 10 000 on `wxpush serve --sandbox` that requires grants under a daily cap: it
//! sends to those with an acceptance and room in their day, and counts the rest exactly
//! (`no_grant`, `capped`) without a WeChat call for them.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wxpush_cli::local_server::demo_apps;

const KEY: &str = "know-batch-key";
const USERS: usize = 10_000;
/// Users with two acceptances, who get one message before the batch (their day is full).
const SENT_BEFORE: usize = 1_000;
/// Users with one acceptance and room in their day.
const GRANTED: usize = 2_000;

struct Local {
    base: String,
    http: reqwest::Client,
}

impl Local {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await.1
    }
    /// Runs `calls` POSTs, 32 at a time; each must succeed.
    async fn post_all(&self, calls: Vec<(String, Value)>) {
        for group in calls.chunks(32) {
            let mut set = tokio::task::JoinSet::new();
            for (path, body) in group {
                let (http, base) = (self.http.clone(), self.base.clone());
                let (path, body) = (path.clone(), body.clone());
                set.spawn(async move {
                    let resp = http
                        .post(format!("{base}{path}"))
                        .bearer_auth(KEY)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(resp.status().is_success(), "{path}: {}", resp.status());
                });
            }
            while let Some(done) = set.join_next().await {
                done.unwrap();
            }
        }
    }
    /// Waits (bounded) until the emulator pushed `n` events, all answered `success`.
    async fn pushed(&self, n: usize) {
        for _ in 0..1200 {
            let all = self.get("/sandbox/pushes").await;
            let all = all.as_array().cloned().unwrap_or_default();
            if all.len() >= n {
                assert!(
                    all.iter().all(|p| p["answer"] == "success"),
                    "a push failed"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {n} pushes");
    }
}

fn notification() -> Value {
    json!({"type": "oa_subscribe", "template_id": "OAT_batch", "require_grant": true,
           "page": "https://example.com/o", "data": {"thing1": {"value": "上新了"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_thousand_counts_no_grant_and_capped_exactly() {
    let mut apps = demo_apps();
    let oa = apps.apps[0].appid.clone();
    apps.apps[0].batch_rate = Some(10_000);
    apps.apps[0].max_per_user_per_day = Some(1);
    let server = wxpush_tests::local_server(apps, KEY).await;
    let l = Local {
        base: server.url(),
        http: reqwest::Client::new(),
    };
    let started = Instant::now();
    grant_and_fill_days(&l, &oa).await;
    let prepared = started.elapsed();
    let started = Instant::now();
    let batch = run_batch(&l, &oa).await;
    println!(
        "know batch: {USERS} recipients in {:.1} s ({} grants and {SENT_BEFORE} sends before, {:.1} s)",
        started.elapsed().as_secs_f64(),
        SENT_BEFORE + GRANTED,
        prepared.as_secs_f64()
    );
    let counts: Vec<i64> = [
        "total", "sent", "capped", "no_grant", "failed", "unknown", "queued",
    ]
    .iter()
    .map(|k| batch[*k].as_i64().unwrap_or(-1))
    .collect();
    let no_grant = USERS - GRANTED - SENT_BEFORE;
    let expected = [USERS, GRANTED, SENT_BEFORE, no_grant, 0, 0, 0];
    assert_eq!(
        counts,
        expected.map(|n| n as i64),
        "total, sent, capped, no_grant, failed, unknown, queued; first failure: {}",
        batch["failures"][0]
    );
    let stats = l.get("/sandbox/stats").await;
    let bizsend = &stats["/cgi-bin/message/subscribe/bizsend"];
    assert_eq!(
        bizsend,
        (SENT_BEFORE + GRANTED) as i64,
        "held back: no call"
    );
    let delivered = l.get(&format!("/sandbox/messages?appid={oa}")).await;
    assert_eq!(delivered.as_array().unwrap().len(), SENT_BEFORE + GRANTED);
    // A capped user kept the acceptance the batch could not use.
    let view = l.get(&format!("/v1/apps/{oa}/users/o0")).await;
    assert_eq!(view["sent_today"], 1, "{view}");
    assert_eq!(view["subscriptions"][0]["remaining"], 1, "{view}");
}

/// The users; acceptances for the first `SENT_BEFORE + GRANTED` (two each for the first
/// `SENT_BEFORE`); one notification to each of the first `SENT_BEFORE`, which fills their day.
async fn grant_and_fill_days(l: &Local, oa: &str) {
    let users: Vec<Value> = (0..USERS)
        .map(|i| json!({"appid": oa, "openid": format!("o{i}")}))
        .collect();
    assert_eq!(l.post("/sandbox/users", json!(users)).await.0, 200);
    let grants = (0..SENT_BEFORE + GRANTED)
        .map(|i| {
            let count = if i < SENT_BEFORE { 2 } else { 1 };
            let g = json!({"appid": oa, "openid": format!("o{i}"), "template_id": "OAT_batch", "count": count});
            ("/sandbox/grants".to_string(), g)
        })
        .collect();
    l.post_all(grants).await;
    l.pushed(SENT_BEFORE + GRANTED).await;
    let sends = (0..SENT_BEFORE)
        .map(|i| {
            let mut m = notification();
            m["to"] = json!({"openid": format!("o{i}")});
            (format!("/v1/apps/{oa}/messages"), m)
        })
        .collect();
    l.post_all(sends).await;
    l.pushed(2 * SENT_BEFORE + GRANTED).await;
}

/// The batch to every user, followed until it is done: its status.
async fn run_batch(l: &Local, oa: &str) -> Value {
    let recipients: Vec<Value> = (0..USERS)
        .map(|i| json!({"openid": format!("o{i}")}))
        .collect();
    let (status, created) = l
        .post(
            &format!("/v1/apps/{oa}/batches"),
            json!({"message": notification(), "recipients": recipients}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap();
    for _ in 0..1800 {
        let batch = l.get(&format!("/v1/apps/{oa}/batches/{id}")).await;
        if batch["done"] == true {
            return batch;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the batch did not finish in 3 minutes");
}
