//! App configuration from SSM Parameter Store: `{prefix}/apps/{appid}/{name}`.

use super::{ConfigError, SecretStore, build_app_config, build_app_config_with};
use crate::app::{AppConfig, is_valid_appid};
use crate::aws::SdkClient;
use async_trait::async_trait;
use aws_sdk_ssm::Client;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Pages read per lookup at most (10 parameters a page): bounds a runaway prefix.
const MAX_PAGES_PER_APP: usize = 5;
const MAX_PAGES_LIST: usize = 1000;

/// The parameters the callback function reads: everything it needs, never the AppSecret.
pub const CALLBACK_PARAMETERS: [&str; 4] = [
    "kind",
    "callback_token",
    "encoding_aes_key",
    "callback_mode",
];

/// The appids in parameter `names` under `path` (`{prefix}/apps/`) that have their `kind`:
/// `{path}{appid}/kind`. An app is listed only once its `kind` is written (`wxpush apps put`
/// writes it last), so a half-written app stays invisible: its appid is refused like any
/// unknown one, without a read of its parameters.
fn add_appids<'a>(appids: &mut BTreeSet<String>, path: &str, names: impl Iterator<Item = &'a str>) {
    for name in names {
        if let Some(rest) = name.strip_prefix(path)
            && let Some(appid) = rest.strip_suffix("/kind")
            && is_valid_appid(appid)
        {
            appids.insert(appid.to_string());
        }
    }
}

#[derive(Clone, Debug)]
pub struct SsmSecretStore {
    client: SdkClient<Client>,
    prefix: String,
    /// `Some`: read only these parameters by name (`GetParameters`) and list appids with
    /// `DescribeParameters` (names, never values), so the function's IAM policy can exclude
    /// the rest — the callback function cannot read an AppSecret.
    only: Option<&'static [&'static str]>,
}

impl SsmSecretStore {
    /// `prefix` is `WXPUSH_SSM_PREFIX` (default `/wxpush`).
    pub fn new(client: impl Into<SdkClient<Client>>, prefix: &str) -> Self {
        let prefix = format!("/{}", prefix.trim().trim_matches('/'));
        SsmSecretStore {
            client: client.into(),
            prefix,
            only: None,
        }
    }

    /// A store that reads only the callback's parameters ([`CALLBACK_PARAMETERS`]); apps it
    /// returns have an empty AppSecret.
    pub fn callback_only(client: impl Into<SdkClient<Client>>, prefix: &str) -> Self {
        SsmSecretStore {
            only: Some(&CALLBACK_PARAMETERS),
            ..SsmSecretStore::new(client, prefix)
        }
    }

    /// `GetParameters` of the named parameters of one app.
    async fn named(
        &self,
        appid: &str,
        names: &[&str],
    ) -> Result<HashMap<String, String>, ConfigError> {
        let out = self
            .client
            .get_parameters()
            .set_names(Some(
                names
                    .iter()
                    .map(|n| format!("{}/apps/{appid}/{n}", self.prefix))
                    .collect(),
            ))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                ConfigError::Backend(format!(
                    "SSM GetParameters failed: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(out
            .parameters()
            .iter()
            .filter_map(|p| {
                let short = p.name()?.rsplit('/').next()?;
                Some((short.to_string(), p.value()?.to_string()))
            })
            .collect())
    }

    /// `DescribeParameters` under `{prefix}/apps/`: parameter names only, no values.
    async fn described_appids(&self) -> Result<Vec<String>, ConfigError> {
        use aws_sdk_ssm::types::ParameterStringFilter;
        let path = format!("{}/apps/", self.prefix);
        let filter = ParameterStringFilter::builder()
            .key("Path")
            .option("Recursive")
            .values(path.trim_end_matches('/'))
            .build()
            .map_err(|e| ConfigError::Backend(e.to_string()))?;
        let mut appids = BTreeSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES_LIST {
            let out = self
                .client
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    ConfigError::Backend(format!(
                        "SSM DescribeParameters failed: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(e)
                    ))
                })?;
            add_appids(
                &mut appids,
                &path,
                out.parameters().iter().filter_map(|p| p.name()),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(appids.into_iter().collect())
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
        if let Some(names) = self.only {
            let mut values = self.named(appid, names).await?;
            if values.is_empty() {
                return Err(ConfigError::UnknownApp {
                    appid: appid.to_string(),
                });
            }
            return build_app_config_with(appid, |name| values.remove(name), false).map(Arc::new);
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
        if self.only.is_some() {
            return self.described_appids().await;
        }
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
            add_appids(
                &mut appids,
                &path,
                out.parameters().iter().filter_map(|p| p.name()),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(appids.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_apps_with_their_kind_are_listed() {
        let path = "/wxpush/apps/";
        let (whole, half) = ("wx00000000000000a1", "wx00000000000000a2");
        let names = [
            format!("{path}{whole}/app_secret"),
            format!("{path}{whole}/kind"),
            // A half-written app: everything but `kind`.
            format!("{path}{half}/app_secret"),
            format!("{path}{half}/callback_token"),
            format!("{path}{half}/kind/extra"),
            format!("{path}not-an-appid/kind"),
            format!("/elsewhere/apps/{half}/kind"),
        ];
        let mut appids = BTreeSet::new();
        add_appids(&mut appids, path, names.iter().map(String::as_str));
        assert_eq!(appids.into_iter().collect::<Vec<_>>(), vec![whole]);
    }
}
