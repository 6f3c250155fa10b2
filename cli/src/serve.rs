//! `wxpush serve`: every route in one process over the Lambdas' own handlers, with an
//! embedded store, a timer in place of the EventBridge schedule, and optionally the WeChat
//! emulator under `/sandbox`.

use crate::callback_guard::{
    CallbackGuard, CallbackGuardConfig, Refusal, WECHAT_LIST_EVERY, WECHAT_LIST_RETRY,
};
use crate::sandbox::{CallbackKeys, EmulatedApp, Emulator, random_alnum};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use redb::Database;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wxpush_send::{LOCAL_CALLER, LocalPrincipal, MAX_BODY_BYTES, SendService};
use wxpush_shared::ApiError;
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::callback::service::{CallbackService, MAX_CALLBACK_BODY};
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::forward::{EventSink, Forwarder, WebhookSink, WebhookTarget};
use wxpush_shared::http::error_response;
use wxpush_shared::jobs::{JobRunner, run_local_worker};
use wxpush_shared::queue::LocalJobQueue;
use wxpush_shared::queue::{Job, JobQueue};
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy, TokenStore};
use wxpush_shared::wechat::{HttpWeChatClient, WeChatApi, WeChatClientConfig};

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

/// A running local server; dropping it stops it.
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    pub emulator: Option<Emulator>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub async fn wait(mut self) {
        if let Some(server) = self.tasks.first_mut() {
            let _ = server.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone)]
struct AppState {
    send: Arc<SendService>,
    callback: Arc<CallbackService>,
    api_key: Arc<String>,
    guard: Arc<CallbackGuard>,
}

/// The demo apps of `--sandbox` without `--apps`: one official account and one mini program
/// sharing a unionid space, with fresh secrets each start.
pub fn demo_apps() -> AppsFile {
    let secret = || format!("{:032x}", rand::random::<u128>());
    let aes_key = || random_alnum(43);
    AppsFile {
        apps: vec![
            AppEntry {
                appid: "wxd0000000000000a1".into(),
                kind: "official_account".into(),
                app_secret: secret(),
                callback_token: Some(format!("demo{:08x}", rand::random::<u32>())),
                encoding_aes_key: Some(aes_key()),
                ..AppEntry::default()
            },
            AppEntry {
                appid: "wxd0000000000000b2".into(),
                kind: "mini_program".into(),
                app_secret: secret(),
                callback_token: Some(format!("demo{:08x}", rand::random::<u32>())),
                encoding_aes_key: Some(aes_key()),
                linked_official_account: Some("wxd0000000000000a1".into()),
                ..AppEntry::default()
            },
        ],
    }
}

fn open_db(data: &DataLocation) -> Result<Arc<Database>, String> {
    let db = match data {
        DataLocation::Memory => {
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())
        }
        DataLocation::File(path) => {
            // Access tokens and decrypted user messages: the owner's only.
            crate::private_fs::prepare_private_file(path)?;
            Database::create(path)
        }
    };
    db.map(Arc::new)
        .map_err(|e| format!("cannot open the embedded database: {e}"))
}

/// What the emulator signs (and encrypts) its pushes to an app's callback with.
pub fn callback_keys(app: &wxpush_shared::AppConfig) -> Option<CallbackKeys> {
    app.callback_token.as_ref().map(|token| CallbackKeys {
        token: token.expose().to_string(),
        encoding_aes_key: app
            .encoding_aes_key
            .as_ref()
            .map(|k| k.expose().to_string()),
        encrypted: app.callback_mode.encrypted(),
    })
}

/// Binds and starts serving; returns once the port is open.
pub async fn start(cfg: ServeConfig) -> Result<RunningServer, String> {
    start_with(cfg, WorkerConfig::default()).await
}

