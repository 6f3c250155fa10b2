//! WeChat's quotas: the daily limit per app and path, the per-minute limits, the counters
//! every call is charged against, and `quota/get`, which reads them.

use super::{EmulatedApp, World, WxErr, wx_err};
use serde_json::{Value, json};

/// Daily quota per app and path (docs/wechat.md#quotas-and-rate-limits); overridable with `POST /sandbox/quotas`.
pub fn default_daily_limit(path: &str) -> u64 {
    match path {
        "/cgi-bin/token" => 2_000,
        "/cgi-bin/stable_token" => 500_000,
        "/cgi-bin/message/template/send" => 100_000,
        "/cgi-bin/message/subscribe/send" => 10_000_000,
        "/cgi-bin/message/custom/send" => 500_000,
        "/cgi-bin/user/get" => 500,
        "/cgi-bin/user/info" | "/cgi-bin/user/info/batchget" => 5_000_000,
        // Not in docs/wechat.md#quotas-and-rate-limits: WeChat's figures for these are not documented there.
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

impl World {
    pub(super) fn charge_quota(&mut self, key: &str, path: &str, now: i64) -> Result<(), WxErr> {
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
}
