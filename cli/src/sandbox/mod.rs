//! The WeChat emulator: a stand-in for `api.weixin.qq.com` that follows docs/wechat.md, plus the
//! `/sandbox/...` controls docs/local.md names (WeChat sandbox). A test instrument for wxpush's
//! tests and the local server's `--sandbox` mode; never used in production.
//!
//! Layout: [`Emulator::standalone_router`] serves WeChat's paths at the root and the controls
//! under `/sandbox` (`wxpush sandbox --port N`; WeChat base `http://127.0.0.1:N`).
//! [`Emulator::nested_router`] serves both under one prefix, for `wxpush serve --sandbox`
//! (WeChat base `http://127.0.0.1:3000/sandbox`, controls at `/sandbox/users`, ...).
//!
//! Files: `wechat/` holds WeChat's paths (one file per family), `controls/` the `/sandbox`
//! controls, `world/` the state they act on and WeChat's rules over it (one file per topic),
//! `push.rs` and `push_queue.rs` the events pushed back to the apps' callbacks.

mod callback_ips;
mod controls;
mod push;
mod push_queue;
mod wechat;
mod world;

pub use callback_ips::DEFAULT_CALLBACK_IPS;
pub(crate) use controls::{host_is_local_or_ip, is_loopback};
pub use push::CallbackKeys;
pub use world::{EmulatedApp, Template, random_alnum};

use axum::Router;
use axum::extract::Query;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use world::World;
use wxpush_shared::clock::now_unix;

/// The emulator's shared state. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
    /// Seconds added to the wall clock (`POST /sandbox/clock`), to expire tokens in tests.
    clock_offset: AtomicI64,
    /// Where events are pushed: `{base}/{appid}` (wxpush's `/wechat`), when set.
    callback_base: Mutex<Option<String>>,
    /// The client of those pushes, built on the first one.
    http: std::sync::OnceLock<reqwest::Client>,
    /// The one task that sends pushes, in the order they were made (as WeChat's would
    /// arrive: a grant before the message that uses it).
    pusher: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<push_queue::Outgoing>>,
    /// What `getcallbackip` lists (`POST /sandbox/callback-ips`).
    callback_ips: Mutex<Vec<String>>,
}

type Query_ = Query<HashMap<String, String>>;

impl Emulator {
    /// An emulator that knows `apps` (their secrets work against it); tokens live `token_ttl` s.
    pub fn new(apps: Vec<EmulatedApp>, token_ttl: i64) -> Emulator {
        Emulator {
            inner: Arc::new(Inner {
                world: Mutex::new(World::new(apps, token_ttl)),
                clock_offset: AtomicI64::new(0),
                callback_base: Mutex::new(None),
                http: std::sync::OnceLock::new(),
                pusher: std::sync::OnceLock::new(),
                callback_ips: Mutex::new(callback_ips::default_list()),
            }),
        }
    }

    /// Pushes events to `{base}/{appid}` from now on (e.g. `http://127.0.0.1:3000/wechat`).
    pub fn set_callback_base(&self, base: Option<String>) {
        *self
            .inner
            .callback_base
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = base;
    }

    /// What `getcallbackip` lists now.
    pub fn callback_ips(&self) -> Vec<String> {
        self.inner
            .callback_ips
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces what `getcallbackip` lists.
    pub fn set_callback_ips(&self, list: Vec<String>) {
        *self
            .inner
            .callback_ips
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = list;
    }

    pub fn now(&self) -> i64 {
        now_unix() + self.inner.clock_offset.load(Ordering::SeqCst)
    }

    /// Every AppSecret, access token and session key this emulator knows or issued.
    pub fn secrets(&self) -> Vec<String> {
        self.world().secrets()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls per WeChat path so far (what `GET /sandbox/stats` shows).
    pub fn calls(&self, path: &str) -> u64 {
        self.world().stats.get(path).copied().unwrap_or(0)
    }

    pub fn apps(&self) -> Vec<EmulatedApp> {
        self.world().apps.values().cloned().collect()
    }

    /// WeChat's paths at the root, controls under `/sandbox`.
    pub fn standalone_router(&self) -> Router {
        Router::new()
            .merge(self.wechat_routes())
            .nest("/sandbox", self.control_routes())
    }

    /// WeChat's paths and the controls side by side, to be nested under `/sandbox`.
    pub fn nested_router(&self) -> Router {
        self.wechat_routes().merge(self.control_routes())
    }
}
