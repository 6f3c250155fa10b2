//! Benchmark: template sends per second through the send handler against the emulator, with
//! 0 and 50 ms of WeChat latency, and WeChat token calls per 1 000 sends. Prints markdown.
//! Run through `bash scripts/bench` (which starts moto).

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_send::SendService;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, embedded_token_manager, memory_db};

async fn run(svc: &Arc<SendService>, appid: &str, sends: usize, concurrency: usize) -> f64 {
    let body = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T1", "data": {"thing1": {"value": "你好"}}}).to_string();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (svc, appid, body, next) = (svc.clone(), appid.to_string(), body.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < sends {
                let deadline = Instant::now() + Duration::from_secs(25);
                let outcome = svc
                    .sender
                    .send(&appid, body.as_bytes(), None, "bench", deadline)
                    .await
                    .expect("send");
                assert_eq!(outcome.status, 200);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    sends as f64 / started.elapsed().as_secs_f64()
}

/// The same service over the embedded store (what `wxpush serve` uses): wxpush's own cost
/// without moto's Python in the way.
fn embedded_service(emulator: &wxpush_tests::EmulatorServer, appid: &str) -> Arc<SendService> {
    let db = memory_db();
    let tokens = embedded_token_manager(emulator, appid, "bench-secret", db.clone());
    Arc::new(SendService::new(
        tokens,
        Arc::new(wxpush_shared::store::EmbeddedStateStore::new(db)),
        Duration::from_secs(5),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (world, appid) = TokenWorld::with_app("bench-secret", None).await;
    world
        .emulator
        .control("/users", json!({"appid": appid, "openid": "fan"}))
        .await;
    let moto = Arc::new(SendService::new(
        world.manager(TokenPolicy::default(), 5000),
        world.state_store(),
        Duration::from_secs(5),
    ));
    let embedded = embedded_service(&world.emulator, &appid);
    // Warm: each store's one token fetch happens here.
    run(&moto, &appid, 1, 1).await;
    run(&embedded, &appid, 1, 1).await;
    let tokens_before = world.emulator.emu.calls("/cgi-bin/stable_token");
    println!("| store | WeChat latency | concurrency | sends | sends/s |");
    println!("|---|---|---|---|---|");
    let mut total = 0;
    for (name, svc) in [("DynamoDB (moto)", &moto), ("embedded (redb)", &embedded)] {
        for (latency, concurrency, sends) in [
            (0u64, 1usize, 300usize),
            (0, 32, 1000),
            (50, 1, 100),
            (50, 32, 1000),
        ] {
            if latency > 0 {
                world.emulator.control("/faults", json!({"path": "/cgi-bin/message/template/send", "delay_ms": latency, "times": sends})).await;
            }
            let rate = run(svc, &appid, sends, concurrency).await;
            total += sends;
            println!("| {name} | {latency} ms | {concurrency} | {sends} | {rate:.0} |");
        }
    }
    let token_calls = world.emulator.emu.calls("/cgi-bin/stable_token") - tokens_before;
    println!();
    println!(
        "WeChat token calls during these {total} sends (token valid): {token_calls}, i.e. {:.2} per 1 000 sends.",
        token_calls as f64 * 1000.0 / total as f64
    );
}
