//! The WeChat emulator: a stand-in for `api.weixin.qq.com` that follows facts.md, plus the
//! `/sandbox/...` controls the contract names. A test instrument for wxpush's tests and the
//! local server's `--sandbox` mode; never used in production.
//!
//! Layout: [`Emulator::standalone_router`] serves WeChat's paths at the root and the controls
//! under `/sandbox` (`wxpush sandbox --port N`; WeChat base `http://127.0.0.1:N`).
//! [`Emulator::nested_router`] serves both under one prefix, for `wxpush serve --sandbox`
//! (WeChat base `http://127.0.0.1:3000/sandbox`, controls at `/sandbox/users`, ...).

mod callback_ips;
mod push;
mod rules;
mod state;

pub use callback_ips::DEFAULT_CALLBACK_IPS;
pub use push::CallbackKeys;
pub use state::{EmulatedApp, Template, random_alnum};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use state::{Fault, FaultKind, User, World, WxErr, wx_err};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    pusher: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    /// What `getcallbackip` lists (`POST /sandbox/callback-ips`).
    callback_ips: Mutex<Vec<String>>,
}

/// A push on its way: where, signed with what, and when it was made.
type Outgoing = (String, CallbackKeys, push::Push, i64);

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

    /// Sends the events the last call produced, in order, from the push task (WeChat pushes
    /// asynchronously, after it answered the call). Without a callback base or the app's
    /// callback keys, the push is listed as not sent.
    fn dispatch_pushes(&self) {
        let base = self
            .inner
            .callback_base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut world = self.world();
        let pending = std::mem::take(&mut world.pending_pushes);
        for p in pending {
            let keys = world.apps.get(&p.appid).and_then(|a| a.callback.clone());
            let (Some(base), Some(keys)) = (base.clone(), keys) else {
                let reason = if base.is_none() {
                    "no callback URL (wxpush sandbox --callback-base)"
                } else {
                    "the app has no callback_token"
                };
                world
                    .pushes
                    .push(json!({"appid": p.appid, "openid": p.openid,
                    "event": p.event, "status": "not_pushed", "reason": reason}));
                continue;
            };
            let _ = self.pusher().send((base, keys, p, self.now()));
        }
    }

    /// The sending end of the push task, started on first use. The task holds the emulator
    /// weakly and ends when the emulator is dropped.
    fn pusher(&self) -> &tokio::sync::mpsc::UnboundedSender<Outgoing> {
        self.inner.pusher.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
            let inner = Arc::downgrade(&self.inner);
            let http = self
                .inner
                .http
                .get_or_init(|| {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .unwrap_or_default()
                })
                .clone();
            tokio::spawn(async move {
                while let Some((base, keys, p, at)) = rx.recv().await {
                    let outcome = push::send(&http, &base, &keys, &p, at).await;
                    let Some(inner) = inner.upgrade() else {
                        break;
                    };
                    Emulator { inner }.world().pushes.push(outcome);
                }
            });
            tx
        })
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

    fn wechat_routes(&self) -> Router {
        Router::new()
            .route("/cgi-bin/token", get(classic_token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/message/template/send", post(template_send))
            .route("/cgi-bin/message/subscribe/send", post(subscribe_send))
            .route(
                "/cgi-bin/message/subscribe/bizsend",
                post(biz_subscribe_send),
            )
            .route("/cgi-bin/message/custom/send", post(custom_send))
            .route(
                "/cgi-bin/message/wxopen/template/uniform_send",
                post(uniform_send),
            )
            .route("/cgi-bin/user/get", get(user_get))
            .route("/cgi-bin/user/info", get(user_info))
            .route("/cgi-bin/user/info/batchget", post(user_info_batch))
            .route("/sns/jscode2session", get(code_to_session))
            .route("/cgi-bin/openapi/quota/get", post(quota_get))
            .route(
                "/cgi-bin/template/get_all_private_template",
                get(private_templates),
            )
            .route(
                "/cgi-bin/template/api_add_template",
                post(add_private_template),
            )
            .route(
                "/cgi-bin/template/del_private_template",
                post(delete_private_template),
            )
            .route(
                "/cgi-bin/getcallbackip",
                get(callback_ips::get_callback_ips),
            )
            .route("/wxaapi/newtmpl/gettemplate", get(subscribe_templates))
            .route("/wxaapi/newtmpl/addtemplate", post(add_subscribe_template))
            .route(
                "/wxaapi/newtmpl/deltemplate",
                post(delete_subscribe_template),
            )
            .with_state(self.clone())
    }

    fn control_routes(&self) -> Router {
        Router::new()
            .route("/users", post(add_users))
            .route("/users/{openid}/follow", post(follow))
            .route("/users/{openid}/unfollow", post(unfollow))
            .route("/pushes", get(list_pushes))
            .route("/grants", post(add_grant))
            .route("/login-codes", post(new_login_code))
            .route("/faults", post(add_fault).delete(clear_faults))
            .route("/tokens/invalidate", post(invalidate_tokens))
            .route("/messages", get(list_messages))
            .route("/stats", get(stats))
            .route("/session-keys", get(session_keys))
            .route("/reset", post(reset))
            .route("/clock", post(advance_clock))
            .route("/quotas", post(set_quota))
            .route("/paging", post(set_paging))
            .route("/templates", post(add_template))
            .route("/callback-ips", post(callback_ips::set_callback_ips))
            // Bulk user loads (tens of thousands of followers) exceed axum's 2 MB default.
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .layer(axum::middleware::from_fn(guard_controls))
            .with_state(self.clone())
    }

    /// One WeChat call: counted, subject to injected faults, answered as WeChat would.
    ///
    /// Faults: an `errcode` answers that error without acting; an `http_status` answers that
    /// status with an HTML body without acting, or after acting with `after_delivery` (a proxy
    /// that failed after WeChat did its work; `200` then is an unreadable success); a
    /// `delay_ms` is a slow WeChat that acts after the delay whether or not the caller still
    /// waits, or with `after_delivery` acts at once and answers late.
    async fn call(
        &self,
        path: &'static str,
        op: impl FnOnce(&mut World, i64) -> Result<Value, WxErr> + Send + 'static,
    ) -> Response {
        let fault = {
            let mut world = self.world();
            world.record_call(path);
            world.take_fault(path)
        };
        let html = |status: u16| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, "<html><body>injected fault</body></html>").into_response()
        };
        let result = match fault {
            None => self.act(op),
            Some((FaultKind::ErrCode(code), _)) => Err(wx_err(code, "injected fault")),
            Some((FaultKind::HttpStatus(status), false)) => return html(status),
            Some((FaultKind::HttpStatus(status), true)) => {
                let _ = self.act(op);
                return html(status);
            }
            Some((FaultKind::Delay(ms), true)) => {
                let result = self.act(op);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                result
            }
            Some((FaultKind::Delay(ms), false)) => {
                let emu = self.clone();
                let late = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    emu.act(op)
                });
                late.await
                    .unwrap_or_else(|_| Err(wx_err(-1, "system error")))
            }
        };
        match result {
            Ok(v) => Json(v).into_response(),
            Err((errcode, errmsg)) => {
                let rid: String = format!(
                    "{:08x}-{:08x}",
                    rand::random::<u32>(),
                    rand::random::<u32>()
                );
                Json(json!({"errcode": errcode, "errmsg": format!("{errmsg} rid: {rid}")}))
                    .into_response()
            }
        }
    }

    fn act(
        &self,
        op: impl FnOnce(&mut World, i64) -> Result<Value, WxErr>,
    ) -> Result<Value, WxErr> {
        let now = self.now();
        let result = op(&mut self.world(), now);
        self.dispatch_pushes();
        result
    }
}

