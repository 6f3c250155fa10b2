//! The emulator's world: apps, tokens, users, grants, login codes, delivered messages, and
//! WeChat's rules over them (docs/wechat.md). Pure logic over plain data, driven by the emulator's
//! WeChat paths and controls; one file per topic.

mod blocked;
mod faults;
mod inbox;
mod login;
mod messages;
mod phones;
mod quotas;
mod templates;
mod tokens;
mod users;
mod windows;

pub use faults::{Fault, FaultKind};
pub use phones::PhoneQuery;
pub use templates::Template;
pub use users::{FOLLOWERS_PER_PAGE, User};
pub use windows::Interaction;

use super::push::{CallbackKeys, Push};
use login::LoginCode;
use rand::RngExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tokens::{Family, IssuedToken};
use users::AppUsers;
use wxpush_shared::AppKind;

/// A WeChat error answer: `(errcode, errmsg)`.
pub type WxErr = (i64, String);

pub fn wx_err(code: i64, msg: &str) -> WxErr {
    (code, msg.to_string())
}

#[derive(Clone)]
pub struct EmulatedApp {
    pub appid: String,
    pub secret: String,
    pub kind: AppKind,
    /// The app's callback Token and key, when the emulator pushes events back to it.
    pub callback: Option<CallbackKeys>,
}

impl std::fmt::Debug for EmulatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedApp")
            .field("appid", &self.appid)
            .field("secret", &"***")
            .field("kind", &self.kind)
            .field("callback", &self.callback.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Default)]
pub struct World {
    /// Templates per app, in the order they were added.
    pub templates: HashMap<String, Vec<Template>>,
    pub apps: BTreeMap<String, EmulatedApp>,
    tokens: HashMap<String, IssuedToken>,
    current: HashMap<(String, Family), String>,
    force_log: HashMap<String, Vec<i64>>,
    users: HashMap<String, AppUsers>,
    grants: HashMap<(String, String, String), u32>,
    login_codes: HashMap<String, LoginCode>,
    /// Every session_key issued, so tests can prove wxpush never shows or keeps one.
    pub session_keys: Vec<Value>,
    pub faults: Vec<Fault>,
    pub messages: Vec<Value>,
    /// Events to push back to the apps' callbacks, taken after each WeChat call.
    pub pending_pushes: Vec<Push>,
    /// What became of each push (`GET /sandbox/pushes`).
    pub pushes: Vec<Value>,
    pub stats: BTreeMap<String, u64>,
    daily_used: HashMap<(String, String), (i64, u64)>,
    minute_used: HashMap<(String, String), (i64, u64)>,
    pub daily_limits: HashMap<String, u64>,
    /// (appid, openid, client_msg_id) → (msgid, when first sent), for WeChat's 10-minute
    /// dedupe window.
    client_msg_ids: HashMap<(String, String, String), (i64, i64)>,
    /// (appid, template id) of the templates WeChat intercepts, and what it intercepted.
    blocked_templates: std::collections::HashSet<(String, String)>,
    intercepted: Vec<blocked::Intercepted>,
    /// (appid, openid) → the customer-service allowances the user's interactions opened.
    windows: HashMap<(String, String), Vec<windows::Allowance>>,
    next_msgid: i64,
    pub token_ttl: i64,
    /// Followers per `user/get` page: WeChat's 10 000, smaller only by the `/sandbox/paging`
    /// test control (multi-page syncs without tens of thousands of users).
    pub page_size: usize,
}

/// `len` random characters of [A-Za-z0-9] (tokens, codes, EncodingAESKeys).
pub fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl World {
    pub fn new(apps: Vec<EmulatedApp>, token_ttl: i64) -> World {
        World {
            apps: apps.into_iter().map(|a| (a.appid.clone(), a)).collect(),
            next_msgid: 3_000_000_000,
            token_ttl,
            page_size: FOLLOWERS_PER_PAGE,
            ..World::default()
        }
    }

    /// Every secret this emulator knows or handed out: AppSecrets, access tokens, session
    /// keys. Tests use it to prove none of them reaches a log line.
    pub fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.apps.values().map(|a| a.secret.clone()).collect();
        all.extend(self.tokens.keys().cloned());
        all.extend(
            self.session_keys
                .iter()
                .filter_map(|k| k["session_key"].as_str().map(str::to_string)),
        );
        all
    }

    /// Everything but the apps and the token lifetime back to empty.
    pub fn reset(&mut self) {
        let apps = std::mem::take(&mut self.apps);
        *self = World::new(apps.into_values().collect(), self.token_ttl);
    }

    pub fn record_call(&mut self, path: &str) {
        *self.stats.entry(path.to_string()).or_default() += 1;
    }
}
