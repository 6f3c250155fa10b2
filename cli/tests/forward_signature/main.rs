//! Forwarded events are signed: `wxpush serve --forward URL` (the built binary) puts
//! `Wxpush-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` on every
//! delivery, with the secret from `WXPUSH_FORWARD_SECRET`, `--forward-secret-file FILE`, or one
//! generated into `.wxpush/forward_secret` (0600, never printed). A receiver on 127.0.0.1
//! verifies real deliveries here; the Python and Node.js examples of
//! docs/webhook-signatures.md are run against them (valid → accepted; a tampered body, a wrong
//! secret, an old `t` → refused). A plain `http://` webhook beyond loopback is refused at start.

#[path = "../common/mod.rs"]
mod common;
mod doc_examples;
mod server;
mod webhook;

#[cfg(unix)]
use common::mode;
use doc_examples::{check_example, have};
use server::{Dir, serve, wxpush};
use std::time::Duration;
use webhook::{receiver, verify};

const OA: &str = "wxd0000000000000a1";
/// How far a receiver lets `t` be from its clock (docs/webhook-signatures.md: 300 s).
const TOLERANCE: i64 = 300;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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
