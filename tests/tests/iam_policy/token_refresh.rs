//! The token refresh: every app's token, refreshed when due, and (CallbackFirewall on)
//! WeChat's callback addresses into the WAF IP set: written while empty, then read.

use crate::Stack;
use crate::policy::{check, check_resources, policy};
use crate::recorder::recorder;
use std::time::Duration;
use wxpush_shared::clock::now_unix;
use wxpush_shared::runtime::AwsDeps;
use wxpush_token_refresh::callback_ips::CallbackIpSet;

/// An empty regional IPv4 set on moto, as the stack creates it; returns its ARN.
async fn empty_ip_set(sdk: &aws_config::SdkConfig) -> String {
    aws_sdk_wafv2::Client::new(sdk)
        .create_ip_set()
        .name(wxpush_tests::unique("iam-ips"))
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .ip_address_version(aws_sdk_wafv2::types::IpAddressVersion::Ipv4)
        .set_addresses(Some(vec![]))
        .send()
        .await
        .unwrap()
        .summary()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

pub async fn calls_what_its_policy_allows(s: &Stack) {
    let ip_set_arn = empty_ip_set(&s.sdk).await;
    let rec = recorder().await;
    let rec_sdk = rec.sdk().await;
    let deps = AwsDeps::build(&rec_sdk, &s.env);
    let report =
        wxpush_token_refresh::refresh_all(deps.tokens.clone(), Duration::from_secs(7_200)).await;
    assert!(report.failed.is_empty(), "{report:?}");
    let ip_set = CallbackIpSet::from_arn(
        wxpush_shared::aws::SdkClient::deferred(&rec_sdk, aws_sdk_wafv2::Client::new),
        &ip_set_arn,
    )
    .unwrap();
    for _ in 0..2 {
        ip_set.refresh(&deps.tokens, now_unix()).await.unwrap();
    }
    check_resources(
        "token refresh",
        &rec.resources(),
        &s.world.prefix,
        None,
        &s.queue_url,
        None,
        Some(ip_set.name()),
    );
    check(
        "TokenRefreshFunction",
        &policy("TokenRefreshFunction", "\n  BatchWorkerFunction:"),
        &rec.uses(),
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );
}
