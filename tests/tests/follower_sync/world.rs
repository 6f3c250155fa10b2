//! The sync's world on moto: the official account and mini program, the jobs queue in SQS,
//! the sync started through the `/v1` handler and continued by the batch-worker handler.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::{JobQueue, SqsJobQueue};
use wxpush_shared::store::{Attr, ItemKey, Op, StateStore, attrs};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request, drive_sqs, moto_queue, sdk_config};

pub struct SyncWorld {
    pub world: TokenWorld,
    pub oa: String,
    pub mp: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub sync: Arc<FollowerSync>,
    pub runner: JobRunner,
    pub svc: SendService,
    pub store: Arc<dyn StateStore>,
}

pub fn test_config() -> SyncConfig {
    SyncConfig {
        backoff: Duration::from_millis(10),
        ..SyncConfig::default()
    }
}

impl SyncWorld {
    pub async fn new(config: SyncConfig) -> SyncWorld {
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
    pub async fn paging(&self, size: usize) {
        self.world
            .emulator
            .control("/paging", json!({"page_size": size}))
            .await;
    }

    /// `n` followers `f00000…` of the official account; every tenth has no unionid.
    pub async fn add_followers(&self, range: std::ops::Range<usize>) {
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
    pub async fn add_departed(&self, n: usize) {
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

    pub async fn call(&self, method: &str, body: Option<Value>) -> (u16, Value) {
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

    pub async fn progress(&self) -> Value {
        let (status, body) = self.call("GET", None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs what is in the queue through the batch-worker handler as SQS would
    /// ([`drive_sqs`]); `budget_ms` is each invocation's time left (the Lambda deadline).
    /// Returns the number of invocations; stops when the queue stays empty.
    pub async fn drive(&self, budget_ms: i64, max_invocations: usize) -> usize {
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

    pub async fn stats(&self) -> Value {
        self.world.emulator.get("/sandbox/stats").await
    }
}

/// The openid of follower `i`.
pub fn openid(i: usize) -> String {
    format!("f{i:05}")
}

/// The unionid of follower `i`; every tenth has none.
pub fn unionid(i: usize) -> Option<String> {
    (!i.is_multiple_of(10)).then(|| format!("U{i}"))
}

/// The progress counters: followers, mapped, without a unionid, unsubscribed, skipped,
/// pages (-1 for one missing).
pub fn counters(p: &Value) -> [i64; 6] {
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
