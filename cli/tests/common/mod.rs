//! What the CLI's test binaries share: a child process killed when dropped, a free port, a
//! file's permission bits, the local server in-process. Each binary uses some of it.
#![allow(dead_code)]

use std::process::Child;

/// A child process, killed (SIGKILL) and reaped when dropped (also on a panic).
pub struct Proc(pub Child);

impl Proc {
    /// Kills and reaps it now.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 (the OS's pick, released for the caller to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `p`'s permission bits (`0o600`).
#[cfg(unix)]
pub fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `wxpush serve --sandbox` in-process on 127.0.0.1:0, in memory, with the bearer key `key`.
pub async fn sandbox_server(
    apps: wxpush_shared::secrets::AppsFile,
    key: &str,
) -> wxpush_cli::local_server::RunningServer {
    use std::time::Duration;
    use wxpush_cli::local_server::{DataLocation, ServeConfig, start};
    start(ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        apps,
        sandbox: true,
        data: DataLocation::Memory,
        api_key: key.into(),
        wechat: Default::default(),
        refresh_every: Duration::from_secs(3600),
        refresh_window: Duration::from_secs(900),
        sync: Default::default(),
        batches: Default::default(),
        forward: None,
        sweep_every: Duration::from_secs(3600),
        callback_guard: Default::default(),
    })
    .await
    .expect("the local server starts")
}
