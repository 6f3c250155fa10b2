//! Benchmark: wxpush's own CPU per send, next to the Python wechatpy peer sending the same
//! template message to the same WeChat emulator. Build in release:
//! `cargo run --release -p wxpush-tests --bin bench_send_cpu -- PYTHON` (PYTHON: a python with
//! wechatpy; `scripts/bench` passes its venv's). Prints markdown.
//!
//! wxpush: `Sender::send` (validation, recipient, token from the cache, the WeChat call over
//! HTTP, the message record in the embedded store), one at a time. The emulator runs in this
//! process on a thread of its own; its CPU (read from that thread's /proc entry) is taken out
//! of the process's, so what is left is wxpush's: its HTTP client, JSON, redb, logic.
//! wechatpy: `client.message.send_template` with the token given, CPU by `time.process_time`.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::AppKind;
use wxpush_shared::send::service::Sender;
use wxpush_shared::store::EmbeddedStateStore;
use wxpush_shared::token::TokenManager;

/// utime + stime of a /proc stat file, in clock ticks.
fn cpu_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).expect("a Linux /proc");
    // The command name may hold spaces: fields start after the closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The emulator on its own thread and runtime; `ticks()` asks that thread for its CPU.
struct Emulator {
    base: String,
    emu: wxpush_cli::sandbox::Emulator,
    ask: tokio::sync::mpsc::Sender<std::sync::mpsc::Sender<u64>>,
}

fn start_emulator(appid: &str, secret: &str) -> Emulator {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let apps = vec![wxpush_cli::sandbox::EmulatedApp {
        appid: appid.into(),
        secret: secret.into(),
        kind: AppKind::OfficialAccount,
        callback: None,
    }];
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let emu = wxpush_cli::sandbox::Emulator::new(apps, 7200);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (ask, mut asks) = tokio::sync::mpsc::channel::<std::sync::mpsc::Sender<u64>>(4);
            ready_tx.send((base, emu.clone(), ask)).unwrap();
            let router = emu.standalone_router();
            tokio::spawn(async move {
                while let Some(reply) = asks.recv().await {
                    let _ = reply.send(cpu_ticks("/proc/thread-self/stat"));
                }
            });
            let _ = axum::serve(listener, router).await;
        });
    });
    let (base, emu, ask) = ready_rx.recv().unwrap();
    Emulator { base, emu, ask }
}

impl Emulator {
    async fn ticks(&self) -> u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        self.ask.send(tx).await.unwrap();
        tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap()
    }
}

/// A sender as `wxpush serve` builds one (the embedded store, the app in an apps file), over
/// the emulator at `base`; and its token manager.
fn embedded_sender(base: &str, appid: &str, secret: &str) -> (Arc<TokenManager>, Sender) {
    let db = wxpush_tests::memory_db();
    let apps = wxpush_shared::secrets::AppsFile {
        apps: vec![wxpush_shared::secrets::AppEntry {
            appid: appid.into(),
            kind: "official_account".into(),
            app_secret: secret.into(),
            ..Default::default()
        }],
    };
    let wechat =
        wxpush_shared::wechat::HttpWeChatClient::new(wxpush_shared::wechat::WeChatClientConfig {
            api_base: base.to_string(),
            ..Default::default()
        });
    let tokens = Arc::new(TokenManager::new(
        Arc::new(wxpush_shared::token::EmbeddedTokenStore::new(db.clone())),
        Arc::new(wxpush_shared::secrets::FileSecretStore::from_file(apps).unwrap()),
        Arc::new(wechat),
        wxpush_shared::token::TokenPolicy::default(),
    ));
    let sender = Sender::new(
        tokens.clone(),
        Arc::new(EmbeddedStateStore::new(db)),
        Duration::from_secs(5),
    );
    (tokens, sender)
}

/// The peer's CPU per send (µs): `bench/wechatpy_send.py` run by `python` against the same
/// emulator, with a token of this app.
fn peer_cpu_us(python: &str, base: &str, appid: &str, token: &str) -> f64 {
    let out = std::process::Command::new(python)
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/wechatpy_send.py"),
            base,
            appid,
            token,
            "fan",
            "3000",
        ])
        .output()
        .expect("the peer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse::<f64>()
        .unwrap()
}

/// What one run measured, per send.
struct Measured {
    sends: u64,
    ours_us: f64,
    emu_us: f64,
    wall_us: f64,
    tick_us: f64,
    delivered: u64,
}

fn print_table(m: &Measured, peer_us: Option<f64>) {
    let Measured {
        sends,
        ours_us,
        emu_us,
        wall_us,
        tick_us,
        delivered,
    } = m;
    println!("| sender | CPU per send | sends | wall per send |");
    println!("|---|---|---|---|");
    println!(
        "| wxpush (release, embedded store, HTTP to the emulator) | {ours_us:.1} µs | {sends} | {wall_us:.1} µs |"
    );
    if let Some(peer) = peer_us {
        println!("| wechatpy 1.8 (the peer, `bench/wechatpy_send.py`) | {peer:.1} µs | 3000 | — |");
        println!();
        println!(
            "wxpush uses {:.1}× less CPU per send than wechatpy (which keeps no record, checks nothing and retries nothing).",
            peer / ours_us
        );
    }
    println!();
    println!(
        "The emulator's own CPU, taken out: {emu_us:.1} µs per send. Template sends the emulator served: {delivered}. Clock tick: {tick_us:.0} µs."
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let python = std::env::args().nth(1);
    let (appid, secret) = ("wx00000000000000be", "bench-send-secret");
    let emulator = start_emulator(appid, secret);
    let client = reqwest::Client::new();
    client
        .post(format!("{}/sandbox/users", emulator.base))
        .json(&json!({"appid": appid, "openid": "fan"}))
        .send()
        .await
        .unwrap();

    let (tokens, sender) = embedded_sender(&emulator.base, appid, secret);
    let body = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T1",
                      "data": {"thing1": {"value": "你好"}}})
    .to_string();
    let send = || async {
        let outcome = sender
            .send(
                appid,
                body.as_bytes(),
                None,
                "bench",
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .expect("send");
        assert_eq!(outcome.status, 200);
    };
    for _ in 0..200 {
        send().await;
    }
    let sends = 3_000u64;
    let (proc0, emu0, wall) = (
        cpu_ticks("/proc/self/stat"),
        emulator.ticks().await,
        Instant::now(),
    );
    for _ in 0..sends {
        send().await;
    }
    let elapsed = wall.elapsed();
    let (proc1, emu1) = (cpu_ticks("/proc/self/stat"), emulator.ticks().await);
    let tick_us = 1e6 / ticks_per_second();

    let token = tokens.get(appid).await.unwrap().token.expose().to_string();
    let peer_us = python
        .as_deref()
        .map(|py| peer_cpu_us(py, &emulator.base, appid, &token));
    let measured = Measured {
        sends,
        ours_us: ((proc1 - proc0).saturating_sub(emu1 - emu0)) as f64 * tick_us / sends as f64,
        emu_us: (emu1 - emu0) as f64 * tick_us / sends as f64,
        wall_us: elapsed.as_secs_f64() * 1e6 / sends as f64,
        tick_us,
        delivered: emulator.emu.calls("/cgi-bin/message/template/send"),
    };
    print_table(&measured, peer_us);
}
