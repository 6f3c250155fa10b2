//! Forwarded events are signed: `wxpush serve --forward URL` (the built binary) puts
//! `Wxpush-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` on every
//! delivery, with the secret from `WXPUSH_FORWARD_SECRET`, `--forward-secret-file FILE`, or one
//! generated into `.wxpush/forward_secret` (0600, never printed). A receiver on 127.0.0.1
//! verifies real deliveries here; the Python and Node.js examples of
//! docs/webhook-signatures.md are run against them (valid → accepted; a tampered body, a wrong
//! secret, an old `t` → refused). A plain `http://` webhook beyond loopback is refused at start.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const OA: &str = "wxd0000000000000a1";
/// How far a receiver lets `t` be from its clock (the contract's 300 s).
const TOLERANCE: i64 = 300;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The receiver's check, written from the contract (not from wxpush's code).
fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|e| e.to_string())?),
            _ => {}
        }
    }
    let t = t.ok_or("no t")?;
    if (now - t).abs() > TOLERANCE {
        return Err(format!("t is {} s off", now - t));
    }
    let ok = v1.iter().any(|sig| {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    });
    ok.then_some(()).ok_or_else(|| "no v1 matches".to_string())
}

/// One delivery as the webhook got it.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn signature(&self) -> String {
        self.headers
            .get("wxpush-signature")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    _server: tokio::task::JoinHandle<()>,
}

/// A webhook on 127.0.0.1 that keeps every delivery and answers 204.
async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(Delivery { headers, body });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url,
        got,
        _server: server,
    }
}

impl Receiver {
    /// The first delivery whose body's detail has `openid`, within 20 s.
    async fn delivery_for(&self, openid: &str) -> Delivery {
        for _ in 0..400 {
            let found = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|d| {
                    serde_json::from_slice::<Value>(&d.body).is_ok_and(|v| v["openid"] == openid)
                })
                .cloned();
            if let Some(d) = found {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no delivery for {openid}");
    }
}

/// A temporary working directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = std::env::temp_dir().join(format!("wxpush-sig-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wxpush(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("WXPUSH_FORWARD_SECRET")
        .env("WXPUSH_API_KEY", "sig-test-key")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `wxpush serve --sandbox --port 0 ...`, with everything it printed at start.
struct Serve {
    child: Child,
    url: String,
    printed: String,
}

async fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut args = vec!["serve", "--sandbox", "--port", "0"];
    args.extend_from_slice(extra);
    let mut child = wxpush(dir, &args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let mut url = None;
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(u) = line.strip_prefix("wxpush listening on ") {
                url = Some(u.trim().to_string());
            }
            if line.starts_with("try:") {
                return true;
            }
        }
        false
    })
    .await;
    if started != Ok(true) {
        let _ = child.kill().await;
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "wxpush serve did not start: {printed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Keep reading stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Serve {
        child,
        url: url.expect("the server prints its URL"),
        printed,
    }
}

