//! What the CLI's test binaries share: a child process killed when dropped, a free port, a
//! file's permission bits. Each binary uses some of it.
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
