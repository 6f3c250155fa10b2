//! The follower sync on moto (DynamoDB, SSM, SQS) + the WeChat emulator: started through the
//! `/v1` handler with API Gateway events, continued by the batch-worker handler with real SQS
//! events, interrupted by faults and by a worker that dies, run twice at once.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::followers::{FollowerSync, RunEnd, SyncConfig};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::{JobQueue, SqsJobQueue};
use wxpush_shared::store::{Attr, ItemKey, Op, StateStore, attrs};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request, drive_sqs, moto_queue, sdk_config};

struct SyncWorld {
    world: TokenWorld,
    oa: String,
    mp: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    sync: Arc<FollowerSync>,
    runner: JobRunner,
    svc: SendService,
    store: Arc<dyn StateStore>,
}

fn test_config() -> SyncConfig {
    SyncConfig {
        backoff: Duration::from_millis(10),
        ..SyncConfig::default()
    }
}

impl SyncWorld {
    async fn new(config: SyncConfig) -> SyncWorld {
        let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
        let queue_url = moto_queue(&sqs, "wxpush-jobs-").await;
        let queue: Arc<dyn JobQueue> = Arc::new(SqsJobQueue::new(sqs.clone(), &queue_url));
        let tokens = world.manager(TokenPolicy::default(), 2000);
        let store = world.state_store();
        let sync = Arc::new(FollowerSync::new(
            tokens.clone(),
            store.clone(),
            queue,
            config,
        ));
        let runner = JobRunner::new(
            sync.clone(),
            Arc::new(FollowerCompletion::new(tokens.clone(), store.clone())),
        );
        let svc = SendService::new(tokens, store.clone(), Duration::from_secs(2))
            .with_followers(sync.clone());
        SyncWorld {
            world,
            oa,
            mp,
            sqs,
            queue_url,
            sync,
            runner,
            svc,
            store,
        }
    }

    /// `user/get` pages of `size` followers in the emulator.
    async fn paging(&self, size: usize) {
        self.world
            .emulator
            .control("/paging", json!({"page_size": size}))
            .await;
    }