fn parse_json(body: &Bytes) -> Result<Value, WxErr> {
    serde_json::from_slice(body).map_err(|_| wx_err(47001, "data format error"))
}

async fn classic_token(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/token", move |w, now| w.classic_token(&q, now))
        .await
}

async fn stable_token(State(emu): State<Emulator>, body: Bytes) -> Response {
    emu.call("/cgi-bin/stable_token", move |w, now| {
        w.stable_token(&parse_json(&body)?, now)
    })
    .await
}

async fn template_send(State(emu): State<Emulator>, Query(q): Query_, body: Bytes) -> Response {
    emu.call("/cgi-bin/message/template/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.template_send(&app, &parse_json(&body)?, now)
    })
    .await
}

async fn subscribe_send(State(emu): State<Emulator>, Query(q): Query_, body: Bytes) -> Response {
    emu.call("/cgi-bin/message/subscribe/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.subscribe_send(&app, &parse_json(&body)?, now)
    })
    .await
}

async fn biz_subscribe_send(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/message/subscribe/bizsend", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.biz_subscribe_send(&app, &parse_json(&body)?, now)
    })
    .await
}

async fn custom_send(State(emu): State<Emulator>, Query(q): Query_, body: Bytes) -> Response {
    emu.call("/cgi-bin/message/custom/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.custom_send(&app, &parse_json(&body)?, now)
    })
    .await
}

