//! What `wxpush serve` runs with: the server's settings and the local worker's.

use crate::callback_guard::CallbackGuardConfig;
use std::path::PathBuf;
use std::time::Duration;
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::followers::SyncConfig;
use wxpush_shared::forward::WebhookTarget;
use wxpush_shared::secrets::AppsFile;
use wxpush_shared::wechat::WeChatClientConfig;

/// Where the embedded state lives.
#[derive(Clone, Debug)]
pub enum DataLocation {
    File(PathBuf),
    /// Gone when the process ends (the default with `--sandbox`, whose emulator starts empty).
    Memory,
}

pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub apps: AppsFile,
    pub sandbox: bool,
    pub data: DataLocation,
    pub api_key: String,
    /// `WECHAT_API_BASE` when not in sandbox mode.
    pub wechat: WeChatClientConfig,
    pub refresh_every: Duration,
    pub refresh_window: Duration,
    /// The follower sync's settings (checkpoints, concurrency, retries).
    pub sync: SyncConfig,
    /// The batches' settings (pace, concurrency, chunk size).
    pub batches: BatchConfig,
    /// `--forward URL`: the webhook recorded callback events are forwarded to, and the
    /// secret each delivery is signed with.
    pub forward: Option<WebhookTarget>,
    /// How often the scheduled sweep runs (the EventBridge schedule's stand-in), forwarding
    /// or not.
    pub sweep_every: Duration,
    /// The public `/wechat` route's rate limits and allow-list (all off by default).
    pub callback_guard: CallbackGuardConfig,
}

/// How long one local job step may run before it checkpoints and queues its continuation
/// (a Lambda gets up to 15 minutes; the local worker takes turns between runs sooner).
pub const LOCAL_JOB_BUDGET: Duration = Duration::from_secs(120);
/// How long after a new follower's event its unionid look-up runs locally: the event is
/// recorded in this process right after the job is queued.
pub const LOCAL_COMPLETION_DELAY: Duration = Duration::from_secs(1);
/// Jobs the local worker runs at once (several batch chunks share the app's pace).
pub const LOCAL_WORKER_PARALLEL: usize = 4;

/// The local worker's settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How long one job step may run ([`LOCAL_JOB_BUDGET`]).
    pub budget: Duration,
    /// Jobs run at once ([`LOCAL_WORKER_PARALLEL`]).
    pub parallel: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            budget: LOCAL_JOB_BUDGET,
            parallel: LOCAL_WORKER_PARALLEL,
        }
    }
}

/// `wxpush serve --test-timings` (hidden): chunks of 100, pauses of 3 s, retries after
/// 0.5 s and job steps of 10 s, so tests that kill and restart the server run in seconds.
pub fn test_timings(batches: &mut BatchConfig) -> WorkerConfig {
    batches.chunk_size = 100;
    batches.minute_pause = Duration::from_secs(3);
    batches.retry_backoff = Duration::from_millis(500);
    batches.reserve = Duration::from_secs(2);
    batches.flush_interval = Duration::from_millis(300);
    batches.check_interval = Duration::from_millis(300);
    WorkerConfig {
        budget: Duration::from_secs(10),
        parallel: LOCAL_WORKER_PARALLEL,
    }
}
