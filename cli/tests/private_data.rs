//! The local server's database holds access tokens and decrypted user messages: its folder
//! is created 0700 and the file 0600 wherever it is (`--data`, or `.wxpush/` with the key in
//! `WXPUSH_API_KEY`), and a `.wxpush/` or database file others can read is tightened.
#![cfg(unix)]

mod common;

use common::{Proc, mode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wxpush-modes-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("apps.toml"),
        "[[app]]\nappid = \"wx00000000000000d1\"\nkind = \"official_account\"\napp_secret = \"modes-secret\"\n",
    )
    .unwrap();
    dir
}

/// `wxpush serve` in `dir` with `WXPUSH_API_KEY` set and `args`, until it listens; its log.
fn serve(dir: &Path, args: &[&str]) -> (Proc, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .args(["serve", "--apps", "apps.toml", "--port", &port.to_string()])
        .args(["--refresh-every", "3600"])
        .args(args)
        .current_dir(dir)
        .env("WXPUSH_API_KEY", "modes-test-key")
        .env("WECHAT_API_BASE", "http://127.0.0.1:9")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("wxpush listening on") {
            return (proc, text);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn data_given_with_data_is_private_in_fresh_folders() {
    let dir = fresh_dir();
    let (_server, _) = serve(&dir, &["--data", "state/db/wxpush.redb"]);
    assert_eq!(mode(&dir.join("state")), 0o700, "a folder wxpush created");
    assert_eq!(
        mode(&dir.join("state/db")),
        0o700,
        "a folder wxpush created"
    );
    assert_eq!(mode(&dir.join("state/db/wxpush.redb")), 0o600);
    // The key comes from the environment: nothing else is written.
    assert!(!dir.join(".wxpush").exists());
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_wxpush_folder_is_private_with_the_key_in_the_environment() {
    let dir = fresh_dir();
    let (server, _) = serve(&dir, &[]);
    assert_eq!(mode(&dir.join(".wxpush")), 0o700);
    assert_eq!(mode(&dir.join(".wxpush/wxpush.redb")), 0o600);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_readable_folder_and_file_are_tightened_with_a_warning() {
    let dir = fresh_dir();
    let own = dir.join(".wxpush");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(own.join("wxpush.redb"), b"").unwrap();
    std::fs::set_permissions(
        own.join("wxpush.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (server, log) = serve(&dir, &[]);
    assert_eq!(mode(&own), 0o700);
    assert_eq!(mode(&own.join("wxpush.redb")), 0o600);
    assert_eq!(
        log.matches("tightened to the owner only").count(),
        2,
        "{log}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