/// [`start`] with the local worker's settings.
pub async fn start_with(cfg: ServeConfig, worker: WorkerConfig) -> Result<RunningServer, String> {
    let listener = TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let file_store = FileSecretStore::from_file(cfg.apps.clone()).map_err(|e| e.to_string())?;

    let mut wechat_cfg = cfg.wechat.clone();
    let emulator = cfg.sandbox.then(|| {
        let apps = file_store
            .apps()
            .map(|a| EmulatedApp {
                appid: a.appid.clone(),
                secret: a.app_secret.expose().to_string(),
                kind: a.kind,
                callback: callback_keys(a),
            })
            .collect();
        Emulator::new(apps, 7200)
    });
    if let Some(emu) = &emulator {
        wechat_cfg.api_base = format!("http://{addr}/sandbox");
        // The emulator pushes WeChat's events to this server's own callback route.
        emu.set_callback_base(Some(format!("http://{addr}/wechat")));
    }
    let secrets: Arc<dyn SecretStore> = Arc::new(file_store);
    let db = open_db(&cfg.data)?;
    // SQS's stand-in: a queue kept in the same file, so queued jobs, their delays and their
    // retries survive a crash or a restart; one worker task runs them.
    let (queue, jobs) = LocalJobQueue::open(db.clone()).map_err(|e| e.to_string())?;
    let store: Arc<dyn TokenStore> = Arc::new(EmbeddedTokenStore::new(db.clone()));
    let state_store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(db));
    let wechat_timeout = wechat_cfg.timeout;
    let wechat: Arc<dyn WeChatApi> = Arc::new(HttpWeChatClient::new(wechat_cfg));
    let tokens = Arc::new(TokenManager::new(
        store,
        secrets.clone(),
        wechat,
        TokenPolicy::for_wechat_timeout(wechat_timeout),
    ));
    let followers = Arc::new(FollowerSync::new(
        tokens.clone(),
        state_store.clone(),
        Arc::new(queue.clone()),
        cfg.sync.clone(),
    ));
    let queue: Arc<dyn JobQueue> = Arc::new(queue);
    let send = SendService::new(tokens.clone(), state_store.clone(), wechat_timeout)
        .with_followers(followers.clone());
    let batches = Arc::new(Batches::new(
        send.sender.clone(),
        state_store.clone(),
        queue.clone(),
        cfg.batches.clone(),
    ));
    let mut runner = JobRunner::new(
        followers,
        Arc::new(FollowerCompletion::new(tokens.clone(), state_store.clone())),
    )
    .with_batches(batches.clone());
    if let Some(target) = &cfg.forward {
        let sink: Arc<dyn EventSink> = Arc::new(WebhookSink::new(target.clone())?);
        // No dead-letter queue here: an event is retried until the webhook takes it.
        runner = runner.with_forwarder(Arc::new(
            Forwarder::new(state_store.clone(), queue.clone(), secrets.clone(), sink)
                .without_dead_letter(),
        ));
    }
    let runner = Arc::new(runner);
    let worker = tokio::spawn(run_local_worker(
        runner,
        jobs,
        worker.budget,
        worker.parallel,
    ));
    let state = AppState {
        send: Arc::new(send.with_batches(batches)),
        callback: Arc::new(
            CallbackService::new(secrets, state_store, queue.clone())
                .with_forwarding(cfg.forward.is_some())
                .with_completion_delay(LOCAL_COMPLETION_DELAY),
        ),
        api_key: Arc::new(cfg.api_key),
        guard: Arc::new(CallbackGuard::new(&cfg.callback_guard)),
    };
    let guard = state.guard.clone();

    let mut router = Router::new()
        .route("/v1/{*rest}", axum::routing::any(private_api))
        .route("/wechat/{*rest}", axum::routing::any(wechat_callback))
        .with_state(state);
    if let Some(emu) = &emulator {
        router = router.nest("/sandbox", emu.nested_router());
    }
    let router = router.fallback(not_found);

    let server = tokio::spawn(async move {
        // The peer's address reaches the handlers: the callback guard keys on it.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            warn!(error = %e, "local server stopped");
        }
    });
    let mut tasks = vec![server];
    if cfg.callback_guard.allow_wechat {
        tasks.push(tokio::spawn(keep_wechat_list(guard, tokens.clone())));
    }
    // The EventBridge schedule's stand-in.
    let (every, window) = (cfg.refresh_every, cfg.refresh_window);
    let timer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let report = wxpush_token_refresh::refresh_all(tokens.clone(), window).await;
            if !report.failed.is_empty() {
                warn!(failed = ?report.failed, "scheduled token refresh had failures");
            }
        }
    });
    // The scheduled sweep, forwarding or not (it also requeues follower look-ups and batch
    // chunks that lost their job).
    let every = cfg.sweep_every;
    let sweep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = queue.enqueue(&Job::SweepOutbox).await {
                warn!(error = %e, "could not queue the scheduled sweep");
            }
        }
    });
    tasks.extend([timer, worker, sweep]);
    info!(%addr, sandbox = emulator.is_some(), forwarding = cfg.forward.is_some(), "wxpush local server listening");
    Ok(RunningServer {
        addr,
        emulator,
        tasks,
    })
}

