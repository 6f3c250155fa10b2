//! An app's parameters checked into an [`AppConfig`] the same way for every store, so SSM and
//! the TOML file accept and reject exactly the same things.

use super::ConfigError;
use crate::app::{AppConfig, AppKind, CallbackMode, DailyCaps, Secret, TokenApi};
use std::collections::BTreeMap;

/// The highest `batch_rate` an app may set: WeChat's frequency limit is 10 000 calls a
/// minute per API (docs/wechat.md#stable-token), so more than this per second could never be used.
pub const MAX_BATCH_RATE: u32 = 10_000;

/// The parameter of an app's daily cap per user (docs/sending.md, Frequency caps).
pub const MAX_PER_USER_PER_DAY: &str = "max_per_user_per_day";
/// The parameter of an app's daily caps per user and template: `TEMPLATE=N,...`.
pub const MAX_PER_USER_PER_DAY_BY_TEMPLATE: &str = "max_per_user_per_day_by_template";
/// The highest daily cap an app may set.
pub const MAX_DAILY_CAP: u32 = 1_000;

/// Builds an [`AppConfig`] from named raw values, the same way for every store, so SSM and
/// the TOML file accept and reject exactly the same things.
pub(crate) fn build_app_config(
    appid: &str,
    get: impl FnMut(&str) -> Option<String>,
) -> Result<AppConfig, ConfigError> {
    build_app_config_with(appid, get, true)
}

/// [`build_app_config`]; without `require_secret` the AppSecret may be absent (the callback
/// function never reads it: it is left empty).
pub(crate) fn build_app_config_with(
    appid: &str,
    mut get: impl FnMut(&str) -> Option<String>,
    require_secret: bool,
) -> Result<AppConfig, ConfigError> {
    let check = Check { appid };
    let app_secret = match get("app_secret") {
        Some(v) if !require_secret => v,
        None if !require_secret => String::new(),
        v => check.required("app_secret", v)?,
    };
    let kind = AppKind::parse(&check.required("kind", get("kind"))?)
        .ok_or_else(|| check.invalid("kind", "expected official_account or mini_program"))?;
    let callback_token = optional(get("callback_token")).map(Secret::new);
    let encoding_aes_key = check.encoding_aes_key(optional(get("encoding_aes_key")))?;
    let linked_official_account =
        check.linked_official_account(optional(get("linked_official_account")))?;
    let token_api = match optional(get("token_api")) {
        None => TokenApi::default(),
        Some(v) => TokenApi::parse(&v)
            .ok_or_else(|| check.invalid("token_api", "expected stable or classic"))?,
    };
    let callback_mode =
        check.callback_mode(optional(get("callback_mode")), encoding_aes_key.is_some())?;
    let batch_rate = check.batch_rate(optional(get("batch_rate")))?;
    let daily_caps = DailyCaps {
        per_user: check.daily_cap(optional(get(MAX_PER_USER_PER_DAY)))?,
        per_template: check.template_caps(optional(get(MAX_PER_USER_PER_DAY_BY_TEMPLATE)))?,
    };
    Ok(AppConfig {
        appid: appid.to_string(),
        kind,
        app_secret: Secret::new(app_secret),
        callback_token,
        encoding_aes_key: encoding_aes_key.map(Secret::new),
        linked_official_account,
        token_api,
        callback_mode,
        batch_rate,
        daily_caps,
    })
}

/// A value that is there and not blank.
fn optional(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.trim().is_empty())
}

/// The checks of one app's parameters; every error names the app and the parameter, never
/// a value.
struct Check<'a> {
    appid: &'a str,
}

impl Check<'_> {
    fn required(&self, name: &str, value: Option<String>) -> Result<String, ConfigError> {
        optional(value).ok_or_else(|| ConfigError::MissingParameter {
            appid: self.appid.to_string(),
            name: name.to_string(),
        })
    }

    fn invalid(&self, name: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidParameter {
            appid: self.appid.to_string(),
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// 43 characters of `[A-Za-z0-9]`, as WeChat generates them.
    fn encoding_aes_key(&self, key: Option<String>) -> Result<Option<String>, ConfigError> {
        if let Some(key) = &key
            && (key.len() != 43 || !key.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(self.invalid("encoding_aes_key", "must be 43 characters of [A-Za-z0-9]"));
        }
        Ok(key)
    }

    /// An appid.
    fn linked_official_account(
        &self,
        linked: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(linked) = &linked
            && !crate::app::is_valid_appid(linked)
        {
            return Err(self.invalid(
                "linked_official_account",
                "must be an appid (wx + 16 hex characters)",
            ));
        }
        Ok(linked)
    }

    /// The mode named, or safe when a key is set and plaintext when not; an encrypted mode
    /// needs the key.
    fn callback_mode(
        &self,
        mode: Option<String>,
        has_key: bool,
    ) -> Result<CallbackMode, ConfigError> {
        let mode = match mode {
            None if has_key => CallbackMode::Safe,
            None => CallbackMode::Plaintext,
            Some(v) => CallbackMode::parse(&v).ok_or_else(|| {
                self.invalid("callback_mode", "expected safe, compatible or plaintext")
            })?,
        };
        if mode.encrypted() && !has_key {
            return Err(self.invalid(
                "callback_mode",
                "safe and compatible mode need parameter `encoding_aes_key`",
            ));
        }
        Ok(mode)
    }

    /// Messages per user per day, 1 to [`MAX_DAILY_CAP`].
    fn daily_cap(&self, cap: Option<String>) -> Result<Option<u32>, ConfigError> {
        let Some(v) = cap else {
            return Ok(None);
        };
        parse_cap(&v).map(Some).ok_or_else(|| {
            self.invalid(
                MAX_PER_USER_PER_DAY,
                "expected messages per user per day, a whole number from 1 to 1000",
            )
        })
    }

    /// `TEMPLATE=N,...`: a template id and its cap (1 to [`MAX_DAILY_CAP`]), each once.
    fn template_caps(&self, caps: Option<String>) -> Result<BTreeMap<String, u32>, ConfigError> {
        let mut map = BTreeMap::new();
        let Some(v) = caps else {
            return Ok(map);
        };
        for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = entry.split_once('=').and_then(|(t, n)| {
                let t = t.trim();
                (crate::templates::is_template_id(t) && !map.contains_key(t))
                    .then_some(t)
                    .zip(parse_cap(n))
            });
            let Some((template, cap)) = parsed else {
                return Err(self.invalid(
                    MAX_PER_USER_PER_DAY_BY_TEMPLATE,
                    "expected TEMPLATE_ID=N pairs separated by commas, each template once, N from 1 to 1000",
                ));
            };
            map.insert(template.to_string(), cap);
        }
        Ok(map)
    }

    /// Messages per second, 1 to [`MAX_BATCH_RATE`].
    fn batch_rate(&self, rate: Option<String>) -> Result<Option<u32>, ConfigError> {
        let Some(v) = rate else {
            return Ok(None);
        };
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|r| (1..=MAX_BATCH_RATE).contains(r))
            .map(Some)
            .ok_or_else(|| {
                self.invalid(
                    "batch_rate",
                    "expected messages per second, a whole number from 1 to 10000",
                )
            })
    }
}

/// A daily cap: a whole number from 1 to [`MAX_DAILY_CAP`].
fn parse_cap(v: &str) -> Option<u32> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_DAILY_CAP).contains(n))
}
