//! A mini program's login: the codes a user's `wx.login` yields and `jscode2session`, which
//! trades one for the openid (and unionid) and a session key.

use super::{World, WxErr, random_alnum, wx_err};
use serde_json::{Value, json};
use std::collections::HashMap;
use wxpush_shared::AppKind;

pub const LOGIN_CODE_TTL_SECS: i64 = 300;

pub(super) struct LoginCode {
    appid: String,
    openid: String,
    issued_at: i64,
    used: bool,
}

impl World {
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
