//! The SSM requests a client sends, kept by an SDK interceptor, and the callback's secret
//! store as the Lambda builds it over such a client (security, misconfigured_apps).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use wxpush_shared::secrets::{CachedSecretStore, SecretStore, SsmSecretStore};
use wxpush_tests::TokenWorld;

/// Every SSM request a client sends (every attempt that reaches the wire): its operation
/// (`X-Amz-Target`) and its body.
#[derive(Debug, Default, Clone)]
pub struct SsmRequests(Arc<Mutex<Vec<(String, String)>>>);

impl SsmRequests {
    /// How many requests were sent.
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// How many requests of `operation` (`GetParameters`) were sent.
    pub fn of(&self, operation: &str) -> usize {
        let target = format!("AmazonSSM.{operation}");
        let requests = self.0.lock().unwrap();
        requests.iter().filter(|(t, _)| *t == target).count()
    }

    /// Every request's body, one a line.
    pub fn bodies(&self) -> String {
        let requests = self.0.lock().unwrap();
        let bodies: Vec<&str> = requests.iter().map(|(_, b)| b.as_str()).collect();
        bodies.join("\n")
    }
}

impl aws_sdk_ssm::config::Intercept for SsmRequests {
    fn name(&self) -> &'static str {
        "keep SSM requests"
    }
    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_ssm::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_ssm::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ssm::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = ctx.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .to_string();
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push((target, body));
        Ok(())
    }
}

/// The callback's secret store as the Lambda builds it (the cache in front of the four
/// callback parameters), keeping its SSM requests.
pub async fn callback_secrets(world: &TokenWorld) -> (Arc<dyn SecretStore>, SsmRequests) {
    let requests = SsmRequests::default();
    let sdk = wxpush_tests::sdk_config().await;
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&sdk)
            .interceptor(requests.clone())
            .build(),
    );
    let secrets: Arc<dyn SecretStore> = Arc::new(CachedSecretStore::new(
        SsmSecretStore::callback_only(ssm, &world.prefix),
        Duration::from_secs(300),
        512,
    ));
    (secrets, requests)
}
