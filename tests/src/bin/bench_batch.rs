//! Benchmark: a 10 000-recipient batch against the emulator at 50 ms of WeChat latency —
//! messages per second as a fraction of the bound (sends in flight / latency, and the
//! configured pace), duplicates and losses, and the store writes per message. Prints
//! markdown. Run through `bash scripts/bench`.
//!
//! The store is the embedded one behind a counting wrapper: each item a write touches
//! (every op of a transaction, every pace counter update) is one DynamoDB write on AWS.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wxpush_shared::AppKind;
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::send::service::Sender;
use wxpush_shared::store::{
    Attrs, EmbeddedStateStore, ItemKey, Op, QueryPage, Recorded, StateStore,
};
use wxpush_shared::token::{EmbeddedTokenStore, StoreError, TokenManager, TokenPolicy};
use wxpush_tests::sim_queue::{Drive, SimQueue};
use wxpush_tests::{EmulatorServer, emulated, job_runner, memory_db};

const OA: &str = "wxbe7c00000000a001";
const SECRET: &str = "bench-batch-secret";
const RECIPIENTS: usize = 10_000;
const LATENCY_MS: u64 = 50;

/// Counts item writes and reads on the way to the real store.
struct Counting {
    inner: Arc<dyn StateStore>,
    writes: AtomicU64,
    transactions: AtomicU64,
    reads: AtomicU64,
}

#[async_trait]
impl StateStore for Counting {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        self.writes.fetch_add(ops.len() as u64, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.inner.record(ops, now).await
    }
    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }
    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.query(pk).await
    }
    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.query_page(pk, after, limit).await
    }
    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.take(key, want, limit, expires_at).await
    }
}

struct Run {
    workers: usize,
    in_flight_per_worker: usize,
    rate: u32,
}

/// The batch service over a counting embedded store, as the benchmark drives it.
struct Bench {
    counting: Arc<Counting>,
    batches: Arc<Batches>,
    runner: Arc<JobRunner>,
    queue: Arc<SimQueue>,
}

/// The emulator reset: every send answered after `LATENCY_MS`, `RECIPIENTS` followers.
async fn seed_emulator(emulator: &EmulatorServer) {
    emulator.control("/reset", json!({})).await;
    emulator
        .control("/faults", json!({"path": "/cgi-bin/message/template/send", "delay_ms": LATENCY_MS, "times": RECIPIENTS * 2}))
        .await;
    let users: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({"appid": OA, "openid": format!("b{i}"), "subscribed": true}))
        .collect();
    emulator.control("/users", json!(users)).await;
}

/// A fresh store, a warm token, and the batch service paced and bounded as `r` says.
async fn bench(emulator: &EmulatorServer, secrets: Arc<dyn SecretStore>, r: &Run) -> Bench {
    let db = memory_db();
    let counting = Arc::new(Counting {
        inner: Arc::new(EmbeddedStateStore::new(db.clone())),
        writes: AtomicU64::new(0),
        transactions: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    });
    let store: Arc<dyn StateStore> = counting.clone();
    let tokens = Arc::new(TokenManager::new(
        Arc::new(EmbeddedTokenStore::new(db)),
        secrets,
        emulator.client(5_000),
        TokenPolicy::default(),
    ));
    tokens.get(OA).await.expect("a token"); // warm: the one token fetch is not measured
    let queue = SimQueue::new();
    let sender = Arc::new(Sender::new(
        tokens.clone(),
        store.clone(),
        Duration::from_secs(5),
    ));
    let config = BatchConfig {
        concurrency: r.in_flight_per_worker,
        default_rate: r.rate,
        ..BatchConfig::default()
    };
    let batches = Arc::new(Batches::new(sender, store.clone(), queue.clone(), config));
    let runner =
        Arc::new(job_runner(tokens, store.clone(), queue.clone()).with_batches(batches.clone()));
    Bench {
        counting,
        batches,
        runner,
        queue,
    }
}

/// The recipients that got more than one message, and those that got none.
async fn duplicates_and_lost(emulator: &EmulatorServer) -> (usize, usize) {
    let per_user = emulator.delivered_per_user(OA).await;
    let duplicates = per_user.values().filter(|&&c| c > 1).count();
    (duplicates, RECIPIENTS - per_user.len())
}

async fn run(emulator: &EmulatorServer, secrets: Arc<dyn SecretStore>, r: &Run) -> String {
    seed_emulator(emulator).await;
    let Bench {
        counting,
        batches,
        runner,
        queue,
    } = bench(emulator, secrets, r).await;
    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({"openid": format!("b{i}")}))
        .collect();
    let body = json!({"message": {"type": "template", "template_id": "TPL_bench", "data": {"thing1": {"value": "通知"}}}, "recipients": recipients}).to_string();
    let (w0, t0) = (
        counting.writes.load(Ordering::Relaxed),
        counting.transactions.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let created = batches
        .create(OA, body.as_bytes(), None, "bench")
        .await
        .expect("created");
    let accepted = started.elapsed();
    let report = queue
        .drive(
            runner,
            Drive {
                workers: r.workers,
                budget: Duration::from_secs(300),
                limit: Duration::from_secs(600),
                ..Drive::default()
            },
        )
        .await;
    let elapsed = started.elapsed();
    assert!(report.drained, "{report:?}");
    let id = created["id"].as_str().unwrap();
    let status = batches.status(OA, id, None).await.expect("status");
    let (duplicates, lost) = duplicates_and_lost(emulator).await;
    let sent = status["sent"].as_u64().unwrap_or(0) as usize;
    let rate = sent as f64 / elapsed.as_secs_f64();
    let in_flight = r.workers * r.in_flight_per_worker;
    let by_concurrency = in_flight as f64 * 1000.0 / LATENCY_MS as f64;
    let bound = by_concurrency.min(f64::from(r.rate));
    let writes = (counting.writes.load(Ordering::Relaxed) - w0) as f64 / sent.max(1) as f64;
    let transactions =
        (counting.transactions.load(Ordering::Relaxed) - t0) as f64 / sent.max(1) as f64;
    format!(
        "| {} × {} = {in_flight} | {} /s | {bound:.0} /s | {rate:.0} /s | **{:.0} %** | {sent} | {duplicates} | {lost} | {writes:.2} ({transactions:.2} transactions) | {:.0} ms |",
        r.workers,
        r.in_flight_per_worker,
        r.rate,
        100.0 * rate / bound,
        accepted.as_secs_f64() * 1000.0,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let emulator =
        EmulatorServer::start(vec![emulated(OA, SECRET, AppKind::OfficialAccount)]).await;
    let secrets: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::from_file(AppsFile {
            apps: vec![AppEntry {
                appid: OA.into(),
                kind: "official_account".into(),
                app_secret: SECRET.into(),
                ..AppEntry::default()
            }],
        })
        .unwrap(),
    );
    println!(
        "| workers × sends in flight | pace | bound | messages/s | of the bound | sent | duplicates | lost | store writes per message | POST answered in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in [
        // The pace binds (640/s by concurrency, 400/s paced).
        Run {
            workers: 4,
            in_flight_per_worker: 8,
            rate: 400,
        },
        // Concurrency binds (320/s by concurrency, the pace far above).
        Run {
            workers: 4,
            in_flight_per_worker: 4,
            rate: 10_000,
        },
    ] {
        println!("{}", run(&emulator, secrets.clone(), &r).await);
    }
}
