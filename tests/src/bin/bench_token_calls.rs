//! Benchmark: WeChat token calls for 1 000 concurrent sends spread over 20 token managers
//! (as 20 Lambda instances), against moto and the emulator. Prints a markdown table.
//! Run through `bash scripts/bench` (which starts moto).

use std::time::Instant;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, concurrent_gets};

const SENDS: usize = 1000;
const INSTANCES: usize = 20;

async fn burst(world: &TokenWorld, appid: &str) -> (u64, f64) {
    let before = world.emulator.emu.calls("/cgi-bin/stable_token");
    let managers: Vec<_> = (0..INSTANCES)
        .map(|_| world.manager(TokenPolicy::default(), 5000))
        .collect();
    let started = Instant::now();
    concurrent_gets(&managers, appid, SENDS).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    (
        world.emulator.emu.calls("/cgi-bin/stable_token") - before,
        ms,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (world, appid) = TokenWorld::with_app("bench-secret", None).await;
    let (cold_calls, cold_ms) = burst(&world, &appid).await;
    let (warm_calls, warm_ms) = burst(&world, &appid).await;
    println!("| scenario | sends | instances | WeChat token calls | wall time (ms) |");
    println!("|---|---|---|---|---|");
    println!("| no token stored | {SENDS} | {INSTANCES} | {cold_calls} | {cold_ms:.0} |");
    println!("| valid token stored | {SENDS} | {INSTANCES} | {warm_calls} | {warm_ms:.0} |");
}
