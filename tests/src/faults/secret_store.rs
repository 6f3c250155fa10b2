//! The SSM side under a fault plan.

use super::{Call, Fault, Faults};
use async_trait::async_trait;
use std::sync::Arc;
use wxpush_shared::AppConfig;
use wxpush_shared::secrets::{ConfigError, SecretStore};

/// A [`SecretStore`] (SSM) that injects the faults of a [`Faults`] plan on `app` reads:
/// `Before` fails the read as a throttled or timed-out `GetParametersByPath` would; other
/// faults read, then act as for a store.
pub struct FaultySecretStore {
    pub inner: Arc<dyn SecretStore>,
    pub faults: Arc<Faults>,
}

impl FaultySecretStore {
    pub fn new(inner: Arc<dyn SecretStore>, faults: Arc<Faults>) -> Arc<FaultySecretStore> {
        Arc::new(FaultySecretStore { inner, faults })
    }
}

#[async_trait]
impl SecretStore for FaultySecretStore {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        match self.faults.pick(Call::SecretApp, &[appid]) {
            Some(Fault::Before(what)) | Some(Fault::After(what)) => Err(ConfigError::Backend(
                format!("injected fault: GetParametersByPath {what}"),
            )),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.inner.app(appid).await
            }
            _ => self.inner.app(appid).await,
        }
    }

    async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
        self.inner.list_apps().await
    }
}