impl Serve {
    /// A user follows the demo official account: the emulator pushes `subscribe` to the
    /// server's callback, which records and forwards it.
    async fn follow(&self, openid: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/sandbox/users/{openid}/follow", self.url))
            .json(&json!({"appid": OA, "unionid": format!("u-{openid}")}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// Stops the server; answers what it wrote to stderr.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let out = self.child.wait_with_output().await.unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[tokio::test]
async fn every_delivery_is_signed_with_the_secret_from_the_environment() {
    let hook = receiver().await;
    let dir = Dir::new();
    let secret = "whsec-from-the-environment-0123456789";
    let server = serve(
        &dir.0,
        &["--forward", &hook.url],
        &[("WXPUSH_FORWARD_SECRET", secret)],
    )
    .await;
    server.follow("o-sig-1").await;
    server.follow("o-sig-2").await;
    let (first, second) = (
        hook.delivery_for("o-sig-1").await,
        hook.delivery_for("o-sig-2").await,
    );
    let printed = server.printed.clone();
    let logged = server.stop().await;
    for d in [&first, &second] {
        let header = d.signature();
        assert!(header.starts_with("t="), "Wxpush-Signature: {header:?}");
        verify(secret, &header, &d.body, now()).unwrap_or_else(|e| panic!("{header}: {e}"));
        // A forger without the secret, or a changed body, does not pass.
        assert!(verify("another-secret-0123456789", &header, &d.body, now()).is_err());
        let mut tampered = d.body.to_vec();
        tampered[1] ^= 1;
        assert!(verify(secret, &header, &tampered, now()).is_err());
        // Replayed long after: refused for its t.
        assert!(verify(secret, &header, &d.body, now() + TOLERANCE + 5).is_err());
    }
    assert!(
        !printed.contains(secret) && !logged.contains(secret),
        "the secret is never printed or logged"
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_secret_is_generated_private_or_read_from_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let hook = receiver().await;
    // Neither given: generated into .wxpush/forward_secret (0600), its place printed, never
    // its value; a second start uses the same one.
    let dir = Dir::new();
    let server = serve(&dir.0, &["--forward", &hook.url], &[]).await;
    let path = dir.0.join(".wxpush/forward_secret");
    assert_eq!(mode(&path), 0o600);
    let secret = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(secret.len() >= 32, "a generated secret is long");
    assert!(
        server.printed.contains(".wxpush/forward_secret"),
        "{}",
        server.printed
    );
    server.follow("o-gen").await;
    let d = hook.delivery_for("o-gen").await;
    let printed = server.printed.clone();
    let logged = server.stop().await;
    verify(&secret, &d.signature(), &d.body, now()).unwrap();
    assert!(!printed.contains(&secret) && !logged.contains(&secret));
    let again = serve(&dir.0, &["--forward", &hook.url], &[]).await;
    again.follow("o-gen-2").await;
    let d = hook.delivery_for("o-gen-2").await;
    again.stop().await;
    verify(&secret, &d.signature(), &d.body, now()).unwrap();

    // --forward-secret-file FILE (mode 0600): that secret.
    let file = dir.0.join("hook-secret");
    std::fs::write(&file, "whsec-from-a-file-0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = file.to_str().unwrap();
    let server = serve(
        &dir.0,
        &["--forward", &hook.url, "--forward-secret-file", f],
        &[],
    )
    .await;
    server.follow("o-file").await;
    let d = hook.delivery_for("o-file").await;
    server.stop().await;
    verify(
        "whsec-from-a-file-0123456789abcdef",
        &d.signature(),
        &d.body,
        now(),
    )
    .unwrap();

    // A secret file others can read is refused (exit 2), as the API key file is.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = wxpush(
        &dir.0,
        &[
            "serve",
            "--sandbox",
            "--port",
            "0",
            "--forward",
            &hook.url,
            "--forward-secret-file",
            f,
        ],
        &[],
    )
    .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("refused at start")
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can be read by other users"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_plain_http_webhook_beyond_loopback_is_refused_at_start() {
    let dir = Dir::new();
    for url in [
        "http://hooks.example.com/wxpush",
        "http://10.0.0.7:8080/hook",
        "http://[2001:db8::1]/hook",
    ] {
        let out = wxpush(
            &dir.0,
            &["serve", "--sandbox", "--port", "0", "--forward", url],
            &[("WXPUSH_FORWARD_SECRET", "whsec-0123456789abcdef")],
        )
        .output();
        let out = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .unwrap_or_else(|_| panic!("--forward {url} is refused at start"))
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("https://") && err.contains("loopback"),
            "{url}: {err}"
        );
    }
}

/// The fenced block of `lang` in docs/webhook-signatures.md.
fn doc_example(lang: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/webhook-signatures.md"
    ))
    .expect("docs/webhook-signatures.md");
    let fence = format!("```{lang}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} example"))
        + fence.len();
    doc[start..][..doc[start..].find("```").unwrap()].to_string()
}

/// An example receiver run as documented (`WXPUSH_FORWARD_SECRET`, `PORT=0`), on the port it
/// prints.
struct Example {
    _child: Child,
    url: String,
}

async fn run_example(program: &str, file: &Path, secret: &str) -> Example {
    let mut child = Command::new(program)
        .arg(file)
        .env("WXPUSH_FORWARD_SECRET", secret)
        .env("PORT", "0")
        .stdout(Stdio::piped())
        // Python's access log; a receiver that fails to start fails the port read below.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the example prints its port")
        .unwrap()
        .unwrap_or_default();
    let port: u16 = line
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{program} printed {line:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Example {
        _child: child,
        url: format!("http://127.0.0.1:{port}/"),
    }
}

/// Posts `body` with `signature` as wxpush does; answers the status.
async fn post(url: &str, signature: &str, body: &[u8]) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("wxpush-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Runs one documented example against a real delivery: accepted as delivered, refused when
/// the body is changed, with another secret, or with a `t` older than 300 s.
async fn check_example(program: &str, ext: &str, secret: &str, real: &Delivery) {
    let dir = Dir::new();
    let file = dir.0.join(format!("receiver.{ext}"));
    std::fs::write(
        &file,
        doc_example(if ext == "py" { "python" } else { "javascript" }),
    )
    .unwrap();
    let good = run_example(program, &file, secret).await;
    let header = real.signature();
    assert!(
        (200..300).contains(&post(&good.url, &header, &real.body).await),
        "{program}: a real delivery is accepted"
    );
    let mut tampered = real.body.to_vec();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
    assert_eq!(
        post(&good.url, &header, &tampered).await,
        400,
        "{program}: tampered body"
    );
    let old = now() - TOLERANCE - 60;
    let stale = format!("t={old},v1={}", sign(secret, old, &real.body));
    assert_eq!(
        post(&good.url, &stale, &real.body).await,
        400,
        "{program}: old t"
    );
    assert_eq!(
        post(&good.url, "", &real.body).await,
        400,
        "{program}: no header"
    );
    let wrong = run_example(program, &file, "not-the-secret-0123456789").await;
    assert_eq!(
        post(&wrong.url, &header, &real.body).await,
        400,
        "{program}: wrong secret"
    );
}

fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_documented_python_and_node_receivers_verify_real_deliveries() {
    let hook = receiver().await;
    let dir = Dir::new();
    let secret = "whsec-docs-example-0123456789abcdef";
    let server = serve(
        &dir.0,
        &["--forward", &hook.url],
        &[("WXPUSH_FORWARD_SECRET", secret)],
    )
    .await;
    server.follow("o-docs").await;
    let real = hook.delivery_for("o-docs").await;
    server.stop().await;
    assert!(have("python3"), "python3 runs the Python example");
    check_example("python3", "py", secret, &real).await;
    if have("node") {
        check_example("node", "js", secret, &real).await;
        eprintln!("the Node.js example was run");
    } else {
        eprintln!("node not installed: the Node.js example is not run");
    }
}