/// `--callback-allow-wechat`: WeChat's addresses from `getcallbackip` now, then every day
/// (a failed fetch is tried again after a minute; the last list stays in force meanwhile).
async fn keep_wechat_list(guard: Arc<CallbackGuard>, tokens: Arc<TokenManager>) {
    loop {
        let wait = match wxpush_shared::callback_ips::fetch(&tokens).await {
            Ok(nets) => {
                info!(
                    addresses = nets.len(),
                    "WeChat's callback addresses (getcallbackip) allowed on /wechat"
                );
                guard.set_wechat(nets);
                WECHAT_LIST_EVERY
            }
            Err(e) => {
                warn!(error = %e, "could not fetch WeChat's callback addresses; trying again in a minute");
                WECHAT_LIST_RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn not_found(req: Request) -> Response {
    refuse(ApiError::NotFound(req.uri().path().to_string()))
}

fn bearer_ok(req: &Request, key: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time, and the lengths compared in the same pass.
    !key.is_empty() && bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

/// `/v1/...`: the bearer key stands in for IAM, then the Lambda's own handler.
async fn private_api(State(state): State<AppState>, req: Request) -> Response {
    if !bearer_ok(&req, &state.api_key) {
        let mut resp = refuse(ApiError::Unauthorized);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    match into_lambda(req, MAX_BODY_BYTES).await {
        Ok(mut req) => {
            // The bearer key's holder is the principal (there is no IAM here).
            req.extensions_mut()
                .insert(LocalPrincipal(LOCAL_CALLER.to_string()));
            into_axum(wxpush_send::handle(&state.send, req).await)
        }
        Err(resp) => resp,
    }
}

/// `/wechat/...`: public, as on API Gateway; the callback Lambda's own handler, behind the
/// guard (allow-list 403, rate limits 429, as the deployed WAF and API Gateway answer).
async fn wechat_callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match state.guard.check(peer.ip(), Instant::now()) {
        Ok(()) => {}
        Err(Refusal::NotAllowed) => return StatusCode::FORBIDDEN.into_response(),
        Err(Refusal::TooMany) => return StatusCode::TOO_MANY_REQUESTS.into_response(),
    }
    match into_lambda(req, MAX_CALLBACK_BODY).await {
        Ok(req) => into_axum(wxpush_callback::handle(&state.callback, req).await),
        Err(resp) => resp,
    }
}

/// The request as the Lambda would get it, or 413 past `limit` bytes.
async fn into_lambda(req: Request, limit: usize) -> Result<lambda_http::Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| refuse(ApiError::PayloadTooLarge { limit }))?;
    Ok(lambda_http::Request::from_parts(
        parts,
        lambda_http::Body::from(bytes.to_vec()),
    ))
}

/// A refusal, through the shared error mapping.
fn refuse(err: ApiError) -> Response {
    error_response(&err).map(Body::from)
}

fn into_axum(resp: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = resp.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(t) => Body::from(t),
        lambda_http::Body::Binary(b) => Body::from(b),
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    Response::from_parts(parts, body)
}
