//! WeChat's callback addresses in the stack's WAF IP set (`CallbackFirewall` on): the
//! callback's web ACL lets them through without the per-address rate limit
//! (`rate-limit`), or lets only them through (`wechat-only`).
//!
//! On each scheduled tick the set is read (`wafv2:GetIPSet`); when it is empty or its list
//! is older than [`MAX_AGE_SECS`] (WeChat advises a fresh list every day), WeChat's list is
//! fetched (`getcallbackip`, with any app's token) and written (`wafv2:UpdateIPSet`, under
//! the set's lock token, the fetch time in its description). A failure leaves the set as
//! it is and is tried again on the next tick (5 minutes); a fresh stack's empty set is
//! filled on its first tick.

use aws_sdk_wafv2::Client;
use aws_sdk_wafv2::types::Scope;
use std::net::IpAddr;
use thiserror::Error;
use tracing::{info, warn};
use wxpush_shared::aws::SdkClient;
use wxpush_shared::token::TokenManager;

/// A list older than this is fetched again.
pub const MAX_AGE_SECS: i64 = 6 * 3600;
/// WAF's limit of addresses in one IP set.
pub const IP_SET_LIMIT: usize = 10_000;
/// The set's description: this, then the unix time of the list.
const STAMP: &str = "wxpush getcallbackip ";

/// Why the IP set could not be named, read or written.
#[derive(Debug, Error)]
pub enum IpSetError {
    #[error("not a WAF IP set ARN: {0}")]
    NotAnIpSetArn(String),
    #[error("unknown WAF scope {scope:?} in {arn}")]
    UnknownScope { scope: String, arn: String },
    /// `wafv2:GetIPSet` or `wafv2:UpdateIPSet` failed.
    #[error("wafv2:{op}: {message}")]
    Waf { op: &'static str, message: String },
    /// WeChat's list could not be had (no app, every token refused, an empty list).
    #[error("{0}")]
    Fetch(String),
    #[error("getcallbackip listed {0} IPv4 networks; an IP set takes 1 to {IP_SET_LIMIT}")]
    ListSize(usize),
}

fn waf_error<E: std::error::Error>(op: &'static str, e: E) -> IpSetError {
    IpSetError::Waf {
        op,
        message: aws_sdk_wafv2::error::DisplayErrorContext(e).to_string(),
    }
}

/// The IP set named by `WXPUSH_CALLBACK_IP_SET` (its ARN).
#[derive(Clone, Debug)]
pub struct CallbackIpSet {
    client: SdkClient<Client>,
    name: String,
    id: String,
    scope: Scope,
}

/// What one tick did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpSetOutcome {
    /// The list is younger than [`MAX_AGE_SECS`]: nothing fetched.
    Fresh { age_secs: i64 },
    /// WeChat's list was fetched and written.
    Updated { addresses: usize },
}

impl CallbackIpSet {
    /// From the set's ARN (`arn:{partition}:wafv2:{region}:{account}:regional/ipset/{name}/{id}`).
    pub fn from_arn(client: SdkClient<Client>, arn: &str) -> Result<CallbackIpSet, IpSetError> {
        let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
        match resource.split('/').collect::<Vec<_>>().as_slice() {
            [scope, "ipset", name, id] if !name.is_empty() && !id.is_empty() => {
                let scope = match *scope {
                    "regional" => Scope::Regional,
                    "global" => Scope::Cloudfront,
                    other => {
                        return Err(IpSetError::UnknownScope {
                            scope: other.to_string(),
                            arn: arn.to_string(),
                        });
                    }
                };
                Ok(CallbackIpSet {
                    client,
                    name: name.to_string(),
                    id: id.to_string(),
                    scope,
                })
            }
            _ => Err(IpSetError::NotAnIpSetArn(arn.to_string())),
        }
    }

