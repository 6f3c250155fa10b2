//! The batch tests' world: the `/v1` handler with batches, the job runner the batch-worker
//! Lambda uses, the WeChat emulator, the state and token stores behind the fault-injecting
//! wrapper, and the SQS stand-in (`sim_queue`). Shared by the `batches` and
//! `batch_guarantees` tests.

use crate::faults::{Faults, FaultySecretStore, FaultyStateStore, FaultyTokenStore};
use crate::sim_queue::{Drive, SimQueue};
use crate::{EmulatorServer, apigw_v1_request, emulated, job_runner, memory_db};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_send::SendService;
use wxpush_shared::AppKind;
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::clock::now_unix;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::send::service::Sender;
use wxpush_shared::store::{Attr, EmbeddedStateStore, ItemKey, Op, StateStore, attrs};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};

pub const OA: &str = "wxba7c00000000a001";
pub const MP: &str = "wxba7c00000000b002";
pub const SECRET: &str = "batch-secret";
pub const TIMEOUT_MS: u64 = 300;

pub struct World {
    pub emulator: EmulatorServer,
    pub store: Arc<dyn StateStore>,
    pub faults: Arc<Faults>,
    pub token_faults: Arc<Faults>,
    /// Faults on the app configuration reads (SSM on AWS).
    pub secret_faults: Arc<Faults>,
    pub svc: SendService,
    pub queue: Arc<SimQueue>,
    pub runner: Arc<JobRunner>,
    pub batches: Arc<Batches>,
}

pub fn test_config() -> BatchConfig {
    BatchConfig {
        chunk_size: 100,
        concurrency: 8,
        default_rate: 10_000,
        minute_pause: Duration::from_secs(1),
        daily_pause: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(100),
        max_retries: 30,
        reserve: Duration::from_millis(500),
        flush_every: 50,
        flush_interval: Duration::from_millis(200),
        check_interval: Duration::from_millis(200),
    }
}

pub async fn world(config: BatchConfig) -> World {
    let emulator = EmulatorServer::start(vec![
        emulated(OA, SECRET, AppKind::OfficialAccount),
        emulated(MP, SECRET, AppKind::MiniProgram),
    ])
    .await;
    let secret_faults = Faults::new(13);
    let file: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::from_file(AppsFile {
            apps: vec![
                AppEntry {
                    appid: OA.into(),
                    kind: "official_account".into(),
                    app_secret: SECRET.into(),
                    ..AppEntry::default()
                },
                AppEntry {
                    appid: MP.into(),
                    kind: "mini_program".into(),
                    app_secret: SECRET.into(),
                    linked_official_account: Some(OA.into()),
                    ..AppEntry::default()
                },
            ],
        })
        .unwrap(),
    );
    let secrets: Arc<dyn SecretStore> = FaultySecretStore::new(file, secret_faults.clone());
    let db = memory_db();
    let (faults, token_faults) = (Faults::new(11), Faults::new(12));
    let store: Arc<dyn StateStore> = FaultyStateStore::new(
        Arc::new(EmbeddedStateStore::new(db.clone())),
        faults.clone(),
    );
    let tokens = Arc::new(TokenManager::new(
        FaultyTokenStore::new(Arc::new(EmbeddedTokenStore::new(db)), token_faults.clone()),
        secrets,
        emulator.client(TIMEOUT_MS),
        TokenPolicy::for_wechat_timeout(Duration::from_millis(TIMEOUT_MS)),
    ));
    let queue = SimQueue::new();
    let sender = Arc::new(Sender::new(
        tokens.clone(),
        store.clone(),
        Duration::from_millis(TIMEOUT_MS),
    ));
    let batches = Arc::new(Batches::new(sender, store.clone(), queue.clone(), config));
    let runner = Arc::new(
        job_runner(tokens.clone(), store.clone(), queue.clone()).with_batches(batches.clone()),
    );
    let svc = SendService::new(tokens, store.clone(), Duration::from_millis(TIMEOUT_MS))
        .with_batches(batches.clone());
    World {
        emulator,
        store,
        faults,
        token_faults,
        secret_faults,
        svc,
        queue,
        runner,
        batches,
    }
}

