//! Where app configuration and secrets come from.
//!
//! [`SecretStore`] has two implementations: [`SsmSecretStore`] (AWS Parameter Store,
//! SecureString) and [`FileSecretStore`] (the local `--apps` TOML file). [`CachedSecretStore`]
//! wraps either with a bounded, time-limited in-memory cache, so a warm Lambda does not call
//! SSM per request.

mod cache;
mod file;
mod ssm;

pub use cache::CachedSecretStore;
pub use file::{AppEntry, AppsFile, FileSecretStore};
pub use ssm::{CALLBACK_PARAMETERS, SsmSecretStore};

use crate::app::{AppConfig, AppKind, CallbackMode, Secret, TokenApi};
use async_trait::async_trait;
use std::sync::Arc;
use thiserror::Error;

/// Errors name the app and the parameter, never a value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("app {appid} is not configured")]
    UnknownApp { appid: String },
    #[error("app {appid}: required parameter `{name}` is missing or empty")]
    MissingParameter { appid: String, name: String },
    #[error("app {appid}: parameter `{name}` is invalid: {reason}")]
    InvalidParameter {
        appid: String,
        name: String,
        reason: String,
    },
    #[error("the configuration store failed: {0}")]
    Backend(String),
}

impl ConfigError {
    pub fn appid(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownApp { appid }
            | ConfigError::MissingParameter { appid, .. }
            | ConfigError::InvalidParameter { appid, .. } => Some(appid),
            ConfigError::Backend(_) => None,
        }
    }
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The app's configuration, or `UnknownApp`, or an error naming what is missing.
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError>;
    /// Every configured appid (the scheduled refresher walks them).
    async fn list_apps(&self) -> Result<Vec<String>, ConfigError>;
}

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
    let required = |name: &str, value: Option<String>| -> Result<String, ConfigError> {
        value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ConfigError::MissingParameter {
                appid: appid.to_string(),
                name: name.to_string(),
            })
    };
    let invalid = |name: &str, reason: &str| ConfigError::InvalidParameter {
        appid: appid.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let app_secret = match get("app_secret") {
        Some(v) if !require_secret => v,
        None if !require_secret => String::new(),
        v => required("app_secret", v)?,
    };
    let kind_raw = required("kind", get("kind"))?;
    let kind = AppKind::parse(&kind_raw)
        .ok_or_else(|| invalid("kind", "expected official_account or mini_program"))?;
    let optional = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let callback_token = optional(get("callback_token")).map(Secret::new);
    let encoding_aes_key = optional(get("encoding_aes_key"));
    if let Some(key) = &encoding_aes_key
        && (key.len() != 43 || !key.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(invalid(
            "encoding_aes_key",
            "must be 43 characters of [A-Za-z0-9]",
        ));
    }
    let linked_official_account = optional(get("linked_official_account"));
    if let Some(linked) = &linked_official_account
        && !crate::app::is_valid_appid(linked)
    {
        return Err(invalid(
            "linked_official_account",
            "must be an appid (wx + 16 hex characters)",
        ));
    }
    let token_api = match optional(get("token_api")) {
        None => TokenApi::default(),
        Some(v) => {
            TokenApi::parse(&v).ok_or_else(|| invalid("token_api", "expected stable or classic"))?
        }
    };
    let callback_mode = match optional(get("callback_mode")) {
        None if encoding_aes_key.is_some() => CallbackMode::Safe,
        None => CallbackMode::Plaintext,
        Some(v) => CallbackMode::parse(&v)
            .ok_or_else(|| invalid("callback_mode", "expected safe, compatible or plaintext"))?,
    };
    if callback_mode.encrypted() && encoding_aes_key.is_none() {
        return Err(invalid(
            "callback_mode",
            "safe and compatible mode need parameter `encoding_aes_key`",
        ));
    }
    let batch_rate = match optional(get("batch_rate")) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|r| (1..=MAX_BATCH_RATE).contains(r))
                .ok_or_else(|| {
                    invalid(
                        "batch_rate",
                        "expected messages per second, a whole number from 1 to 10000",
                    )
                })?,
        ),
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
        daily_caps: Default::default(),
    })
}

/// The highest `batch_rate` an app may set: WeChat's frequency limit is 10 000 calls a
/// minute per API (facts.md §1.2), so more than this per second could never be used.
pub const MAX_BATCH_RATE: u32 = 10_000;