    /// `n` followers `f00000…` of the official account; every tenth has no unionid.
    async fn add_followers(&self, range: std::ops::Range<usize>) {
        let all: Vec<usize> = range.collect();
        for chunk in all.chunks(5_000) {
            let users: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    let mut u = json!({"appid": self.oa, "openid": openid(*i), "subscribed": true});
                    if let Some(union) = unionid(*i) {
                        u["unionid"] = json!(union);
                    }
                    u
                })
                .collect();
            self.world.emulator.control("/users", json!(users)).await;
        }
    }

    /// Users who left without wxpush hearing of it: WeChat says they no longer follow, the
    /// store still says they do (as an old subscribe callback left it).
    async fn add_departed(&self, n: usize) {
        let users: Vec<Value> = (0..n)
            .map(|i| json!({"appid": self.oa, "openid": format!("gone{i:03}"), "unionid": format!("UG{i}"), "subscribed": false}))
            .collect();
        self.world.emulator.control("/users", json!(users)).await;
        for i in 0..n {
            let (o, u) = (format!("gone{i:03}"), format!("UG{i}"));
            let s = |v: &str| Attr::S(v.to_string());
            let ops = [
                Op::Set {
                    key: ItemKey::account(&self.oa, &o),
                    attrs: attrs([
                        ("appid", s(&self.oa)),
                        ("openid", s(&o)),
                        ("unionid", s(&u)),
                        ("subscribed", Attr::Bool(true)),
                        ("event_time", Attr::N(1_600_000_000)),
                    ]),
                },
                Op::Set {
                    key: ItemKey::union_account(&u, &self.oa),
                    attrs: attrs([
                        ("appid", s(&self.oa)),
                        ("openid", s(&o)),
                        ("subscribed", Attr::Bool(true)),
                        ("event_time", Attr::N(1_600_000_000)),
                    ]),
                },
            ];
            self.store.record(&ops, 1_600_000_000).await.unwrap();
        }
    }

    async fn call(&self, method: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/v1/apps/{}/followers/sync", self.oa);
        let resp = handle(
            &self.svc,
            apigw_v1_request(method, &path, body.as_ref(), &[]),
        )
        .await;
        (
            resp.status().as_u16(),
            serde_json::from_slice(resp.body().as_ref()).unwrap(),
        )
    }

    async fn progress(&self) -> Value {
        let (status, body) = self.call("GET", None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs what is in the queue through the batch-worker handler as SQS would
    /// ([`drive_sqs`]); `budget_ms` is each invocation's time left (the Lambda deadline).
    /// Returns the number of invocations; stops when the queue stays empty.
    async fn drive(&self, budget_ms: i64, max_invocations: usize) -> usize {
        drive_sqs(
            &self.sqs,
            &self.queue_url,
            &self.runner,
            budget_ms,
            0,
            max_invocations,
        )
        .await
        .invocations
    }

    async fn stats(&self) -> Value {
        self.world.emulator.get("/sandbox/stats").await
    }

    /// Items by key, with `BatchGetItem` (100 keys a call, unprocessed keys asked again).
    async fn batch_get(&self, keys: &[ItemKey]) -> HashMap<ItemKey, HashMap<String, Attr>> {
        use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder();
            for k in chunk {
                request = request.keys(HashMap::from([
                    ("pk".to_string(), AttributeValue::S(k.pk.clone())),
                    ("sk".to_string(), AttributeValue::S(k.sk.clone())),
                ]));
            }
            let mut pending = Some(request.consistent_read(true).build().unwrap());
            for _ in 0..10 {
                let Some(req) = pending.take() else { break };
                let out = self
                    .world
                    .dynamo
                    .batch_get_item()
                    .request_items(&self.world.table, req)
                    .send()
                    .await
                    .unwrap();
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.world.table))
                    .into_iter()
                    .flatten()
                {
                    let text = |k: &str| item[k].as_s().unwrap().clone();
                    let mut a = HashMap::new();
                    for (name, v) in item {
                        let v = match v {
                            AttributeValue::S(s) => Attr::S(s.clone()),
                            AttributeValue::N(n) => Attr::N(n.parse().unwrap()),
                            AttributeValue::Bool(b) => Attr::Bool(*b),
                            _ => continue,
                        };
                        a.insert(name.clone(), v);
                    }
                    found.insert(ItemKey::new(text("pk"), text("sk")), a);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.world.table))
                    .cloned();
            }
        }
        found
    }

    /// Every follower `0..n` stored once, subscribed, with the right unionid, and listed under
    /// that unionid with the right openid; every departed user stored unsubscribed, there too.
    async fn assert_mapped(&self, n: usize, departed: usize) {
        let accounts: HashMap<String, wxpush_shared::store::Attrs> = self
            .store
            .query(&format!("acct#{}", self.oa))
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(accounts.len(), n + departed, "one account item per user");
        let mut union_keys = vec![];
        for i in 0..n {
            let a = &accounts[&format!("openid#{}", openid(i))];
            assert_eq!(a["subscribed"], Attr::Bool(true), "{}", openid(i));
            match unionid(i) {
                Some(u) => {
                    assert_eq!(a.get("unionid"), Some(&Attr::S(u.clone())));
                    union_keys.push((ItemKey::union_account(&u, &self.oa), openid(i), true));
                }
                None => assert_eq!(a.get("unionid"), None),
            }
        }
        for i in 0..departed {
            let a = &accounts[&format!("openid#gone{i:03}")];
            assert_eq!(a["subscribed"], Attr::Bool(false), "gone{i:03}");
            assert_eq!(a["unionid"], Attr::S(format!("UG{i}")));
            union_keys.push((
                ItemKey::union_account(&format!("UG{i}"), &self.oa),
                format!("gone{i:03}"),
                false,
            ));
        }
        let keys: Vec<ItemKey> = union_keys.iter().map(|(k, _, _)| k.clone()).collect();
        let unions = self.batch_get(&keys).await;
        assert_eq!(unions.len(), keys.len(), "every unionid lists the account");
        for (key, openid, subscribed) in &union_keys {
            let a = &unions[key];
            assert_eq!(a["openid"], Attr::S(openid.clone()), "{key:?}");
            assert_eq!(a["subscribed"], Attr::Bool(*subscribed), "{key:?}");
        }
    }
}

fn openid(i: usize) -> String {
    format!("f{i:05}")
}

fn unionid(i: usize) -> Option<String> {
    (!i.is_multiple_of(10)).then(|| format!("U{i}"))
}