    /// `WXPUSH_CALLBACK_IP_SET`, when set (the stack sets it with `CallbackFirewall` on).
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Option<CallbackIpSet>, IpSetError> {
        match std::env::var("WXPUSH_CALLBACK_IP_SET") {
            Ok(arn) if !arn.trim().is_empty() => {
                CallbackIpSet::from_arn(SdkClient::deferred(sdk, Client::new), arn.trim()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The set's name (what its API calls name it by).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fetches and writes WeChat's list when the set is empty or its list is old.
    pub async fn refresh(
        &self,
        tokens: &TokenManager,
        now: i64,
    ) -> Result<IpSetOutcome, IpSetError> {
        let got = self
            .client
            .get_ip_set()
            .name(&self.name)
            .id(&self.id)
            .scope(self.scope.clone())
            .send()
            .await
            .map_err(|e| waf_error("GetIPSet", e))?;
        let lock_token = got.lock_token().unwrap_or_default().to_string();
        let (count, stamped) = got.ip_set().map_or((0, None), |s| {
            let stamped = s
                .description()
                .and_then(|d| d.strip_prefix(STAMP))
                .and_then(|t| t.trim().parse::<i64>().ok());
            (s.addresses().len(), stamped)
        });
        if let Some(at) = stamped.filter(|at| count > 0 && now - at < MAX_AGE_SECS) {
            return Ok(IpSetOutcome::Fresh { age_secs: now - at });
        }
        let nets = wxpush_shared::callback_ips::fetch(tokens)
            .await
            .map_err(IpSetError::Fetch)?;
        // The set holds IPv4 (the API is reached over IPv4); WeChat lists IPv4 only.
        let addresses: Vec<String> = nets
            .iter()
            .filter(|n| matches!(n.addr(), IpAddr::V4(_)))
            .map(|n| n.to_string())
            .collect();
        if addresses.is_empty() || addresses.len() > IP_SET_LIMIT {
            return Err(IpSetError::ListSize(addresses.len()));
        }
        self.client
            .update_ip_set()
            .name(&self.name)
            .id(&self.id)
            .scope(self.scope.clone())
            .set_addresses(Some(addresses.clone()))
            .description(format!("{STAMP}{now}"))
            .lock_token(lock_token)
            .send()
            .await
            .map_err(|e| waf_error("UpdateIPSet", e))?;
        info!(ip_set = %self.name, addresses = addresses.len(), previous = count, "WeChat's callback addresses written to the WAF IP set");
        Ok(IpSetOutcome::Updated {
            addresses: addresses.len(),
        })
    }
}

/// [`CallbackIpSet::refresh`] with its metric (`CallbackIpLists`, `Result` = `updated`,
/// `fresh` or `failed`) and log line.
pub async fn refresh_with_metric(
    set: &CallbackIpSet,
    tokens: &TokenManager,
    now: i64,
) -> Result<IpSetOutcome, IpSetError> {
    let outcome = set.refresh(tokens, now).await;
    let result = match &outcome {
        Ok(IpSetOutcome::Updated { .. }) => "updated",
        Ok(IpSetOutcome::Fresh { .. }) => "fresh",
        Err(e) => {
            warn!(ip_set = %set.name, error = %e, "WeChat's callback addresses not refreshed; the IP set keeps its list");
            "failed"
        }
    };
    wxpush_shared::metrics::count("CallbackIpLists", 1.0, &[("Result", result)]);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arn_names_the_set() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let client = || SdkClient::deferred(&sdk, Client::new);
        let set = CallbackIpSet::from_arn(
            client(),
            "arn:aws-cn:wafv2:cn-north-1:123456789012:regional/ipset/wxpush-WeChat-1AB/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab",
        )
        .unwrap();
        assert_eq!(set.name, "wxpush-WeChat-1AB");
        assert_eq!(set.id, "0f1e2d3c-aaaa-bbbb-cccc-0123456789ab");
        assert_eq!(set.scope, Scope::Regional);
        for bad in [
            "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/x/y",
            "arn:aws:wafv2:us-east-1:123456789012:moon/ipset/x/y",
            "nonsense",
        ] {
            assert!(CallbackIpSet::from_arn(client(), bad).is_err(), "{bad}");
        }
    }
}