impl World {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let resp = wxpush_send::handle(
            &self.svc,
            apigw_v1_request(method, path, body.as_ref(), headers),
        )
        .await;
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null),
        )
    }

    pub async fn create(&self, appid: &str, body: Value) -> String {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/v1/apps/{appid}/batches"),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, appid: &str, id: &str) -> Value {
        let (status, body) = self
            .call("GET", &format!("/v1/apps/{appid}/batches/{id}"), None, &[])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Followers `{prefix}{i}` of the official account (subscribed, recently active, with
    /// unionid `U{prefix}{i}`), in the emulator.
    pub async fn add_users(&self, prefix: &str, n: usize) {
        let now = now_unix();
        let all: Vec<Value> = (0..n)
            .map(|i| json!({"appid": OA, "openid": format!("{prefix}{i}"), "unionid": format!("U{prefix}{i}"), "subscribed": true, "last_interaction": now}))
            .collect();
        for part in all.chunks(5_000) {
            self.emulator.control("/users", json!(part)).await;
        }
    }

    /// The batch's own item (its message, counts and state as stored).
    pub async fn batch_meta(&self, appid: &str, id: &str) -> wxpush_shared::store::Attrs {
        self.store
            .get(&ItemKey::batch(appid, id))
            .await
            .unwrap()
            .unwrap()
    }

    /// Messages the emulator delivered, per openid.
    pub async fn delivered(&self) -> HashMap<String, usize> {
        self.emulator.delivered_per_user(OA).await
    }

    /// Each recipient's recorded outcome character, read from the store.
    pub async fn outcomes(&self, appid: &str, id: &str) -> HashMap<String, char> {
        let lists = self
            .store
            .query(&format!("brcpt#{appid}#{id}"))
            .await
            .unwrap();
        let progress = self
            .store
            .query(&format!("bprog#{appid}#{id}"))
            .await
            .unwrap();
        assert_eq!(lists.len(), progress.len());
        let text = |a: &wxpush_shared::store::Attrs, k: &str| match a.get(k) {
            Some(Attr::S(s)) => s.clone(),
            _ => String::new(),
        };
        let mut out = HashMap::new();
        for ((_, l), (_, p)) in lists.iter().zip(&progress) {
            for (r, c) in text(l, "recipients")
                .lines()
                .zip(text(p, "results").chars())
            {
                out.insert(r.to_string(), c);
            }
        }
        out
    }

    /// Runs the fan-out jobs waiting in the queue by hand; their chunk jobs stay queued.
    pub async fn run_fanouts(&self) {
        for (job, _) in self.queue.drain() {
            assert!(matches!(job, Job::BatchFanout { .. }), "{job:?}");
            self.runner
                .run(&job, Instant::now() + Duration::from_secs(10))
                .await
                .unwrap();
        }
    }

    pub fn drive(&self, drive: Drive) -> tokio::task::JoinHandle<crate::sim_queue::DriveReport> {
        let (queue, runner) = (self.queue.clone(), self.runner.clone());
        tokio::spawn(async move { queue.drive(runner, drive).await })
    }

    pub async fn wait_for(&self, appid: &str, id: &str, what: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let s = self.status(appid, id).await;
            if what(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "batch {id} never reached the state: {}",
            self.status(appid, id).await
        );
    }
}

pub fn template(text: &str) -> Value {
    json!({"type": "template", "template_id": "TPL_batch", "data": {"thing1": {"value": text}}})
}

pub fn custom(text: &str) -> Value {
    json!({"type": "custom", "msgtype": "text", "text": {"content": text}})
}

/// Records `openid` ↔ `unionid` for the official account, as a callback would have.
pub async fn map_unionids(store: &Arc<dyn StateStore>, pairs: &[(String, String)]) {
    for part in pairs.chunks(50) {
        let ops: Vec<Op> = part
            .iter()
            .flat_map(|(o, u)| {
                let s = |v: &str| Attr::S(v.to_string());
                [
                    Op::Set {
                        key: ItemKey::account(OA, o),
                        attrs: attrs([
                            ("appid", s(OA)),
                            ("openid", s(o)),
                            ("unionid", s(u)),
                            ("subscribed", Attr::Bool(true)),
                        ]),
                    },
                    Op::Set {
                        key: ItemKey::union_account(u, OA),
                        attrs: attrs([
                            ("appid", s(OA)),
                            ("openid", s(o)),
                            ("subscribed", Attr::Bool(true)),
                        ]),
                    },
                ]
            })
            .collect();
        store.record(&ops, now_unix()).await.unwrap();
    }
}
