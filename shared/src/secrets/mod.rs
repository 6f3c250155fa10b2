//! Where app configuration and secrets come from.
//!
//! [`SecretStore`] has two implementations: [`SsmSecretStore`] (AWS Parameter Store,
//! SecureString) and [`FileSecretStore`] (the local `--apps` TOML file). [`CachedSecretStore`]
//! wraps either with a bounded, time-limited in-memory cache, so a warm Lambda does not call
//! SSM per request.

mod cache;
mod file;
mod parameters;
mod ssm;

pub use cache::CachedSecretStore;
pub use file::{AppEntry, AppsFile, FileSecretStore};
pub use parameters::MAX_BATCH_RATE;
pub use ssm::{CALLBACK_PARAMETERS, SsmSecretStore};

pub(crate) use parameters::{build_app_config, build_app_config_with};

use crate::app::AppConfig;
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
