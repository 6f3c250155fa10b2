//! Access tokens: the app's credentials, the classic and stable token families and their
//! rotation, and the check every call makes of its `access_token`.

use super::{EmulatedApp, World, WxErr, random_alnum, wx_err};
use serde_json::{Value, json};
use std::collections::HashMap;

pub const TOKEN_OVERLAP_SECS: i64 = 300;
pub const STABLE_ROTATE_WITHIN_SECS: i64 = 300;
pub const FORCE_REFRESH_MIN_GAP_SECS: i64 = 30;
pub const FORCE_REFRESH_PER_DAY: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Classic,
    Stable,
}

#[derive(Clone, Debug)]
pub(super) struct IssuedToken {
    appid: String,
    family: Family,
    expires_at: i64,
    revoked: bool,
}

impl World {
    pub(super) fn check_credentials(
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
}
