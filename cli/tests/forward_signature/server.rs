//! `wxpush serve` as the built binary, run in a temporary directory.

use crate::OA;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A temporary working directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new() -> Dir {
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

pub fn wxpush(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
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
pub struct Serve {
    child: Child,
    url: String,
    pub printed: String,
}

pub async fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
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
    pub async fn follow(&self, openid: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/sandbox/users/{openid}/follow", self.url))
            .json(&json!({"appid": OA, "unionid": format!("u-{openid}")}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// Stops the server; answers what it wrote to stderr.
    pub async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let out = self.child.wait_with_output().await.unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
