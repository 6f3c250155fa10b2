//! The receivers of docs/webhook-signatures.md, run as documented against real deliveries.

use crate::server::Dir;
use crate::webhook::{Delivery, sign};
use crate::{TOLERANCE, now};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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
pub async fn check_example(program: &str, ext: &str, secret: &str, real: &Delivery) {
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

pub fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
