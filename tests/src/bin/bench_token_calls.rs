//! Benchmark: WeChat token calls for 1 000 concurrent sends spread over 20 token managers
//! (as 20 Lambda instances), against moto and the emulator. Prints a markdown table.
//! Run through `bash scripts/bench` (which starts moto).

use std::time::Instant;
use wxpush_shared::AppKind;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{SsmApp, TokenWorld, emulated, put_app, random_appid};

const SENDS: usize = 1000;
const INSTANCES: usize = 20;

async fn burst(world: &TokenWorld, appid: &str) -> (u64, f64) {
    let before = world.emulator.emu.calls("/cgi-bin/stable_token");
    let managers: Vec<_> = (0..INSTANCES)
        .map(|_| world.manager(TokenPolicy::default(), 5000))
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        let (m, appid) = (managers[i % INSTANCES].clone(), appid.to_string());
        tasks.push(tokio::spawn(async move {
            m.get(&appid).await.map(|t| t.version)
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("token");
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    (
        world.emulator.emu.calls("/cgi-bin/stable_token") - before,
        ms,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let appid = random_appid();
    let world = TokenWorld::new(vec![emulated(
        &appid,
        "bench-secret",
        AppKind::OfficialAccount,
    )])
    .await;
    let app = SsmApp {
        appid: &appid,
        kind: Some("official_account"),
        app_secret: Some("bench-secret"),
        token_api: None,
    };
    put_app(&world.ssm, &world.prefix, app).await;
    let (cold_calls, cold_ms) = burst(&world, &appid).await;
    let (warm_calls, warm_ms) = burst(&world, &appid).await;
    println!("| scenario | sends | instances | WeChat token calls | wall time (ms) |");
    println!("|---|---|---|---|---|");
    println!("| no token stored | {SENDS} | {INSTANCES} | {cold_calls} | {cold_ms:.0} |");
    println!("| valid token stored | {SENDS} | {INSTANCES} | {warm_calls} | {warm_ms:.0} |");
}
