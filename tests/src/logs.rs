//! The suite's logs: every test process logs to `target/test-logs/`, beside a ledger of the
//! secrets those logs must not contain; a test captures its own lines with [`LogCapture`].

use std::sync::Arc;

/// Where the suite's logs and the ledger of secrets they must not contain are written
/// (`scripts/check_logs.py` reads both after the run).
pub fn test_log_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-logs"))
}

/// Sends every log line of this test process (wxpush's own at debug, the rest at info) to
/// `target/test-logs/{binary}-{pid}.log` as JSON. Called by the fixtures, so every test
/// that starts one is logged; a test's own `LogCapture` overrides it on its thread.
pub fn capture_suite_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = test_log_dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let Ok(file) = std::fs::File::create(dir.join(format!("{exe}-{}.log", std::process::id())))
        else {
            return;
        };
        let filter = tracing_subscriber::EnvFilter::new(
            "info,wxpush_shared=trace,wxpush_cli=trace,wxpush_send=trace,wxpush_callback=trace,\
             wxpush_token_refresh=trace,wxpush_batch_worker=trace,wxpush_tests=trace",
        );
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

/// Adds secrets to the ledger the log check reads (one per line).
pub fn remember_secrets(secrets: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let dir = test_log_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(mut ledger) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("secrets-{}.txt", std::process::id())))
    else {
        return;
    };
    // One write per process call: lines from concurrent tests never interleave.
    let lines: String = secrets.into_iter().map(|s| s + "\n").collect();
    let _ = ledger.write_all(lines.as_bytes());
}

/// Log lines, captured as the JSON subscriber would write them.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures every log line of this thread (use a current-thread runtime) until the guard
    /// is dropped.
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let logs = LogCapture::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