/// Withdrawn on 2023-09-20: every call answers 45109.
async fn uniform_send(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call(
        "/cgi-bin/message/wxopen/template/uniform_send",
        move |w, now| {
            w.check_token(q.get("access_token"), now)?;
            Err(wx_err(45109, "This API has been unsupported"))
        },
    )
    .await
}

async fn user_get(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/user/get", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_get(&app, q.get("next_openid").map(String::as_str), now)
    })
    .await
}

async fn user_info(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/user/info", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_info(&app, q.get("openid").map(String::as_str), now)
    })
    .await
}

async fn user_info_batch(State(emu): State<Emulator>, Query(q): Query_, body: Bytes) -> Response {
    emu.call("/cgi-bin/user/info/batchget", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_info_batch(&app, &parse_json(&body)?, now)
    })
    .await
}

async fn code_to_session(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/sns/jscode2session", move |w, now| {
        w.code_to_session(&q, now)
    })
    .await
}

async fn quota_get(State(emu): State<Emulator>, Query(q): Query_, body: Bytes) -> Response {
    emu.call("/cgi-bin/openapi/quota/get", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.quota_get(&app, &parse_json(&body)?, now)
    })
    .await
}

async fn private_templates(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call(
        "/cgi-bin/template/get_all_private_template",
        move |w, now| {
            let app = w.check_token(q.get("access_token"), now)?;
            w.private_templates(&app)
        },
    )
    .await
}

async fn add_private_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/template/api_add_template", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.add_private_template(&app, &parse_json(&body)?)
    })
    .await
}

async fn delete_private_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/template/del_private_template", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.delete_private_template(&app, &parse_json(&body)?)
    })
    .await
}

async fn subscribe_templates(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/wxaapi/newtmpl/gettemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.subscribe_templates(&app)
    })
    .await
}

async fn add_subscribe_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/wxaapi/newtmpl/addtemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.add_subscribe_template(&app, &parse_json(&body)?)
    })
    .await
}

async fn delete_subscribe_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/wxaapi/newtmpl/deltemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.delete_subscribe_template(&app, &parse_json(&body)?)
    })
    .await
}

// ---------------------------------------------------------------- controls

/// The controls change what "WeChat" does and list session keys, so only the operator's own
/// tools may call them: a `Host` that is an IP address or `localhost` (a web page that
/// rebinds its own DNS name to 127.0.0.1 sends its name), and a JSON body on every write (a
/// cross-site form post cannot send `application/json` without a preflight, which is never
/// answered).
async fn guard_controls(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !host_is_local_or_ip(req.headers().get(axum::http::header::HOST)) {
        return ControlError(
            StatusCode::FORBIDDEN,
            "the sandbox controls answer only requests to an IP address or localhost".into(),
        )
        .into_response();
    }
    let writes =
        req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let has_body = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0");
    if writes && !json && (has_body || req.method() == axum::http::Method::POST) {
        return ControlError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "sandbox controls take Content-Type: application/json".into(),
        )
        .into_response();
    }
    next.run(req).await
}

