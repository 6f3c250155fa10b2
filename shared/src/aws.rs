//! AWS SDK configuration, loaded once at cold start.
//!
//! `aws_config` honours the standard variables (`AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL`, which the tests use to reach moto's server on 127.0.0.1). Its HTTPS
//! client trusts the process's one root store ([`crate::tls`]), not the file system's.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use std::sync::{Arc, LazyLock};

pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let mut loader =
        crate::tls::with_roots(aws_config::defaults(aws_config::BehaviorVersion::latest()));
    // Inside Lambda the credentials and the region are environment variables, which the
    // default chains would pick first anyway. Naming them skips building the rest of the
    // chains at cold start (the web-identity provider alone builds an STS client).
    if env_credentials_present() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if let Some(region) = non_empty_env("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether the default credential chain's first provider (the environment) has credentials:
/// both the access key id and the secret.
fn env_credentials_present() -> bool {
    non_empty_env("AWS_ACCESS_KEY_ID").is_some()
        && (non_empty_env("AWS_SECRET_ACCESS_KEY").is_some()
            || non_empty_env("SECRET_ACCESS_KEY").is_some())
}

/// An AWS SDK client built on its first use. `Client::new` is most of what is left of a cold
/// start (each one reads its service's endpoint rules and checks its configuration), and a
/// first event rarely needs every client: the callback's URL check reads SSM only.
pub struct SdkClient<C>(Arc<LazyLock<C, Box<dyn FnOnce() -> C + Send>>>);

impl<C: 'static> SdkClient<C> {
    /// `make(sdk)` on first use.
    pub fn deferred(sdk: &aws_config::SdkConfig, make: fn(&aws_config::SdkConfig) -> C) -> Self {
        let sdk = sdk.clone();
        SdkClient(Arc::new(LazyLock::new(Box::new(move || make(&sdk)))))
    }
}

/// A client already built (tests, the operator CLI).
impl<C: Send + 'static> From<C> for SdkClient<C> {
    fn from(client: C) -> Self {
        SdkClient(Arc::new(LazyLock::new(Box::new(move || client))))
    }
}

impl<C> Clone for SdkClient<C> {
    fn clone(&self) -> Self {
        SdkClient(self.0.clone())
    }
}

impl<C> std::ops::Deref for SdkClient<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> std::fmt::Debug for SdkClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<C>())
    }
}
