//! The emulator's world: apps, tokens, users, grants, login codes, delivered messages, and
//! WeChat's rules over them (facts.md). Pure logic over plain data, driven by `mod.rs`.

use super::push::{CallbackKeys, Push};
use super::rules::check_subscribe_value;
use rand::RngExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use wxpush_shared::AppKind;

/// A WeChat error answer: `(errcode, errmsg)`.
pub type WxErr = (i64, String);

pub fn wx_err(code: i64, msg: &str) -> WxErr {
    (code, msg.to_string())
}

pub const TOKEN_OVERLAP_SECS: i64 = 300;
pub const STABLE_ROTATE_WITHIN_SECS: i64 = 300;
pub const FORCE_REFRESH_MIN_GAP_SECS: i64 = 30;
pub const FORCE_REFRESH_PER_DAY: usize = 20;
pub const CUSTOM_WINDOW_SECS: i64 = 48 * 3600;
pub const CUSTOM_PER_INTERACTION: u32 = 5;
pub const LOGIN_CODE_TTL_SECS: i64 = 300;
/// How long WeChat remembers a template message's `client_msg_id` per openid.
pub const CLIENT_MSG_ID_WINDOW_SECS: i64 = 600;
pub const FOLLOWERS_PER_PAGE: usize = 10_000;
pub const BATCHGET_MAX: usize = 100;

/// Daily quota per app and path (facts.md §6); overridable with `POST /sandbox/quotas`.
pub fn default_daily_limit(path: &str) -> u64 {
    match path {
        "/cgi-bin/token" => 2_000,
        "/cgi-bin/stable_token" => 500_000,
        "/cgi-bin/message/template/send" => 100_000,
        "/cgi-bin/message/subscribe/send" => 10_000_000,
        "/cgi-bin/message/custom/send" => 500_000,
        "/cgi-bin/user/get" => 500,
        "/cgi-bin/user/info" | "/cgi-bin/user/info/batchget" => 5_000_000,
        // Not in facts.md §6: WeChat's figures for these are not documented there.
        _ => u64::MAX,
    }
}

/// Per-minute limits: stable_token 10 000/min per app; jscode2session 100/min per user.
pub fn minute_limit(path: &str) -> u64 {
    match path {
        "/cgi-bin/stable_token" => 10_000,
        "/sns/jscode2session" => 100,
        _ => u64::MAX,
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Classic,
    Stable,
}

#[derive(Clone, Debug)]
struct IssuedToken {
    appid: String,
    family: Family,
    expires_at: i64,
    revoked: bool,
}

#[derive(Clone, Debug)]
pub struct User {
    pub unionid: Option<String>,
    pub subscribed: bool,
    pub subscribe_time: i64,
    pub last_interaction: Option<i64>,
    /// The user blocked the account's template messages: they end `failed:user block`.
    pub blocks_templates: bool,
}

#[derive(Default)]
struct AppUsers {
    order: Vec<String>,
    by_openid: HashMap<String, User>,
}

struct LoginCode {
    appid: String,
    openid: String,
    issued_at: i64,
    used: bool,
}

#[derive(Clone, Debug)]
pub enum FaultKind {
    ErrCode(i64),
    HttpStatus(u16),
    Delay(u64),
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    pub kind: FaultKind,
    /// Act first, then answer with the fault (`http_status`, `delay_ms`).
    pub after_delivery: bool,
    pub remaining: u32,
}

/// A template an app has: an official account's template message (`kind` `template`) or a
/// subscribe template (`subscribe_once`, `subscribe_long_term`).
#[derive(Clone, Debug)]
pub struct Template {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub content: String,
    pub example: String,
}

impl Template {
    pub fn is_subscribe(&self) -> bool {
        self.kind != "template"
    }
    /// The keys of `content`: `{{thing1.DATA}}` → `thing1`.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(start) = rest.find("{{") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find("}}") else { break };
            if let Some(key) = rest[..end].strip_suffix(".DATA") {
                keys.push(key.to_string());
            }
            rest = &rest[end + 2..];
        }
        keys
    }
}