fn host_is_local_or_ip(host: Option<&axum::http::HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // Strip the port: `[::1]:3000`, `127.0.0.1:3000`, `localhost:3000`.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// A refused control call; answers in the contract's error shape.
struct ControlError(StatusCode, String);

impl ControlError {
    fn bad_request(message: impl Into<String>) -> ControlError {
        ControlError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let code = match self.0 {
            StatusCode::NOT_FOUND => "unknown_app",
            StatusCode::FORBIDDEN => "forbidden_host",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_request",
        };
        (
            self.0,
            Json(json!({"error": {"code": code, "message": self.1}})),
        )
            .into_response()
    }
}

type ControlResult = Result<Json<Value>, ControlError>;

fn parse_control<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid body: {e}")))
}

fn known_app(world: &World, appid: &str) -> Result<(), ControlError> {
    if world.apps.contains_key(appid) {
        Ok(())
    } else {
        Err(ControlError(
            StatusCode::NOT_FOUND,
            format!("the sandbox does not know app {appid}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    appid: String,
    openid: String,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default = "yes")]
    subscribed: bool,
    /// Unix seconds of the user's last interaction (opens the 48-hour customer-service window).
    #[serde(default)]
    last_interaction: Option<i64>,
    /// The user blocked template messages: they are delivered as `failed:user block`.
    #[serde(default)]
    blocks_templates: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// `POST /sandbox/users`: one user object, or an array of them. All are checked before any is added.
async fn add_users(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let users = match parse_control::<OneOrMany<NewUser>>(&body)? {
        OneOrMany::One(u) => vec![u],
        OneOrMany::Many(v) => v,
    };
    let now = emu.now();
    let mut world = emu.world();
    for u in &users {
        known_app(&world, &u.appid)?;
        if u.openid.is_empty() {
            return Err(ControlError::bad_request("openid must not be empty"));
        }
    }
    let added = users.len();
    for u in users {
        let user = User {
            unionid: u.unionid,
            subscribed: u.subscribed,
            subscribe_time: now,
            last_interaction: u.last_interaction,
            blocks_templates: u.blocks_templates,
        };
        world.add_user(&u.appid, &u.openid, user);
    }
    Ok(Json(json!({"added": added})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Following {
    appid: String,
    /// For a user new to the sandbox (follow only).
    #[serde(default)]
    unionid: Option<String>,
}

/// `POST /sandbox/users/{openid}/follow` and `/unfollow`: the user follows or unfollows the
/// official account; WeChat pushes `subscribe` / `unsubscribe` to its callback.
async fn set_following(emu: Emulator, openid: String, body: Bytes, follow: bool) -> ControlResult {
    let f: Following = parse_control(&body)?;
    let now = emu.now();
    {
        let mut world = emu.world();
        known_app(&world, &f.appid)?;
        if openid.is_empty() || openid.len() > 64 {
            return Err(ControlError::bad_request("openid must be 1-64 characters"));
        }
        world
            .set_following(&f.appid, &openid, f.unionid, follow, now)
            .map_err(ControlError::bad_request)?;
    }
    emu.dispatch_pushes();
    Ok(Json(json!({"openid": openid, "subscribed": follow})))
}

async fn follow(
    State(emu): State<Emulator>,
    axum::extract::Path(openid): axum::extract::Path<String>,
    body: Bytes,
) -> ControlResult {
    set_following(emu, openid, body, true).await
}

async fn unfollow(
    State(emu): State<Emulator>,
    axum::extract::Path(openid): axum::extract::Path<String>,
    body: Bytes,
) -> ControlResult {
    set_following(emu, openid, body, false).await
}

/// `GET /sandbox/pushes[?appid=]`: every event pushed back (or not) and its outcome.
async fn list_pushes(State(emu): State<Emulator>, Query(q): Query_) -> Json<Value> {
    let world = emu.world();
    let pushes: Vec<&Value> = world
        .pushes
        .iter()
        .filter(|p| {
            q.get("appid")
                .is_none_or(|a| p.get("appid").and_then(Value::as_str) == Some(a))
        })
        .collect();
    Json(json!(pushes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    appid: String,
    openid: String,
    template_id: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// `POST /sandbox/grants`: the user accepts `count` subscribe messages of a template, and
/// WeChat pushes `subscribe_msg_popup_event` (one `accept` per acceptance) to the app.
async fn add_grant(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let g: NewGrant = parse_control(&body)?;
    if g.count == 0 || g.count > 100 {
        return Err(ControlError::bad_request("count must be 1-100"));
    }
    let now = emu.now();
    {
        let mut world = emu.world();
        known_app(&world, &g.appid)?;
        world.add_grant(&g.appid, &g.openid, &g.template_id, g.count);
        world.pending_pushes.push(push::Push::popup_accepted(
            &g.appid,
            &g.openid,
            &g.template_id,
            g.count,
            now,
        ));
    }
    emu.dispatch_pushes();
    Ok(Json(json!({"granted": g.count})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTemplate {
    appid: String,
    id: String,
    kind: String,
    title: String,
    content: String,
    #[serde(default)]
    example: String,
}

/// `POST /sandbox/templates`: a template the app has, as if added in WeChat's console.
async fn add_template(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let t: NewTemplate = parse_control(&body)?;
    if !matches!(
        t.kind.as_str(),
        "template" | "subscribe_once" | "subscribe_long_term"
    ) {
        return Err(ControlError::bad_request(
            "kind must be template, subscribe_once or subscribe_long_term",
        ));
    }
    if t.id.is_empty() || t.content.is_empty() {
        return Err(ControlError::bad_request(
            "id and content must not be empty",
        ));
    }
    let mut world = emu.world();
    known_app(&world, &t.appid)?;
    let app_kind = world.apps[&t.appid].kind;
    if t.kind == "template" && app_kind != wxpush_shared::AppKind::OfficialAccount {
        return Err(ControlError::bad_request(
            "template messages belong to official accounts",
        ));
    }
    world.add_template(
        &t.appid,
        Template {
            id: t.id.clone(),
            kind: t.kind,
            title: t.title,
            content: t.content,
            example: t.example,
        },
    );
    Ok(Json(json!({"id": t.id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCode {
    appid: String,
    openid: String,
}

async fn new_login_code(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let c: NewCode = parse_control(&body)?;
    let now = emu.now();
    let mut world = emu.world();
    known_app(&world, &c.appid)?;
    let code = world.new_login_code(&c.appid, &c.openid, now);
    Ok(Json(json!({"code": code})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    path: String,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    http_status: Option<u16>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    after_delivery: bool,
    #[serde(default = "one")]
    times: u32,
}

/// A WeChat path as the controls accept it: with or without the `/sandbox` prefix.
fn wechat_path(path: &str) -> &str {
    path.strip_prefix("/sandbox").unwrap_or(path)
}

async fn add_fault(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let f: NewFault = parse_control(&body)?;
    let kind = match (f.errcode, f.http_status, f.delay_ms) {
        (Some(c), None, None) => FaultKind::ErrCode(c),
        (None, Some(s), None) if (100..=599).contains(&s) => FaultKind::HttpStatus(s),
        (None, None, Some(ms)) if ms <= 60_000 => FaultKind::Delay(ms),
        _ => {
            return Err(ControlError::bad_request(
                "give exactly one of errcode, http_status (100-599) or delay_ms (<= 60000)",
            ));
        }
    };
    let path = wechat_path(&f.path).to_string();
    if !path.starts_with("/cgi-bin/") && !path.starts_with("/sns/") {
        return Err(ControlError::bad_request(
            "path must be a WeChat path such as /cgi-bin/message/template/send",
        ));
    }
    if f.after_delivery && matches!(kind, FaultKind::ErrCode(_)) {
        return Err(ControlError::bad_request(
            "after_delivery goes with http_status or delay_ms: an errcode means WeChat did nothing",
        ));
    }
    let times = f.times.max(1);
    emu.world().faults.push(Fault {
        path,
        kind,
        after_delivery: f.after_delivery,
        remaining: times,
    });
    Ok(Json(json!({"queued": times})))
}

/// `DELETE /sandbox/faults` (an extension): every pending fault is dropped.
async fn clear_faults(State(emu): State<Emulator>) -> ControlResult {
    let mut world = emu.world();
    let cleared: u64 = world.faults.iter().map(|f| f.remaining as u64).sum();
    world.faults.clear();
    Ok(Json(json!({"cleared": cleared})))
}

#[derive(Deserialize)]
struct AppOnly {
    appid: String,
}

async fn invalidate_tokens(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let a: AppOnly = parse_control(&body)?;
    let mut world = emu.world();
    known_app(&world, &a.appid)?;
    let n = world.invalidate_tokens(&a.appid);
    Ok(Json(json!({"invalidated": n})))
}

async fn list_messages(State(emu): State<Emulator>, Query(q): Query_) -> Json<Value> {
    let world = emu.world();
    let messages: Vec<&Value> = world
        .messages
        .iter()
        .filter(|m| {
            q.get("appid")
                .is_none_or(|a| m.get("appid").and_then(Value::as_str) == Some(a))
        })
        .collect();
    Json(json!(messages))
}

/// Extension: every session_key `jscode2session` issued (to check wxpush never exposes one).
async fn session_keys(State(emu): State<Emulator>) -> Json<Value> {
    Json(json!(emu.world().session_keys))
}

async fn stats(State(emu): State<Emulator>) -> Json<Value> {
    Json(json!(emu.world().stats))
}

async fn reset(State(emu): State<Emulator>) -> Json<Value> {
    emu.world().reset();
    emu.inner.clock_offset.store(0, Ordering::SeqCst);
    emu.set_callback_ips(callback_ips::default_list());
    Json(json!({"reset": true}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    advance_secs: i64,
}

/// Extension: moves the emulator's clock forward (token expiry, quota days, code expiry).
async fn advance_clock(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let c: Clock = parse_control(&body)?;
    if c.advance_secs < 0 {
        return Err(ControlError::bad_request(
            "advance_secs must not be negative",
        ));
    }
    let offset = emu
        .inner
        .clock_offset
        .fetch_add(c.advance_secs, Ordering::SeqCst)
        + c.advance_secs;
    Ok(Json(json!({"offset_secs": offset, "now": emu.now()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quota {
    path: String,
    daily_limit: u64,
}

/// Extension: sets a path's daily quota per app (to reach 45009 without 2 000 calls).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    page_size: usize,
}

/// `POST /sandbox/paging {"page_size": N}` (an extension for tests): `user/get` pages of N
/// followers (1-10 000) instead of WeChat's 10 000, so multi-page syncs need fewer users.
async fn set_paging(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let p: Paging = parse_control(&body)?;
    if !(1..=state::FOLLOWERS_PER_PAGE).contains(&p.page_size) {
        return Err(ControlError::bad_request("page_size must be 1-10000"));
    }
    emu.world().page_size = p.page_size;
    Ok(Json(json!({"page_size": p.page_size})))
}

async fn set_quota(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let q: Quota = parse_control(&body)?;
    emu.world()
        .daily_limits
        .insert(wechat_path(&q.path).to_string(), q.daily_limit);
    Ok(Json(json!({"daily_limit": q.daily_limit})))
}
