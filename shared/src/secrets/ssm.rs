//! App configuration from SSM Parameter Store: `{prefix}/apps/{appid}/{name}`.

use super::{ConfigError, SecretStore, build_app_config};
use crate::app::{AppConfig, is_valid_appid};
use async_trait::async_trait;
use aws_sdk_ssm::Client;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Pages read per lookup at most (10 parameters a page): bounds a runaway prefix.
const MAX_PAGES_PER_APP: usize = 5;
const MAX_PAGES_LIST: usize = 1000;

#[derive(Clone, Debug)]
pub struct SsmSecretStore {
    client: Client,
    prefix: String,
}

impl SsmSecretStore {
    /// `prefix` is `WXPUSH_SSM_PREFIX` (default `/wxpush`).
    pub fn new(client: Client, prefix: &str) -> Self {
        let prefix = format!("/{}", prefix.trim().trim_matches('/'));
        SsmSecretStore { client, prefix }
    }

    fn backend(e: impl std::fmt::Display) -> ConfigError {
        ConfigError::Backend(format!("SSM GetParametersByPath failed: {e}"))
    }
}

#[async_trait]
impl SecretStore for SsmSecretStore {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        if !is_valid_appid(appid) {
            return Err(ConfigError::UnknownApp {
                appid: appid.to_string(),
            });
        }
        let path = format!("{}/apps/{appid}/", self.prefix);
        let mut values: HashMap<String, String> = HashMap::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES_PER_APP {
            let out = self
                .client
                .get_parameters_by_path()
                .path(&path)
                .recursive(false)
                .with_decryption(true)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| Self::backend(aws_sdk_ssm::error::DisplayErrorContext(e)))?;
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    let short = name.rsplit('/').next().unwrap_or(name);
                    values.insert(short.to_string(), value.to_string());
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        if values.is_empty() {
            return Err(ConfigError::UnknownApp {
                appid: appid.to_string(),
            });
        }
        build_app_config(appid, |name| values.remove(name)).map(Arc::new)
    }

    async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
        let path = format!("{}/apps/", self.prefix);
        let mut appids = BTreeSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES_LIST {
            // Names only: no decryption needed to list.
            let out = self
                .client
                .get_parameters_by_path()
                .path(&path)
                .recursive(true)
                .with_decryption(false)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| Self::backend(aws_sdk_ssm::error::DisplayErrorContext(e)))?;
            for p in out.parameters() {
                if let Some(rest) = p.name().and_then(|n| n.strip_prefix(&path))
                    && let Some((appid, _)) = rest.split_once('/')
                    && is_valid_appid(appid)
                {
                    appids.insert(appid.to_string());
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(appids.into_iter().collect())
    }
}
