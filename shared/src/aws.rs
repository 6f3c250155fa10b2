//! AWS SDK configuration, loaded once at cold start.
//!
//! `aws_config` honours the standard variables (`AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL`, which the tests use to reach moto's server on 127.0.0.1). Its HTTPS
//! client trusts the process's one root store ([`crate::tls`]), not the file system's.

pub async fn load_sdk_config() -> aws_config::SdkConfig {
    crate::tls::with_roots(aws_config::defaults(aws_config::BehaviorVersion::latest()))
        .load()
        .await
}