/// Private templates an official account may hold (facts.md §9; 45026 beyond).
pub const MAX_PRIVATE_TEMPLATES: usize = 25;

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
    custom_sent: HashMap<(String, String), (i64, u32)>,
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

    /// The next injected fault for `path` (faults on one path are used in the order they
    /// were added), used up by one, and whether it comes after delivery.
    pub fn take_fault(&mut self, path: &str) -> Option<(FaultKind, bool)> {
        let idx = self
            .faults
            .iter()
            .position(|f| f.path == path && f.remaining > 0)?;
        let fault = &mut self.faults[idx];
        fault.remaining -= 1;
        let taken = (fault.kind.clone(), fault.after_delivery);
        if fault.remaining == 0 {
            self.faults.remove(idx);
        }
        Some(taken)
    }

    fn charge_quota(&mut self, key: &str, path: &str, now: i64) -> Result<(), WxErr> {
        let day = now.div_euclid(86_400);
        let limit = self
            .daily_limits
            .get(path)
            .copied()
            .unwrap_or_else(|| default_daily_limit(path));
        let used = self
            .daily_used
            .entry((key.to_string(), path.to_string()))
            .or_insert((day, 0));
        if used.0 != day {
            *used = (day, 0);
        }
        if used.1 >= limit {
            return Err(wx_err(45009, "reach max api daily quota limit"));
        }
        let minute = now.div_euclid(60);
        let mlimit = minute_limit(path);
        let mused = self
            .minute_used
            .entry((key.to_string(), path.to_string()))
            .or_insert((minute, 0));
        if mused.0 != minute {
            *mused = (minute, 0);
        }
        if mused.1 >= mlimit {
            return Err(wx_err(
                45011,
                "api minute-quota reach limit  mustslower  retry next minute",
            ));
        }
        used.1 += 1;
        mused.1 += 1;
        Ok(())
    }

    fn check_credentials(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<&EmulatedApp, WxErr> {
        let appid = appid
            .filter(|a| !a.is_empty())
            .ok_or_else(|| wx_err(41002, "appid missing"))?;
        let app = self
            .apps
            .get(appid)
            .ok_or_else(|| wx_err(40013, "invalid appid"))?;
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| wx_err(41004, "appsecret missing"))?;
        if secret != app.secret {
            return Err(wx_err(40125, "invalid appsecret"));
        }
        Ok(app)
    }

    /// Issues a new token of `family`, leaving the previous one 5 minutes and killing older ones.
    fn rotate(&mut self, appid: &str, family: Family, now: i64) -> (String, i64) {
        let key = (appid.to_string(), family);
        let previous = self.current.get(&key).cloned();
        for (tok, info) in self.tokens.iter_mut() {
            if info.appid == appid && info.family == family {
                if Some(tok) == previous.as_ref() {
                    info.expires_at = info.expires_at.min(now + TOKEN_OVERLAP_SECS);
                } else {
                    info.revoked = true;
                }
            }
        }
        self.tokens
            .retain(|_, info| !(info.revoked && info.expires_at < now - 86_400));
        let token = format!("{}_{}", random_alnum(24), random_alnum(112));
        let expires_at = now + self.token_ttl;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                appid: appid.to_string(),
                family,
                expires_at,
                revoked: false,
            },
        );
        self.current.insert(key, token.clone());
        (token, self.token_ttl)
    }

    /// `GET /cgi-bin/token`: every call rotates.
    pub fn classic_token(&mut self, q: &HashMap<String, String>, now: i64) -> Result<Value, WxErr> {
        if q.get("grant_type").map(String::as_str) != Some("client_credential") {
            return Err(wx_err(40002, "invalid grant_type"));
        }
        let appid = self
            .check_credentials(
                q.get("appid").map(String::as_str),
                q.get("secret").map(String::as_str),
            )?
            .appid
            .clone();
        self.charge_quota(&appid, "/cgi-bin/token", now)?;
        let (token, expires_in) = self.rotate(&appid, Family::Classic, now);
        Ok(json!({"access_token": token, "expires_in": expires_in}))
    }

    /// `POST /cgi-bin/stable_token`: same token while it has more than 5 minutes left;
    /// `force_refresh` rotates (20 a day, 30 s apart).
    pub fn stable_token(&mut self, body: &Value, now: i64) -> Result<Value, WxErr> {
        if body.get("grant_type").and_then(Value::as_str) != Some("client_credential") {
            return Err(wx_err(40002, "invalid grant_type"));
        }
        let appid = self
            .check_credentials(
                body.get("appid").and_then(Value::as_str),
                body.get("secret").and_then(Value::as_str),
            )?
            .appid
            .clone();
        self.charge_quota(&appid, "/cgi-bin/stable_token", now)?;
        let force = body
            .get("force_refresh")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let live = self
            .current
            .get(&(appid.clone(), Family::Stable))
            .and_then(|t| self.tokens.get(t).map(|i| (t.clone(), i.clone())))
            .filter(|(_, i)| !i.revoked && i.expires_at > now);
        if force {
            let log = self.force_log.entry(appid.clone()).or_default();
            log.retain(|t| *t > now - 86_400);
            let too_soon = log
                .last()
                .is_some_and(|t| now - t < FORCE_REFRESH_MIN_GAP_SECS);
            if log.len() >= FORCE_REFRESH_PER_DAY {
                return Err(wx_err(
                    45009,
                    "reach max api daily quota limit (force_refresh)",
                ));
            }
            if !too_soon || live.is_none() {
                log.push(now);
                let (token, expires_in) = self.rotate(&appid, Family::Stable, now);
                return Ok(json!({"access_token": token, "expires_in": expires_in}));
            }
        }
        match live {
            Some((token, info)) if force || info.expires_at - now > STABLE_ROTATE_WITHIN_SECS => {
                Ok(json!({"access_token": token, "expires_in": info.expires_at - now}))
            }
            _ => {
                let (token, expires_in) = self.rotate(&appid, Family::Stable, now);
                Ok(json!({"access_token": token, "expires_in": expires_in}))
            }
        }
    }

    /// `POST /sandbox/tokens/invalidate`: every token of the app now answers 40001.
    pub fn invalidate_tokens(&mut self, appid: &str) -> usize {
        let mut n = 0;
        for info in self
            .tokens
            .values_mut()
            .filter(|i| i.appid == appid && !i.revoked)
        {
            info.revoked = true;
            n += 1;
        }
        n
    }

    /// The app an `access_token` belongs to, or WeChat's error for it.
    pub fn check_token(&self, token: Option<&String>, now: i64) -> Result<EmulatedApp, WxErr> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| wx_err(41001, "access_token missing"))?;
        let info = self.tokens.get(token).ok_or_else(|| {
            wx_err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )
        })?;
        if info.revoked {
            return Err(wx_err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            ));
        }
        if info.expires_at <= now {
            return Err(wx_err(42001, "access_token expired"));
        }
        self.apps
            .get(&info.appid)
            .cloned()
            .ok_or_else(|| wx_err(40001, "invalid credential"))
    }

    pub fn add_user(&mut self, appid: &str, openid: &str, user: User) {
        let users = self.users.entry(appid.to_string()).or_default();
        if users.by_openid.insert(openid.to_string(), user).is_none() {
            users.order.push(openid.to_string());
        }
    }

    fn user(&self, appid: &str, openid: &str) -> Option<&User> {
        self.users.get(appid).and_then(|u| u.by_openid.get(openid))
    }

    /// A user follows (a new user is added, with `unionid`) or unfollows the official
    /// account, and WeChat pushes `subscribe` / `unsubscribe`.
    pub fn set_following(
        &mut self,
        appid: &str,
        openid: &str,
        unionid: Option<String>,
        follow: bool,
        now: i64,
    ) -> Result<(), String> {
        if self.apps.get(appid).map(|a| a.kind) != Some(AppKind::OfficialAccount) {
            return Err(format!(
                "{appid} is not an official account the sandbox knows"
            ));
        }
        let users = self.users.entry(appid.to_string()).or_default();
        match users.by_openid.get_mut(openid) {
            Some(user) => {
                user.subscribed = follow;
                if follow {
                    user.subscribe_time = now;
                    user.last_interaction = Some(now);
                }
                if user.unionid.is_none() {
                    user.unionid = unionid;
                }
            }
            None if follow => self.add_user(
                appid,
                openid,
                User {
                    unionid,
                    subscribed: true,
                    subscribe_time: now,
                    last_interaction: Some(now),
                    blocks_templates: false,
                },
            ),
            None => return Err(format!("{openid} is not a user of {appid}")),
        }
        self.pending_pushes
            .push(Push::follow(appid, openid, follow, now));
        Ok(())
    }

    pub fn add_grant(&mut self, appid: &str, openid: &str, template_id: &str, count: u32) {
        *self
            .grants
            .entry((appid.into(), openid.into(), template_id.into()))
            .or_default() += count;
    }

    pub fn new_login_code(&mut self, appid: &str, openid: &str, now: i64) -> String {
        let code = random_alnum(32);
        self.login_codes.insert(
            code.clone(),
            LoginCode {
                appid: appid.into(),
                openid: openid.into(),
                issued_at: now,
                used: false,
            },
        );
        code
    }

    fn deliver(&mut self, appid: &str, path: &str, touser: &str, body: &Value, now: i64) -> i64 {
        self.next_msgid += 1;
        let msgid = self.next_msgid;
        self.messages.push(json!({
            "appid": appid, "path": path, "touser": touser, "msgid": msgid, "body": body, "at": now,
        }));
        msgid
    }

    pub fn template_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/template/send";
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, PATH, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        let user = self
            .user(&app.appid, touser)
            .ok_or_else(|| wx_err(40003, "invalid openid"))?;
        if !user.subscribed {
            return Err(wx_err(43004, "require subscribe"));
        }
        let tid = template_id(body)?;
        self.check_registered(&app.appid, &tid, false)?;
        check_data(body, false)?;
        if let Some(url) = body.get("url")
            && !url.is_string()
        {
            return Err(wx_err(47001, "data format error: url"));
        }
        if let Some(mp) = body.get("miniprogram")
            && mp
                .get("appid")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(wx_err(40013, "invalid appid: miniprogram.appid"));
        }
        let client_msg_id = body
            .get("client_msg_id")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty());
        let dedupe_key =
            client_msg_id.map(|cid| (app.appid.clone(), touser.to_string(), cid.to_string()));
        if let Some(key) = &dedupe_key {
            // WeChat sends one message per (openid, client_msg_id) for 10 minutes, then
            // forgets the id: a resend after that is delivered again (docs/wechat.md).
            if let Some((msgid, at)) = self.client_msg_ids.get(key)
                && now - at < CLIENT_MSG_ID_WINDOW_SECS
            {
                return Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}));
            }
        }
        let blocked = user.blocks_templates;
        let msgid = self.deliver(&app.appid, PATH, touser, body, now);
        let status = if blocked {
            "failed:user block"
        } else {
            "success"
        };
        self.pending_pushes.push(Push::template_finished(
            &app.appid, touser, msgid, status, now,
        ));
        if let Some(key) = dedupe_key {
            self.client_msg_ids.insert(key, (msgid, now));
        }
        Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
    }

    pub fn subscribe_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/subscribe/send";
        let (touser, template) =
            self.subscribe_checks(app, AppKind::MiniProgram, PATH, body, now)?;
        if let Some(state) = body.get("miniprogram_state")
            && !matches!(state.as_str(), Some("developer" | "trial" | "formal"))
        {
            return Err(wx_err(47003, "argument invalid! miniprogram_state"));
        }
        if let Some(lang) = body.get("lang")
            && !matches!(lang.as_str(), Some("zh_CN" | "en_US" | "zh_HK" | "zh_TW"))
        {
            return Err(wx_err(47003, "argument invalid! lang"));
        }
        self.use_grant_and_deliver(app, PATH, &touser, &template, body, now)
    }

    /// `subscribe/bizsend`: an official account's subscribe notification (facts.md §9):
    /// to one of its users, a template it has (once it has any), data by the subscribe value
    /// rules, and a one-time grant used up (43101 without one), like a mini program's.
    pub fn biz_subscribe_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/subscribe/bizsend";
        let (touser, template) =
            self.subscribe_checks(app, AppKind::OfficialAccount, PATH, body, now)?;
        if let Some(page) = body.get("page")
            && !page
                .as_str()
                .is_some_and(|p| p.starts_with("http://") || p.starts_with("https://"))
        {
            return Err(wx_err(47003, "argument invalid! page must be a url"));
        }
        if let Some(mp) = body.get("miniprogram")
            && mp
                .get("appid")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(wx_err(40013, "invalid appid: miniprogram.appid"));
        }
        self.use_grant_and_deliver(app, PATH, &touser, &template, body, now)
    }

    /// What every subscribe message needs (mini program or official account): the right kind
    /// of app, quota, a known user, a template the app has (once it has any; 47003 names a
    /// missing key) and data by the type table. Answers (touser, template_id).
    fn subscribe_checks(
        &mut self,
        app: &EmulatedApp,
        kind: AppKind,
        path: &str,
        body: &Value,
        now: i64,
    ) -> Result<(String, String), WxErr> {
        if app.kind != kind {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, path, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        if self.user(&app.appid, touser).is_none() {
            return Err(wx_err(40003, "invalid openid"));
        }
        let template = template_id(body)?;
        if let Some(t) = self.check_registered(&app.appid, &template, true)? {
            // Every key of the template needs a value (facts.md §4.2: 47003 names the field).
            let data = body.get("data").and_then(Value::as_object);
            if let Some(missing) = t
                .keys()
                .into_iter()
                .find(|k| data.is_none_or(|d| !d.contains_key(k)))
            {
                return Err(wx_err(
                    47003,
                    &format!("argument invalid! data.{missing}.value is empty"),
                ));
            }
        }
        check_data(body, true)?;
        Ok((touser.to_string(), template))
    }

    /// Uses one of the user's grants of the template (43101 without one), delivers the
    /// message and queues WeChat's `subscribe_msg_sent_event`.
    fn use_grant_and_deliver(
        &mut self,
        app: &EmulatedApp,
        path: &str,
        touser: &str,
        template: &str,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        let key = (app.appid.clone(), touser.to_string(), template.to_string());
        match self.grants.get_mut(&key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => return Err(wx_err(43101, "user refuse to accept the msg")),
        }
        let msgid = self.deliver(&app.appid, path, touser, body, now);
        self.pending_pushes.push(Push::subscribe_sent(
            &app.appid, touser, template, msgid, now,
        ));
        Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
    }

    pub fn custom_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/custom/send";
        self.charge_quota(&app.appid, PATH, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        let user = self
            .user(&app.appid, touser)
            .ok_or_else(|| wx_err(40003, "invalid openid"))?;
        let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
        check_custom_body(app.kind, msgtype, body)?;
        let last = user
            .last_interaction
            .filter(|t| now - t <= CUSTOM_WINDOW_SECS);
        let Some(last) = last else {
            return Err(wx_err(
                45015,
                "response out of time limit or subscription is canceled",
            ));
        };
        let sent = self
            .custom_sent
            .entry((app.appid.clone(), touser.to_string()))
            .or_insert((last, 0));
        if sent.0 != last {
            *sent = (last, 0);
        }
        if sent.1 >= CUSTOM_PER_INTERACTION {
            return Err(wx_err(45047, "out of response count limit"));
        }
        sent.1 += 1;
        self.deliver(&app.appid, PATH, touser, body, now);
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// When the app has templates at all, `template_id` must be one of them of the right
    /// family (40037 otherwise). An app without any keeps accepting any id, as the emulator
    /// always did.
    fn check_registered(
        &self,
        appid: &str,
        template_id: &str,
        subscribe: bool,
    ) -> Result<Option<Template>, WxErr> {
        // Per family: an account with template-message templates only still sends any
        // subscribe template, and the other way round.
        let family: Vec<&Template> = self
            .templates
            .get(appid)
            .map(|all| {
                all.iter()
                    .filter(|t| t.is_subscribe() == subscribe)
                    .collect()
            })
            .unwrap_or_default();
        if family.is_empty() {
            return Ok(None);
        }
        family
            .into_iter()
            .find(|t| t.id == template_id)
            .cloned()
            .map(Some)
            .ok_or_else(|| wx_err(40037, "invalid template_id"))
    }

    /// `POST /sandbox/templates`: a template the app has (replacing one with the same id).
    pub fn add_template(&mut self, appid: &str, t: Template) {
        let list = self.templates.entry(appid.to_string()).or_default();
        list.retain(|x| x.id != t.id);
        list.push(t);
    }

    /// `POST /cgi-bin/openapi/quota/get`: the app's daily quota of one API path, from the
    /// same counters and limits the calls are charged against.
    pub fn quota_get(&mut self, app: &EmulatedApp, body: &Value, now: i64) -> Result<Value, WxErr> {
        let path = body
            .get("cgi_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| wx_err(47001, "data format error: cgi_path"))?;
        let limit = self
            .daily_limits
            .get(path)
            .copied()
            .unwrap_or_else(|| default_daily_limit(path));
        if limit == u64::MAX {
            return Err(wx_err(76021, "cgi_path not found, please check"));
        }
        let day = now.div_euclid(86_400);
        let used = match self.daily_used.get(&(app.appid.clone(), path.to_string())) {
            Some((d, n)) if *d == day => *n,
            _ => 0,
        };
        Ok(json!({"errcode": 0, "errmsg": "ok",
            "quota": {"daily_limit": limit, "used": used, "remain": limit.saturating_sub(used)}}))
    }

    /// `GET /cgi-bin/template/get_all_private_template` (official accounts).
    pub fn private_templates(&self, app: &EmulatedApp) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let list: Vec<Value> = self
            .templates
            .get(&app.appid)
            .into_iter()
            .flatten()
            .filter(|t| !t.is_subscribe())
            .map(|t| {
                json!({"template_id": t.id, "title": t.title, "primary_industry": "IT科技",
                       "deputy_industry": "互联网|电子商务", "content": t.content, "example": t.example})
            })
            .collect();
        Ok(json!({"template_list": list}))
    }

    /// `POST /cgi-bin/template/api_add_template`: at most 25 private templates (45026).
    pub fn add_private_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let short = body
            .get("template_id_short")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| wx_err(40037, "invalid template_id_short"))?;
        let names: Vec<&str> = body
            .get("keyword_name_list")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names.is_empty() {
            return Err(wx_err(
                47003,
                "argument invalid! keyword_name_list is empty",
            ));
        }
        let count = self
            .templates
            .get(&app.appid)
            .map(|l| l.iter().filter(|t| !t.is_subscribe()).count())
            .unwrap_or(0);
        if count >= MAX_PRIVATE_TEMPLATES {
            return Err(wx_err(45026, "template num exceeds limit"));
        }
        let id = format!("{}_{}", short, random_alnum(30));
        let content: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}:{{{{thing{}.DATA}}}}", i + 1))
            .collect();
        self.add_template(
            &app.appid,
            Template {
                id: id.clone(),
                kind: "template".into(),
                title: format!("模板 {short}"),
                content: content.join("\n"),
                example: String::new(),
            },
        );
        Ok(json!({"errcode": 0, "errmsg": "ok", "template_id": id}))
    }

    /// `POST /cgi-bin/template/del_private_template`.
    pub fn delete_private_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let id = body
            .get("template_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.remove_template(&app.appid, id, false)
    }

    fn remove_template(&mut self, appid: &str, id: &str, subscribe: bool) -> Result<Value, WxErr> {
        let list = self.templates.entry(appid.to_string()).or_default();
        let before = list.len();
        list.retain(|t| !(t.id == id && t.is_subscribe() == subscribe));
        if list.len() == before {
            return Err(wx_err(40037, "invalid template_id"));
        }
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// `GET /wxaapi/newtmpl/gettemplate`: subscribe templates (`type` 2 one-time, 3 long-term).
    pub fn subscribe_templates(&self, app: &EmulatedApp) -> Result<Value, WxErr> {
        let list: Vec<Value> = self
            .templates
            .get(&app.appid)
            .into_iter()
            .flatten()
            .filter(|t| t.is_subscribe())
            .map(|t| {
                let kind = if t.kind == "subscribe_long_term" {
                    3
                } else {
                    2
                };
                json!({"priTmplId": t.id, "title": t.title, "content": t.content,
                       "example": t.example, "type": kind})
            })
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "data": list}))
    }

    /// `POST /wxaapi/newtmpl/addtemplate` `{"tid", "kidList", "sceneDesc"}`.
    pub fn add_subscribe_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let tid = match body.get("tid") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(wx_err(47003, "argument invalid! tid")),
        };
        let kids: Vec<i64> = body
            .get("kidList")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        if kids.is_empty() {
            return Err(wx_err(47003, "argument invalid! kidList"));
        }
        let id = random_alnum(43);
        let content: Vec<String> = kids
            .iter()
            .map(|k| format!("关键词{k}:{{{{thing{k}.DATA}}}}"))
            .collect();
        self.add_template(
            &app.appid,
            Template {
                id: id.clone(),
                kind: "subscribe_once".into(),
                title: format!("订阅模板 {tid}"),
                content: content.join("\n"),
                example: String::new(),
            },
        );
        Ok(json!({"errcode": 0, "errmsg": "ok", "priTmplId": id}))
    }

    /// `POST /wxaapi/newtmpl/deltemplate` `{"priTmplId"}`.
    pub fn delete_subscribe_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let id = body.get("priTmplId").and_then(Value::as_str).unwrap_or("");
        self.remove_template(&app.appid, id, true)
    }

    pub fn user_get(
        &mut self,
        app: &EmulatedApp,
        next: Option<&str>,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/get", now)?;
        let empty = AppUsers::default();
        let users = self.users.get(&app.appid).unwrap_or(&empty);
        let following = |o: &&String| users.by_openid.get(*o).is_some_and(|u| u.subscribed);
        // `next_openid` is a place in the account's (stable) user order, so it stays valid
        // when that user unfollows between two pages.
        let start = match next.filter(|n| !n.is_empty()) {
            None => 0,
            Some(n) => users
                .order
                .iter()
                .position(|o| o == n)
                .map(|i| i + 1)
                .ok_or_else(|| wx_err(40003, "invalid next_openid"))?,
        };
        let total = users.order.iter().filter(following).count();
        let page: Vec<&String> = users.order[start..]
            .iter()
            .filter(following)
            .take(self.page_size)
            .collect();
        let mut answer = json!({"total": total, "count": page.len()});
        if page.is_empty() {
            answer["next_openid"] = json!("");
        } else {
            answer["next_openid"] = json!(page.last());
            answer["data"] = json!({"openid": page});
        }
        Ok(answer)
    }

    fn user_info_value(&self, appid: &str, openid: &str) -> Result<Value, WxErr> {
        let user = self
            .user(appid, openid)
            .ok_or_else(|| wx_err(40003, "invalid openid"))?;
        if !user.subscribed {
            return Ok(json!({"subscribe": 0, "openid": openid}));
        }
        let mut v = json!({
            "subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": user.subscribe_time,
            "remark": "", "groupid": 0, "tagid_list": [], "subscribe_scene": "ADD_SCENE_SEARCH",
            "qr_scene": 0, "qr_scene_str": "",
        });
        if let Some(u) = &user.unionid {
            v["unionid"] = json!(u);
        }
        Ok(v)
    }

    pub fn user_info(
        &mut self,
        app: &EmulatedApp,
        openid: Option<&str>,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/info", now)?;
        self.user_info_value(&app.appid, openid.unwrap_or(""))
    }

    pub fn user_info_batch(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/info/batchget", now)?;
        let list = body
            .get("user_list")
            .and_then(Value::as_array)
            .ok_or_else(|| wx_err(47001, "data format error"))?;
        if list.is_empty() || list.len() > BATCHGET_MAX {
            return Err(wx_err(40032, "invalid openid list size"));
        }
        let infos = list
            .iter()
            .map(|e| {
                self.user_info_value(
                    &app.appid,
                    e.get("openid").and_then(Value::as_str).unwrap_or(""),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({"user_info_list": infos}))
    }

    pub fn code_to_session(
        &mut self,
        q: &HashMap<String, String>,
        now: i64,
    ) -> Result<Value, WxErr> {
        let app = self
            .check_credentials(
                q.get("appid").map(String::as_str),
                q.get("secret").map(String::as_str),
            )?
            .clone();
        if app.kind != AppKind::MiniProgram {
            return Err(wx_err(40013, "invalid appid"));
        }
        if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err(wx_err(40002, "invalid grant_type"));
        }
        let code = q
            .get("js_code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| wx_err(41008, "missing code"))?;
        let login = self
            .login_codes
            .get(code)
            .ok_or_else(|| wx_err(40029, "invalid code"))?;
        if login.used || login.appid != app.appid || now - login.issued_at > LOGIN_CODE_TTL_SECS {
            return Err(wx_err(40029, "invalid code"));
        }
        let openid = login.openid.clone();
        self.charge_quota(
            &format!("{}#{openid}", app.appid),
            "/sns/jscode2session",
            now,
        )?;
        if let Some(l) = self.login_codes.get_mut(code) {
            l.used = true;
        }
        let session_key = format!("{}==", random_alnum(22));
        self.session_keys
            .push(json!({"appid": app.appid, "openid": openid, "session_key": session_key}));
        let mut v = json!({"openid": openid, "session_key": session_key});
        if let Some(u) = self
            .user(&app.appid, &openid)
            .and_then(|u| u.unionid.clone())
        {
            v["unionid"] = json!(u);
        }
        Ok(v)
    }
}

/// A customer-service message's body as `custom/send` checks it (facts.md §4.4): the msgtype
/// must be one the app's kind may send (mini programs: text, image, link, miniprogrampage),
/// its object must be there with the fields WeChat requires.
fn check_custom_body(kind: AppKind, msgtype: &str, body: &Value) -> Result<(), WxErr> {
    let allowed: &[&str] = match kind {
        AppKind::MiniProgram => &["text", "image", "link", "miniprogrampage"],
        AppKind::OfficialAccount => &[
            "text",
            "image",
            "voice",
            "video",
            "music",
            "news",
            "mpnews",
            "mpnewsarticle",
            "msgmenu",
            "wxcard",
            "miniprogrampage",
        ],
    };
    if !allowed.contains(&msgtype) {
        return Err(wx_err(40008, "invalid message type"));
    }
    let Some(content) = body.get(msgtype).and_then(Value::as_object) else {
        return Err(wx_err(47001, "data format error"));
    };
    let text = |k: &str| {
        content
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let need = |k: &str| {
        text(k).map(|_| ()).ok_or_else(|| {
            wx_err(
                47001,
                &format!("data format error: {msgtype}.{k} is missing"),
            )
        })
    };
    let media = |k: &str| {
        text(k)
            .map(|_| ())
            .ok_or_else(|| wx_err(40007, &format!("invalid media_id: {msgtype}.{k}")))
    };
    match msgtype {
        "text" => {
            let t = text("content").ok_or_else(|| wx_err(44003, "empty content"))?;
            if t.len() > 2048 {
                return Err(wx_err(45002, "content size out of limit"));
            }
        }
        "image" | "voice" | "mpnews" => media("media_id")?,
        "video" => {
            media("media_id")?;
            media("thumb_media_id")?;
        }
        "music" => {
            need("musicurl")?;
            need("hqmusicurl")?;
            media("thumb_media_id")?;
        }
        "news" => {
            let articles = content
                .get("articles")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| wx_err(44002, "empty post data"))?;
            if articles.len() > 1 {
                return Err(wx_err(45008, "article size out of limit"));
            }
            if articles[0]
                .get("title")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(wx_err(47001, "data format error: news.articles[0].title"));
            }
        }
        "mpnewsarticle" => need("article_id")?,
        "msgmenu" => {
            let list = content
                .get("list")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| wx_err(47001, "data format error: msgmenu.list"))?;
            for item in list {
                for k in ["id", "content"] {
                    if item
                        .get(k)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return Err(wx_err(
                            47001,
                            &format!("data format error: msgmenu.list.{k}"),
                        ));
                    }
                }
            }
        }
        "wxcard" => text("card_id")
            .map(|_| ())
            .ok_or_else(|| wx_err(40056, "invalid card_id"))?,
        "miniprogrampage" => {
            need("title")?;
            need("pagepath")?;
            media("thumb_media_id")?;
            if kind == AppKind::OfficialAccount {
                need("appid")?;
            }
        }
        _ => {
            // link (mini programs)
            for k in ["title", "description", "url", "thumb_url"] {
                need(k)?;
            }
        }
    }
    if let Some(cs) = body.get("customservice")
        && cs
            .get("kf_account")
            .and_then(Value::as_str)
            .is_none_or(|k| !k.contains('@'))
    {
        return Err(wx_err(47001, "data format error: customservice.kf_account"));
    }
    Ok(())
}

fn template_id(body: &Value) -> Result<String, WxErr> {
    body.get("template_id")
        .and_then(Value::as_str)
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| wx_err(40037, "invalid template_id"))
}

/// `data` must be `{key: {"value": "<string>"}}`; subscribe values follow the type table.
fn check_data(body: &Value, subscribe_rules: bool) -> Result<(), WxErr> {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| wx_err(47003, "argument invalid! data is empty"))?;
    for (key, entry) in data {
        let value = entry.get("value").and_then(Value::as_str).ok_or_else(|| {
            wx_err(
                47003,
                &format!("argument invalid! data.{key}.value is empty"),
            )
        })?;
        if subscribe_rules && let Some(msg) = check_subscribe_value(key, value) {
            return Err(wx_err(47003, &msg));
        }
    }
    Ok(())
}
