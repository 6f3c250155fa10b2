//! One source floods `/wechat` with junk while WeChat keeps pushing: with a rate limit per
//! source address, every real push is recorded (README, Security).
//!
//! `wxpush serve --sandbox` runs as a process with `--callback-throttle 100` (all sources
//! together, burst 200: the deployed route throttle's defaults) and `--callback-rate 40
//! --callback-burst 80` per source. The flood comes from 127.0.0.2 (5 000 junk requests in
//! 9 s); WeChat from 127.0.0.1: 200 text messages signed with the app's callback token, 25 a
//! second, each on its own as WeChat sends them, tried three times 0.5 s apart (the
//! emulator's spacing). Both are loopback on Linux. Bounded: at most 5 000 junk requests
//! within 10 s, to 127.0.0.1 only.
//!
//! `WXPUSH_FLOOD_WITHOUT_LIMIT=1` runs the same flood without `--callback-rate`: the flood
//! then takes the shared throttle and real pushes are lost, and the test fails.

mod common;

use common::{Proc, free_port};
use serde_json::Value;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OA: &str = "wx00000000000000f1";
/// The app's callback token (plaintext mode: signed, not encrypted).
const TOKEN: &str = "floodtoken";
const JUNK: usize = 5_000;
const FLOOD_FOR: Duration = Duration::from_secs(10);
const REAL: usize = 200;
/// 5 000 junk requests in 9 s.
const PACE: Duration = Duration::from_micros(1_800);
/// A real push every 40 ms: 200 in 8 s.
const PUSH_EVERY: Duration = Duration::from_millis(40);