fn counters(p: &Value) -> [i64; 6] {
    let n = |k: &str| p[k].as_i64().unwrap_or(-1);
    [
        n("followers"),
        n("mapped"),
        n("without_unionid"),
        n("unsubscribed"),
        n("skipped"),
        n("pages"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_2500_followers_in_pages_through_a_fault_midway() {
    let w = SyncWorld::new(test_config()).await;
    // Pages of 1 000 (WeChat's are 10 000): three pages, as 25 000 followers would be.
    w.paging(1_000).await;
    w.add_followers(0..2_500).await;
    w.add_departed(50).await;

    let (status, started) = w.call("POST", None).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["state"], "running");
    assert_eq!(started["resumed"], false);

    // The first invocation has almost no time left: one page, then a continuation.
    assert_eq!(w.drive(1_000, 1).await, 1);
    let p = w.progress().await;
    assert_eq!(
        (p["state"].as_str(), p["followers"].as_i64()),
        (Some("running"), Some(1_000))
    );

    // Mid-way, WeChat fails twice (system busy) and once with a bare 503.
    let fault = "/cgi-bin/user/info/batchget";
    w.world
        .emulator
        .control("/faults", json!({"path": fault, "errcode": -1, "times": 2}))
        .await;
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": fault, "http_status": 503, "times": 1}),
        )
        .await;
    let invocations = w.drive(600_000, 20).await;
    assert_eq!(invocations, 1, "the rest fits in one invocation");

    let p = w.progress().await;
    assert_eq!(p["state"], "done", "{p}");
    assert_eq!(counters(&p), [2_500, 2_250, 250, 50, 0, 3]);
    assert_eq!(p["errors"], 3, "each failed attempt is counted");
    assert_eq!(p["total"], 2_500);
    w.assert_mapped(2_500, 50).await;

    let stats = w.stats().await;
    assert_eq!(stats["/cgi-bin/user/get"], 3, "{stats}");
    // 25 lookups of 100, the 3 failed attempts, one lookup of the 50 departed.
    assert_eq!(stats["/cgi-bin/user/info/batchget"], 29, "{stats}");
    assert_eq!(stats["/cgi-bin/stable_token"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_resumes_where_it_stopped() {
    let w = SyncWorld::new(test_config()).await;
    w.paging(1_000).await;
    w.add_followers(0..1_200).await;
    w.call("POST", None).await;
    w.drive(1_000, 1).await;
    assert_eq!(w.progress().await["followers"], 1_000);

    // WeChat keeps failing longer than the retries: the run fails, keeping its place.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info/batchget", "http_status": 502, "times": 40}),
        )
        .await;
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(p["state"], "failed", "{p}");
    assert!(
        p["last_error"].as_str().unwrap().contains("batchget"),
        "{p}"
    );
    assert_eq!(p["followers"], 1_000);
    assert!(p["errors"].as_i64().unwrap() >= 4, "{p}");
    let failed_calls = w.stats().await["/cgi-bin/user/info/batchget"]
        .as_i64()
        .unwrap();

    // The faults pass; a new start resumes the same run from page two.
    w.world.emulator.clear_faults().await;
    let (status, resumed) = w.call("POST", None).await;
    assert_eq!(status, 202, "{resumed}");
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["run_id"], p["run_id"]);
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(p["state"], "done", "{p}");
    assert_eq!(counters(&p), [1_200, 1_080, 120, 0, 0, 2]);
    assert_eq!(p["resumes"], 1);
    w.assert_mapped(1_200, 0).await;
    let stats = w.stats().await;
    // Page one once, page two before the failure and again after it.
    assert_eq!(stats["/cgi-bin/user/get"], 3, "{stats}");
    let after = stats["/cgi-bin/user/info/batchget"].as_i64().unwrap() - failed_calls;
    assert_eq!(after, 2, "only the 200 followers left were looked up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_page_loses_only_its_last_step() {
    let w = SyncWorld::new(SyncConfig {
        lease: Duration::from_secs(3),
        ..test_config()
    })
    .await;
    w.add_followers(0..3_000).await;
    let run_id = w.call("POST", None).await.1["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Slow lookups; the worker is killed (as a Lambda timeout would) after its first checkpoint.
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info/batchget", "delay_ms": 300, "times": 30}),
        )
        .await;
    let far = std::time::Instant::now() + Duration::from_secs(600);
    let worker = {
        let (sync, oa, run_id) = (w.sync.clone(), w.oa.clone(), run_id.clone());
        tokio::spawn(async move { sync.run(&oa, &run_id, far).await })
    };
    let mut done = 0;
    for _ in 0..600 {
        done = w.progress().await["followers"].as_i64().unwrap();
        if done > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    assert!(
        worker.await.unwrap_err().is_cancelled(),
        "killed while running"
    );
    assert!((1_000..3_000).contains(&done), "{done}");

    // A redelivery while the dead worker's lease holds does nothing; after it, the run goes on.
    assert_eq!(w.sync.run(&w.oa, &run_id, far).await.unwrap(), RunEnd::Busy);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.sync.run(&w.oa, &run_id, far).await.unwrap(), RunEnd::Done);
    let p = w.progress().await;
    assert_eq!(counters(&p), [3_000, 2_700, 300, 0, 0, 1], "{p}");
    w.assert_mapped(3_000, 0).await;
    let stats = w.stats().await;
    assert_eq!(
        stats["/cgi-bin/user/get"], 2,
        "the page fetched again: {stats}"
    );
    let lookups = stats["/cgi-bin/user/info/batchget"].as_i64().unwrap();
    assert!(
        (30..=40).contains(&lookups),
        "at most one step looked up twice: {lookups}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_at_once_one_runs_the_other_is_told() {
    let w = SyncWorld::new(test_config()).await;
    w.add_followers(0..3_000).await;
    let (a, b) = tokio::join!(w.call("POST", None), w.call("POST", None));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["error"]["code"], "sync_in_progress");
    // While it runs, a restart is refused too.
    let (status, _) = w.call("POST", Some(json!({"restart": true}))).await;
    assert_eq!(status, 409);

    // The same job delivered twice, to two workers at once: one works, one stands aside.
    let run_id = w.progress().await["run_id"].as_str().unwrap().to_string();
    let far = std::time::Instant::now() + Duration::from_secs(600);
    let (x, y) = tokio::join!(
        w.sync.run(&w.oa, &run_id, far),
        w.sync.run(&w.oa, &run_id, far)
    );
    let mut ends = [format!("{:?}", x.unwrap()), format!("{:?}", y.unwrap())];
    ends.sort();
    assert_eq!(ends, ["Busy", "Done"]);
    // The queued message is now stale: it changes nothing.
    w.drive(600_000, 3).await;
    let p = w.progress().await;
    assert_eq!(counters(&p), [3_000, 2_700, 300, 0, 0, 1]);
    w.assert_mapped(3_000, 0).await;
    assert_eq!(w.stats().await["/cgi-bin/user/info/batchget"], 30);

    // A finished sync: the next start is a new run, which counts everyone again.
    let (status, again) = w.call("POST", None).await;
    assert_eq!(status, 202);
    assert_ne!(again["run_id"].as_str(), Some(run_id.as_str()));
    assert_eq!(
        (again["followers"].as_i64(), again["resumed"].as_bool()),
        (Some(0), Some(false))
    );
    w.drive(600_000, 5).await;
    assert_eq!(counters(&w.progress().await), [3_000, 2_700, 300, 0, 0, 1]);
}

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

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_run_can_be_taken_over() {
    // Runs are stamped in whole seconds: 3 s keeps "fresh" fresh on a busy machine (1 s could
    // pass between two POSTs that land on either side of a second).
    let w = SyncWorld::new(SyncConfig {
        stale_after: Duration::from_secs(3),
        ..test_config()
    })
    .await;
    w.add_followers(0..10).await;
    // Started, but no worker ever picks it up (its job is lost with the queue, say).
    let (status, first) = w.call("POST", None).await;
    assert_eq!(status, 202);
    let (status, _) = w.call("POST", None).await;
    assert_eq!(status, 409, "fresh: still somebody's");
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    let (status, again) = w.call("POST", None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        (again["resumed"].as_bool(), &again["run_id"]),
        (Some(true), &first["run_id"])
    );
    w.drive(600_000, 5).await;
    let p = w.progress().await;
    assert_eq!(counters(&p), [10, 9, 1, 0, 0, 1], "{p}");
}
