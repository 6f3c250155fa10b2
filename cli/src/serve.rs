//! `wxpush serve`: every route in one process over the Lambdas' own handlers, with an
//! embedded store, a timer in place of the EventBridge schedule, and optionally the WeChat
//! emulator under `/sandbox`.

use crate::sandbox::{CallbackKeys, EmulatedApp, Emulator, random_alnum};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use redb::Database;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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
use wxpush_shared::forward::{EventSink, Forwarder, WebhookSink};
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
    /// `--forward URL`: the webhook recorded callback events are forwarded to.
    pub forward: Option<String>,
    /// How often the outbox sweep runs (the EventBridge schedule's stand-in).
    pub sweep_every: Duration,
}

/// How long one local job step may run before it checkpoints and queues its continuation
/// (a Lambda gets up to 15 minutes; the local worker takes turns between runs sooner).
pub const LOCAL_JOB_BUDGET: Duration = Duration::from_secs(120);
/// How long after a new follower's event its unionid look-up runs locally: the event is
/// recorded in this process right after the job is queued.
pub const LOCAL_COMPLETION_DELAY: Duration = Duration::from_secs(1);
/// Jobs the local worker runs at once (several batch chunks share the app's pace).
pub const LOCAL_WORKER_PARALLEL: usize = 4;

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
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
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
    // SQS's stand-in: an in-process queue and one worker task.
    let (queue, jobs) = LocalJobQueue::new();
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
    if let Some(url) = &cfg.forward {
        let sink: Arc<dyn EventSink> = Arc::new(WebhookSink::new(url.clone())?);
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
        LOCAL_JOB_BUDGET,
        LOCAL_WORKER_PARALLEL,
    ));
    let state = AppState {
        send: Arc::new(send.with_batches(batches)),
        callback: Arc::new(
            CallbackService::new(secrets, state_store, queue.clone())
                .with_forwarding(cfg.forward.is_some())
                .with_completion_delay(LOCAL_COMPLETION_DELAY),
        ),
        api_key: Arc::new(cfg.api_key),
    };

    let mut router = Router::new()
        .route("/v1/{*rest}", axum::routing::any(private_api))
        .route("/wechat/{*rest}", axum::routing::any(wechat_callback))
        .with_state(state);
    if let Some(emu) = &emulator {
        router = router.nest("/sandbox", emu.nested_router());
    }
    let router = router.fallback(not_found);

    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            warn!(error = %e, "local server stopped");
        }
    });
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
    let mut tasks = vec![server, timer, worker];
    if cfg.forward.is_some() {
        // The outbox sweep's schedule.
        let every = cfg.sweep_every;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = queue.enqueue(&Job::SweepOutbox).await {
                    warn!(error = %e, "could not queue the outbox sweep");
                }
            }
        }));
    }
    info!(%addr, sandbox = emulator.is_some(), forwarding = cfg.forward.is_some(), "wxpush local server listening");
    Ok(RunningServer {
        addr,
        emulator,
        tasks,
    })
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

/// `/wechat/...`: public, as on API Gateway; the callback Lambda's own handler.
async fn wechat_callback(State(state): State<AppState>, req: Request) -> Response {
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