/// A webhook for `--forward`: the openids of the events wxpush recorded and forwarded.
async fn webhook() -> (String, Arc<Mutex<HashSet<String>>>) {
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(openid) = v["openid"].as_str() {
                    s.lock().unwrap().insert(openid.to_string());
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

fn start_server(dir: &std::path::Path, port: u16, forward: &str, limit: bool) -> Proc {
    let mut extra = vec!["--forward", forward, "--callback-throttle", "100"];
    if limit {
        extra.extend(["--callback-rate", "40", "--callback-burst", "80"]);
    }
    start_with(dir, port, &extra)
}

/// `wxpush serve --sandbox` on `port` with the flood test's app and `extra` flags.
fn start_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Proc {
    let apps = format!(
        "[[app]]\nappid = \"{OA}\"\nkind = \"official_account\"\napp_secret = \"flood-secret\"\ncallback_token = \"{TOKEN}\"\n"
    );
    std::fs::write(dir.join("apps.toml"), apps).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(["serve", "--sandbox", "--port", &port.to_string(), "--apps"])
        .arg(dir.join("apps.toml"))
        .args(extra)
        .current_dir(dir)
        .env("WXPUSH_API_KEY", "flood-test-key")
        .env("RUST_LOG", "warn");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    cmd.stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    Proc(cmd.spawn().unwrap())
}

/// What the flood got back.
#[derive(Default)]
struct FloodCounts {
    sent: AtomicUsize,
    too_many: AtomicUsize,
    other: AtomicUsize,
    failed: AtomicUsize,
}

/// Junk to `/wechat/...` from 127.0.0.2 on 16 connections, paced at `JUNK` requests in 9 s
/// (555 a second, five times the shared throttle) so it lasts as long as WeChat's pushes;
/// at most `JUNK` requests, and none after `FLOOD_FOR`.
async fn flood(url: String, counts: Arc<FloodCounts>) -> Duration {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, url, counts) = (client.clone(), url.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < FLOOD_FOR {
                let n = counts.sent.fetch_add(1, Ordering::SeqCst);
                if n >= JUNK {
                    counts.sent.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                tokio::time::sleep_until((start + PACE * n as u32).into()).await;
                let target = if n % 2 == 0 {
                    format!("{url}/wechat/wx{n:016x}?signature=0&timestamp=1&nonce={n}")
                } else {
                    format!("{url}/wechat/anything-{worker}")
                };
                match client.post(target).body("<xml>junk</xml>").send().await {
                    Ok(r) if r.status() == 429 => counts.too_many.fetch_add(1, Ordering::SeqCst),
                    Ok(_) => counts.other.fetch_add(1, Ordering::SeqCst),
                    Err(_) => counts.failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// WeChat's push `i`: a text message from `o-flood-{i}`, signed as WeChat signs it, sent
/// from 127.0.0.1 and tried three times, 0.5 s apart, until answered `success`. `Err` holds
/// the last answer.
async fn wechat_push(http: reqwest::Client, url: String, i: usize) -> Result<(), String> {
    let now = wxpush_shared::clock::now_unix();
    let (ts, nonce) = (now.to_string(), format!("flood{i}"));
    let signature = wxpush_shared::callback::signature::compute(&[TOKEN, &ts, &nonce]);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_flood]]></ToUserName><FromUserName><![CDATA[o-flood-{i}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello {i}]]></Content><MsgId>{}</MsgId></xml>",
        7_000_000 + i
    );
    let target = format!("{url}/wechat/{OA}?signature={signature}&timestamp={ts}&nonce={nonce}");
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match http.post(&target).body(body.clone()).send().await {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status == 200 && text == "success" {
                    return Ok(());
                }
                last = format!("HTTP {status} {text}");
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_source_does_not_cost_wechat_a_push() {
    let limit = std::env::var("WXPUSH_FLOOD_WITHOUT_LIMIT").is_err();
    let dir = std::env::temp_dir().join(format!("wxpush-flood-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hook, forwarded) = webhook().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = start_server(&dir, port, &hook, limit);
    let http = reqwest::Client::new();
    let up = Instant::now();
    while http
        .get(format!("{url}/sandbox/stats"))
        .send()
        .await
        .is_err()
    {
        assert!(up.elapsed() < Duration::from_secs(30), "the server starts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let counts = Arc::new(FloodCounts::default());
    let flooding = tokio::spawn(flood(url.clone(), counts.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // WeChat's real pushes, one every 40 ms, each on its own.
    let wechat = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut pushes = Vec::new();
    for i in 0..REAL {
        pushes.push(tokio::spawn(wechat_push(wechat.clone(), url.clone(), i)));
        tokio::time::sleep(PUSH_EVERY).await;
    }
    let mut lost = Vec::new();
    for (i, p) in pushes.into_iter().enumerate() {
        if let Err(e) = p.await.unwrap() {
            lost.push(format!("push {i}: {e}"));
        }
    }
    let delivered = REAL - lost.len();
    let took = flooding.await.unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while forwarded.lock().unwrap().len() < REAL && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = forwarded.lock().unwrap().len();
    let (sent, too_many, other, failed) = (
        counts.sent.load(Ordering::SeqCst),
        counts.too_many.load(Ordering::SeqCst),
        counts.other.load(Ordering::SeqCst),
        counts.failed.load(Ordering::SeqCst),
    );
    eprintln!(
        "flood (per-source limit {}): {sent} junk requests in {:.1} s from 127.0.0.2: {too_many} answered 429, {other} otherwise, {failed} failed; real pushes: {delivered}/{REAL} delivered, {recorded}/{REAL} recorded and forwarded",
        if limit { "on" } else { "off" },
        took.as_secs_f64()
    );
    assert!(
        took <= FLOOD_FOR + Duration::from_secs(2),
        "bounded in time"
    );
    assert!(sent >= JUNK / 2, "the flood ran: {sent} requests");
    assert_eq!(
        delivered,
        REAL,
        "WeChat's pushes lost to the flood: {} of {REAL}, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert_eq!(recorded, REAL, "every real push recorded (forwarded)");
    assert!(
        too_many * 2 > sent,
        "most junk got 429: {too_many} of {sent}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signed URL check (`GET /wechat/{appid}?echostr=`) from `from`: its status (0 while
/// the server does not answer).
async fn verify_from(url: &str, from: Ipv4Addr) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ts = wxpush_shared::clock::now_unix().to_string();
    let signature = wxpush_shared::callback::signature::compute(&[TOKEN, &ts, "n"]);
    client
        .get(format!(
            "{url}/wechat/{OA}?signature={signature}&timestamp={ts}&nonce=n&echostr=hi"
        ))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn the_allow_list_lets_only_wechat_and_the_given_addresses_through() {
    let dir = std::env::temp_dir().join(format!("wxpush-allow-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // WeChat's list (the emulator's getcallbackip: 127.0.0.1 and 101.226.103.0/25) and one
    // address of the operator's.
    let _server = start_with(
        &dir,
        port,
        &["--callback-allow-wechat", "--callback-allow", "127.0.0.3"],
    );
    let start = Instant::now();
    // Fetched at start (until then only --callback-allow passes: 403).
    while verify_from(&url, Ipv4Addr::LOCALHOST).await != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "WeChat's list was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(verify_from(&url, Ipv4Addr::LOCALHOST).await, 200);
    assert_eq!(verify_from(&url, Ipv4Addr::new(127, 0, 0, 3)).await, 200);
    assert_eq!(verify_from(&url, Ipv4Addr::new(127, 0, 0, 2)).await, 403);
    let _ = std::fs::remove_dir_all(&dir);
}
