//! `wxpush serve` killed with SIGKILL and started again on the same `--data`: the jobs it had
//! queued — batch chunks, chunks put back during a pause, follower look-ups, event forwards —
//! still run, from the queue kept in its redb file. The WeChat emulator runs as a process of
//! its own (`wxpush sandbox`), so its record of delivered messages outlives the server.
//!
//! Every process a test starts is killed when the test ends, also on a panic ([`Proc`]), and
//! every wait is bounded. The server runs with `--test-timings` (chunks of 100, pauses of
//! 3 s, retries after 0.5 s, job steps of 10 s) and no scheduled sweep within the test
//! (`--sweep-every 3600`: the sweep would find lost work too, after a minute), so what the
//! tests see is the queue's doing.

mod common;

use axum::http::{HeaderMap, StatusCode};
use common::{Proc, free_port};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "restart-test-key";
const OA: &str = "wx00000000000000e1";
const TEMPLATE_PATH: &str = "/cgi-bin/message/template/send";

/// Polls `probe` every 50 ms until it answers `Some`, for at most `secs` seconds.
async fn wait_until<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < end, "waited {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One emulator process, and the server processes started one after another on the same
/// port and data file. The working directory is removed when dropped.
struct Scene {
    server: Option<Proc>,
    _emulator: Proc,
    dir: PathBuf,
    emu: String,
    url: String,
    port: u16,
    forward: Option<String>,
    starts: u32,
    http: reqwest::Client,
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
        if std::thread::panicking() {
            // The server's own account of what happened, for whoever reads the failure.
            for n in 1..=self.starts {
                let log = std::fs::read_to_string(self.dir.join(format!("server-{n}.log")));
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- server start {n}, last lines ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn log_file(dir: &std::path::Path, name: &str) -> (Stdio, Stdio) {
    let file = std::fs::File::create(dir.join(name)).unwrap();
    (file.try_clone().unwrap().into(), file.into())
}

impl Scene {
    /// The emulator with one official account (`--callback-base` pointing at the server's
    /// port when `callbacks`), and the server started once.
    async fn start(callbacks: bool, forward: Option<String>) -> Scene {
        let dir = std::env::temp_dir().join(format!("wxpush-restart-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let apps = format!(
            "[[app]]\nappid = \"{OA}\"\nkind = \"official_account\"\napp_secret = \"restart-secret\"\ncallback_token = \"restarttoken\"\nencoding_aes_key = \"{}\"\nbatch_rate = 250\n",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        );
        std::fs::write(dir.join("apps.toml"), apps).unwrap();
        let (port, emu_port) = (free_port(), free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
        cmd.args(["sandbox", "--port", &emu_port.to_string(), "--apps"])
            .arg(dir.join("apps.toml"))
            .current_dir(&dir);
        if callbacks {
            cmd.args([
                "--callback-base",
                &format!("http://127.0.0.1:{port}/wechat"),
            ]);
        }
        let (out, err) = log_file(&dir, "emulator.log");
        let emulator = Proc(cmd.stdout(out).stderr(err).spawn().unwrap());
        let mut scene = Scene {
            server: None,
            _emulator: emulator,
            emu: format!("http://127.0.0.1:{emu_port}"),
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            forward,
            starts: 0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        let (s, stats) = (&scene, format!("{}/sandbox/stats", scene.emu));
        let stats = stats.as_str();
        wait_until("the emulator answers", 30, move || s.ok(stats)).await;
        scene.start_server().await;
        scene
    }

    async fn ok(&self, url: &str) -> Option<()> {
        let resp = self.http.get(url).send().await.ok()?;
        resp.status().is_success().then_some(())
    }

    /// Starts `wxpush serve` on the scene's port and data file; returns once it answers.
    async fn start_server(&mut self) {
        assert!(self.server.is_none());
        self.starts += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
        let port = self.port.to_string();
        // No scheduled sweep within a test: what runs is what the queue kept.
        cmd.args([
            "serve",
            "--test-timings",
            "--sweep-every",
            "3600",
            "--port",
            &port,
        ])
        .arg("--data")
        .arg(self.dir.join("data/wxpush.redb"))
        .arg("--apps")
        .arg(self.dir.join("apps.toml"))
        .env("WECHAT_API_BASE", &self.emu)
        .env("WXPUSH_API_KEY", KEY)
        .env("WXPUSH_BATCH_CONCURRENCY", "8")
        .env_remove("WXPUSH_BATCH_RATE")
        .current_dir(&self.dir);
        if let Some(url) = &self.forward {
            cmd.args(["--forward", url]);
        }
        let (out, err) = log_file(&self.dir, &format!("server-{}.log", self.starts));
        self.server = Some(Proc(cmd.stdout(out).stderr(err).spawn().unwrap()));
        let (http, token) = (&self.http, format!("{}/v1/apps/{OA}/token", self.url));
        let token = token.as_str();
        wait_until("the server answers", 30, move || async move {
            let resp = http.get(token).bearer_auth(KEY).send().await.ok()?;
            resp.status().is_success().then_some(())
        })
        .await;
    }

    /// `kill -9` the server.
    fn kill_server(&mut self) {
        self.server.take().expect("a server runs").kill();
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/sandbox{path}", self.emu))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn emulator_get(&self, path: &str) -> Value {
        let url = format!("{}/sandbox{path}", self.emu);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// WeChat calls the emulator took on `path` (faulted ones too).
    async fn calls(&self, path: &str) -> u64 {
        self.emulator_get("/stats").await[path]
            .as_u64()
            .unwrap_or(0)
    }

    /// `METHOD /v1{path}` with the bearer key: status and JSON body.
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}/v1{path}", self.url))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn template(text: &str) -> Value {
    json!({"type": "template", "template_id": "TPL_restart", "data": {"thing1": {"value": text}}})
}

/// A batch with nothing left to send (the counts, or the state other versions report).
fn settled(status: &Value) -> bool {
    let n = |k: &str| status[k].as_i64().unwrap_or(0);
    status["state"] == "done"
        || (status["queued"] == 0
            && n("sent") + n("failed") + n("unknown") + n("cancelled") == n("total"))
}

/// Where in the batch the server is killed.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// Once WeChat took this many sends.
    Sent(u64),
    /// During the pause a 45011 starts once WeChat took this many sends (the chunks are put
    /// back with a delay).
    Paused(u64),
}

/// 2 000 template recipients; the server is killed at `at` and started again; the batch
/// ends with every recipient sent exactly one message.
async fn batch_survives_a_kill(at: KillAt) {
    const N: usize = 2_000;
    let started = Instant::now();
    let mut scene = Scene::start(false, None).await;
    let openids: Vec<String> = (0..N).map(|i| format!("o-r{i:04}")).collect();
    let users: Vec<Value> = openids
        .iter()
        .map(|o| json!({"appid": OA, "openid": o, "unionid": format!("u-{o}"), "subscribed": true}))
        .collect();
    scene.control("/users", json!(users)).await;
    let recipients: Vec<Value> = openids.iter().map(|o| json!({"openid": o})).collect();
    let (status, created) = scene
        .api(
            "POST",
            &format!("/apps/{OA}/batches"),
            Some(json!({"message": template("restart"), "recipients": recipients})),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let batch = format!("/apps/{OA}/batches/{id}");

    let threshold = match at {
        KillAt::Sent(n) | KillAt::Paused(n) => n,
    };
    let (s, b) = (&scene, batch.as_str());
    wait_until("WeChat takes the first sends", 60, move || async move {
        (s.calls(TEMPLATE_PATH).await >= threshold).then_some(())
    })
    .await;
    if let KillAt::Paused(_) = at {
        scene
            .control("/faults", json!({"path": TEMPLATE_PATH, "errcode": 45011}))
            .await;
        wait_until("the batch pauses", 30, move || async move {
            let (_, st) = s.api("GET", b, None).await;
            (st["state"] == "paused" || st.get("paused_until").is_some()).then_some(())
        })
        .await;
        // Every chunk job sees the pause within its check interval (0.3 s) and goes back
        // to the queue with the pause as its delay.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    scene.kill_server();
    let at_kill = scene.calls(TEMPLATE_PATH).await;
    assert!(
        (at_kill as usize) < N,
        "the server was killed mid-batch ({at_kill} sends taken)"
    );
    let killed_after = started.elapsed();
    scene.start_server().await;

    let (s, b) = (&scene, batch.as_str());
    let done = wait_until(
        "the batch settles after the restart",
        120,
        move || async move {
            let (_, st) = s.api("GET", b, None).await;
            settled(&st).then_some(st)
        },
    )
    .await;
    assert_eq!(done["total"], json!(N), "{done}");
    assert_eq!(done["sent"], json!(N), "every recipient sent: {done}");
    let messages = scene.emulator_get(&format!("/messages?appid={OA}")).await;
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for m in messages.as_array().unwrap() {
        *per_user.entry(m["touser"].as_str().unwrap()).or_default() += 1;
    }
    let missing: Vec<&String> = openids
        .iter()
        .filter(|o| !per_user.contains_key(o.as_str()))
        .collect();
    let twice: Vec<(&&str, &usize)> = per_user.iter().filter(|(_, n)| **n != 1).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(per_user.len(), N, "no message to anyone else");
    eprintln!(
        "{at:?}: killed after {killed_after:?} with {at_kill} sends taken; settled {:?} after the start",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_early_finishes_after_a_restart() {
    batch_survives_a_kill(KillAt::Sent(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_late_finishes_after_a_restart() {
    batch_survives_a_kill(KillAt::Sent(1_200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_while_paused_resumes_after_a_restart() {
    batch_survives_a_kill(KillAt::Paused(600)).await;
}

/// A new follower's unionid look-up (`Job::CompleteFollower`) is under way — WeChat slow to
/// answer `user/info` — when the server is killed; after the restart it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_look_up_cut_short_runs_after_a_restart() {
    let mut scene = Scene::start(true, None).await;
    scene
        .control(
            "/users",
            json!({"appid": OA, "openid": "o-late", "unionid": "u-late", "subscribed": false}),
        )
        .await;
    scene
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info", "delay_ms": 30_000}),
        )
        .await;
    scene
        .control("/users/o-late/follow", json!({"appid": OA}))
        .await;
    // The callback recorded the follower without its unionid, and its look-up now waits on
    // WeChat.
    let s = &scene;
    wait_until("the look-up calls user/info", 30, move || async move {
        (s.calls("/cgi-bin/user/info").await >= 1).then_some(())
    })
    .await;
    let (status, body) = scene.api("GET", "/users/u-late", None).await;
    assert_eq!(status, 404, "not mapped yet: {body}");
    scene.kill_server();
    scene.start_server().await;
    let s = &scene;
    let user = wait_until("the unionid is filled in", 30, move || async move {
        let (status, body) = s.api("GET", "/users/u-late", None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(user["accounts"][0]["openid"], "o-late", "{user}");
    assert_eq!(user["accounts"][0]["appid"], OA, "{user}");
}

/// What the webhook of `--forward` got: each request's detail type and the status answered.
#[derive(Clone, Default)]
struct Webhook {
    up: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Webhook {
    /// Listens on 127.0.0.1; answers 500 until `up`, then 200.
    async fn start(&self) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let hook = hook.clone();
                async move {
                    let status = if hook.up.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    let kind = headers
                        .get("x-wxpush-detail-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    hook.seen.lock().unwrap().push((kind, status.as_u16()));
                    status
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, task)
    }

    fn got(&self, status: u16) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(_, s)| *s == status)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// An event whose forward failed (the webhook answering 500) is waiting for its retry when
/// the server is killed; after the restart, with the webhook up, it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_waiting_for_its_forward_retry_arrives_after_a_restart() {
    const FINISHED: &str = "wechat.event.TEMPLATESENDJOBFINISH";
    let hook = Webhook::default();
    let (url, receiver) = hook.start().await;
    let mut scene = Scene::start(true, Some(url)).await;
    scene
        .control(
            "/users",
            json!({"appid": OA, "openid": "o-fwd", "unionid": "u-fwd", "subscribed": true}),
        )
        .await;
    // A template message: WeChat pushes TEMPLATESENDJOBFINISH back, which is forwarded.
    let mut send = template("forward me");
    send["to"] = json!({"openid": "o-fwd"});
    let (status, body) = scene
        .api("POST", &format!("/apps/{OA}/messages"), Some(send))
        .await;
    assert_eq!(status, 200, "{body}");
    let h = &hook;
    wait_until(
        "the webhook refuses the event once",
        30,
        move || async move { h.got(500).iter().any(|k| k == FINISHED).then_some(()) },
    )
    .await;
    scene.kill_server();
    hook.up.store(true, Ordering::SeqCst);
    scene.start_server().await;
    wait_until(
        "the event arrives after the restart",
        40,
        move || async move { h.got(200).iter().any(|k| k == FINISHED).then_some(()) },
    )
    .await;
    drop(scene);
    receiver.abort();
}
