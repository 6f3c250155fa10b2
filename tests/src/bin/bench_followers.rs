//! Benchmark: followers synced per second against the emulator (0 and 50 ms of WeChat
//! latency on every user/get and batchget call), over the embedded store and over DynamoDB
//! (moto), and WeChat calls per 1 000 followers. Prints markdown.
//! Run through `bash scripts/bench` (which starts moto).

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::followers::{FollowerSync, RunEnd, SyncConfig};
use wxpush_shared::queue::LocalJobQueue;
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_shared::token::{TokenManager, TokenPolicy};
use wxpush_tests::{TokenWorld, embedded_token_manager, memory_db};

const PATHS: [&str; 2] = ["/cgi-bin/user/get", "/cgi-bin/user/info/batchget"];

/// One full sync (a new run); returns (followers/s, WeChat calls per 1 000 followers).
async fn measure(
    world: &TokenWorld,
    sync: &FollowerSync,
    appid: &str,
    followers: u64,
    latency_ms: u64,
) -> (f64, f64) {
    let calls = |w: &TokenWorld| PATHS.iter().map(|p| w.emulator.emu.calls(p)).sum::<u64>();
    if latency_ms > 0 {
        for path in PATHS {
            world
                .emulator
                .control(
                    "/faults",
                    json!({"path": path, "delay_ms": latency_ms, "times": 100_000}),
                )
                .await;
        }
    }
    let before = calls(world);
    let started = Instant::now();
    let run = sync
        .start(appid, br#"{"restart": true}"#)
        .await
        .expect("start");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let end = sync
        .run(appid, &run_id, Instant::now() + Duration::from_secs(3600))
        .await
        .expect("run");
    assert_eq!(end, RunEnd::Done);
    let elapsed = started.elapsed().as_secs_f64();
    let progress = sync.progress(appid).await.unwrap();
    assert_eq!(
        progress["followers"].as_u64(),
        Some(followers),
        "{progress}"
    );
    world.emulator.clear_faults().await;
    let made = calls(world) - before;
    (
        followers as f64 / elapsed,
        made as f64 * 1000.0 / followers as f64,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (world, appid) = TokenWorld::with_app("bench-secret", None).await;
    let total: u64 = 50_000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
        let users: Vec<_> = chunk
            .iter()
            .map(|i| json!({"appid": appid, "openid": format!("b{i:06}"), "unionid": format!("BU{i}"), "subscribed": true}))
            .collect();
        world.emulator.control("/users", json!(users)).await;
    }
    let db = memory_db();
    let embedded_store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(db.clone()));
    let (queue, _jobs) = LocalJobQueue::new();
    let queue = Arc::new(queue);
    let sync_with = |tokens: Arc<TokenManager>, store: Arc<dyn StateStore>, concurrency: usize| {
        FollowerSync::new(
            tokens,
            store,
            queue.clone(),
            SyncConfig {
                lookup_concurrency: concurrency,
                ..SyncConfig::default()
            },
        )
    };
    println!(
        "| store | WeChat latency | batchget calls in flight | followers | followers/s | WeChat calls per 1 000 followers |"
    );
    println!("|---|---|---|---|---|---|");
    for (latency, concurrency) in [(0u64, 5usize), (50, 1), (50, 5), (50, 10)] {
        let sync = sync_with(
            embedded_token_manager(&world.emulator, &appid, "bench-secret", db.clone()),
            embedded_store.clone(),
            concurrency,
        );
        let (rate, calls) = measure(&world, &sync, &appid, total, latency).await;
        println!(
            "| embedded (redb) | {latency} ms | {concurrency} | {total} | {rate:.0} | {calls:.2} |"
        );
    }
    // DynamoDB through moto: a smaller account (moto applies one request at a time).
    let (moto_world, moto_app) = TokenWorld::with_app("bench-secret", None).await;
    let moto_total: u64 = 10_000;
    let users: Vec<_> = (0..moto_total)
        .map(|i| json!({"appid": moto_app, "openid": format!("m{i:06}"), "unionid": format!("MU{i}"), "subscribed": true}))
        .collect();
    moto_world.emulator.control("/users", json!(users)).await;
    for latency in [0u64, 50] {
        let sync = sync_with(
            moto_world.manager(TokenPolicy::default(), 5000),
            moto_world.state_store(),
            4,
        );
        let (rate, calls) = measure(&moto_world, &sync, &moto_app, moto_total, latency).await;
        println!("| DynamoDB (moto) | {latency} ms | 5 | {moto_total} | {rate:.0} | {calls:.2} |");
    }
}
