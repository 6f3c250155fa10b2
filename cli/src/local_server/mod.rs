//! `wxpush serve`: every route in one process over the Lambdas' own handlers, with an
//! embedded store, a timer in place of the EventBridge schedule, and optionally the WeChat
//! emulator under `/sandbox`.

mod config;
mod demo_apps;
mod emulator;
mod routes;
mod schedule;
mod services;

pub use config::{
    DataLocation, LOCAL_COMPLETION_DELAY, LOCAL_JOB_BUDGET, LOCAL_WORKER_PARALLEL, ServeConfig,
    WorkerConfig, test_timings,
};
pub use demo_apps::demo_apps;
pub use emulator::{callback_keys, emulated_apps};

use crate::callback_guard::CallbackGuard;
use crate::sandbox::Emulator;
use axum::Router;
use routes::AppState;
use services::Services;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wxpush_shared::jobs::run_local_worker;
use wxpush_shared::secrets::FileSecretStore;

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
    let mut wechat = cfg.wechat.clone();
    let emulator = cfg
        .sandbox
        .then(|| emulator::sandbox_at(addr, &file_store, &mut wechat));
    let services = Services::build(&cfg, file_store, wechat)?;
    let worker = tokio::spawn(run_local_worker(
        services.runner,
        services.jobs,
        worker.budget,
        worker.parallel,
    ));
    let guard = Arc::new(CallbackGuard::new(&cfg.callback_guard));
    let state = AppState {
        send: Arc::new(services.send),
        callback: Arc::new(services.callback),
        api_key: Arc::new(cfg.api_key.clone()),
        guard: guard.clone(),
    };
    let router = routes::router(state, emulator.as_ref());
    let mut tasks = vec![spawn_server(listener, router)];
    if cfg.callback_guard.allow_wechat {
        let tokens = services.tokens.clone();
        tasks.push(tokio::spawn(schedule::keep_wechat_list(guard, tokens)));
    }
    tasks.extend([
        schedule::spawn_token_refresh(services.tokens, cfg.refresh_every, cfg.refresh_window),
        worker,
        schedule::spawn_sweep(services.queue, cfg.sweep_every),
    ]);
    info!(%addr, sandbox = emulator.is_some(), forwarding = cfg.forward.is_some(), "wxpush local server listening");
    Ok(RunningServer {
        addr,
        emulator,
        tasks,
    })
}

/// Serves `router` on `listener` until the task is aborted.
fn spawn_server(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The peer's address reaches the handlers: the callback guard keys on it.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            warn!(error = %e, "local server stopped");
        }
    })
}
