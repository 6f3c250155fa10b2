//! App configuration from the local `--apps` TOML file (one `[[app]]` table per app).

use super::{ConfigError, SecretStore, build_app_config};
use crate::app::AppConfig;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One `[[app]]` table: the same fields as the SSM parameters. Its `Debug` shows no secret.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    pub appid: String,
    /// Empty when left out: the check that follows names the app and the field.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub app_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_official_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_mode: Option<String>,
    /// Messages per second for this app's batches (see `AppConfig::batch_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_rate: Option<u32>,
    /// Messages one user may get a day (see `AppConfig::daily_caps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_user_per_day: Option<u32>,
    /// The same, per template: `{ TEMPLATE_ID = N, ... }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_user_per_day_by_template: Option<BTreeMap<String, u32>>,
}

impl AppEntry {
    /// `max_per_user_per_day_by_template` as its SSM parameter holds it: `TEMPLATE=N,...`.
    pub fn template_caps_parameter(&self) -> Option<String> {
        self.max_per_user_per_day_by_template.as_ref().map(|m| {
            m.iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

impl std::fmt::Debug for AppEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("AppEntry")
            .field("appid", &self.appid)
            .field("kind", &self.kind)
            .field("app_secret", &"***")
            .field("callback_token", &hidden(&self.callback_token))
            .field("encoding_aes_key", &hidden(&self.encoding_aes_key))
            .field("linked_official_account", &self.linked_official_account)
            .field("token_api", &self.token_api)
            .field("callback_mode", &self.callback_mode)
            .field("batch_rate", &self.batch_rate)
            .field("max_per_user_per_day", &self.max_per_user_per_day)
            .field(
                "max_per_user_per_day_by_template",
                &self.max_per_user_per_day_by_template,
            )
            .finish()
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppsFile {
    #[serde(default, rename = "app")]
    pub apps: Vec<AppEntry>,
}

impl AppsFile {
    /// Parses the apps file. An error names the line, the `[[app]]` entry (by its appid when
    /// it has one) and what is wrong — a missing, unknown or repeated field — but never a
    /// value: toml's own message quotes the offending line, which may hold a secret.
    pub fn parse(text: &str) -> Result<AppsFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Backend(describe_toml_error(text, &e)))
    }
}

/// A toml error as a message without any of the file's values.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message();
    let what = if ["missing field", "unknown field", "duplicate key"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        // Field names only: "unknown field `kid`, expected one of `appid`, ...".
        message.lines().next().unwrap_or(message).to_string()
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "a field has the wrong type (every field is a string but batch_rate and max_per_user_per_day, numbers, and max_per_user_per_day_by_template, a table of numbers)".into()
    } else {
        "it is not valid TOML".into()
    };
    let Some(span) = e.span() else {
        return format!("the apps file is not valid for wxpush: {what}");
    };
    let at = span.start.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    // The `[[app]]` entry the error is in: its ordinal, and its appid if it has a valid one
    // (appids are not secret).
    // A span may start at its table's own header: count a header that starts right there.
    let upto = text
        .get(..(at + "[[app]]".len()).min(text.len()))
        .unwrap_or(before);
    let entry = upto.matches("[[app]]").count();
    let appid = upto
        .rfind("[[app]]")
        .and_then(|start| text.get(start..))
        .and_then(|table| {
            table
                .lines()
                .skip(1)
                .take_while(|l| !l.trim_start().starts_with('['))
                .find_map(|l| {
                    let (key, value) = l.split_once('=')?;
                    (key.trim() == "appid").then(|| value.trim().trim_matches('"').to_string())
                })
        })
        .filter(|a| crate::app::is_valid_appid(a));
    let which = match (entry, appid) {
        (0, _) => String::new(),
        (n, Some(appid)) => format!(", [[app]] #{n} ({appid})"),
        (n, None) => format!(", [[app]] #{n}"),
    };
    format!("the apps file is not valid for wxpush: line {line}{which}: {what}")
}

/// Apps from a TOML file, checked in full when loaded: a bad file fails at start, naming
/// the app and the field.
#[derive(Clone, Debug)]
pub struct FileSecretStore {
    apps: BTreeMap<String, Arc<AppConfig>>,
}

impl FileSecretStore {
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Backend(format!("cannot read apps file {}: {e}", path.display()))
        })?;
        Self::from_file(AppsFile::parse(&text)?)
    }

    pub fn from_file(file: AppsFile) -> Result<Self, ConfigError> {
        let mut apps = BTreeMap::new();
        for entry in file.apps {
            if !crate::app::is_valid_appid(&entry.appid) {
                return Err(ConfigError::InvalidParameter {
                    appid: entry.appid.clone(),
                    name: "appid".into(),
                    reason: "must be wx followed by 16 hex characters".into(),
                });
            }
            let appid = entry.appid.clone();
            let config = build_app_config(&appid, |name| match name {
                "app_secret" => Some(entry.app_secret.clone()),
                "kind" => Some(entry.kind.clone()),
                "callback_token" => entry.callback_token.clone(),
                "encoding_aes_key" => entry.encoding_aes_key.clone(),
                "linked_official_account" => entry.linked_official_account.clone(),
                "token_api" => entry.token_api.clone(),
                "callback_mode" => entry.callback_mode.clone(),
                "batch_rate" => entry.batch_rate.map(|r| r.to_string()),
                "max_per_user_per_day" => entry.max_per_user_per_day.map(|r| r.to_string()),
                "max_per_user_per_day_by_template" => entry.template_caps_parameter(),
                _ => None,
            })?;
            if apps.insert(appid.clone(), Arc::new(config)).is_some() {
                return Err(ConfigError::InvalidParameter {
                    appid,
                    name: "appid".into(),
                    reason: "listed twice".into(),
                });
            }
        }
        Ok(FileSecretStore { apps })
    }

    pub fn apps(&self) -> impl Iterator<Item = &Arc<AppConfig>> {
        self.apps.values()
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        self.apps
            .get(appid)
            .cloned()
            .ok_or_else(|| ConfigError::UnknownApp {
                appid: appid.to_string(),
            })
    }

    async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
        Ok(self.apps.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_checks() {
        let ok = AppsFile::parse(
            r#"
            [[app]]
            appid = "wx0123456789abcdef"
            kind = "official_account"
            app_secret = "s3cr3t"
            callback_token = "tok"
            "#,
        )
        .unwrap();
        let store = FileSecretStore::from_file(ok).unwrap();
        assert_eq!(store.apps().count(), 1);

        let empty_secret = AppsFile::parse(
            "[[app]]\nappid = \"wx0123456789abcdef\"\nkind = \"mini_program\"\napp_secret = \"\"\n",
        )
        .unwrap();
        let err = FileSecretStore::from_file(empty_secret).unwrap_err();
        assert_eq!(
            err,
            ConfigError::MissingParameter {
                appid: "wx0123456789abcdef".into(),
                name: "app_secret".into()
            }
        );
    }

    #[test]
    fn errors_name_the_line_the_entry_and_the_field_never_a_value() {
        let bad_toml =
            AppsFile::parse("[[app]]\nappid = \"wx0\"\napp_secret = \"hunter2").unwrap_err();
        assert!(!bad_toml.to_string().contains("hunter2"), "{bad_toml}");

        let no_kind =
            AppsFile::parse("[[app]]\nappid = \"wx0123456789abcdef\"\napp_secret = \"hunter2\"\n")
                .unwrap();
        assert_eq!(
            FileSecretStore::from_file(no_kind).unwrap_err().to_string(),
            "app wx0123456789abcdef: required parameter `kind` is missing or empty"
        );
        let typo = AppsFile::parse(
            "[[app]]\nappid = \"wx0123456789abcdef\"\nkind = \"mini_program\"\napp_secret = \"a\"\n\n[[app]]\nappid = \"wx00000000000000ff\"\nkind = \"mini_program\"\napp_secret = \"hunter2\"\ncalback_token = \"tok\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            typo.contains(
                "line 10, [[app]] #2 (wx00000000000000ff): unknown field `calback_token`"
            ),
            "{typo}"
        );
        let wrong_type = AppsFile::parse(
            "[[app]]\nappid = \"wx0123456789abcdef\"\nkind = \"mini_program\"\napp_secret = 73313371\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            wrong_type
                .contains("line 4, [[app]] #1 (wx0123456789abcdef): a field has the wrong type"),
            "{wrong_type}"
        );
        assert!(!wrong_type.contains("73313371"), "{wrong_type}");
        let no_appid = AppsFile::parse("[[app]]\nkind = \"mini_program\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            no_appid.contains("[[app]] #1: missing field `appid`"),
            "{no_appid}"
        );
    }

    #[test]
    fn secrets_never_show_and_a_key_means_safe_mode() {
        let file = AppsFile::parse(
            "[[app]]\nappid = \"wx0123456789abcdef\"\nkind = \"official_account\"\napp_secret = \"hunter2\"\ncallback_token = \"tok-secret\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n",
        )
        .unwrap();
        let shown = format!(
            "{file:?} {:?}",
            FileSecretStore::from_file(file.clone()).unwrap()
        );
        for secret in ["hunter2", "tok-secret", "abcdefghijklmnopqrstuvwxyz"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let store = FileSecretStore::from_file(file).unwrap();
        let app = store.apps().next().unwrap();
        assert_eq!(
            app.callback_mode,
            crate::app::CallbackMode::Safe,
            "safe when a key is set"
        );
    }

    #[test]
    fn daily_caps_are_read_and_checked() {
        let file = |caps: &str| {
            let text = format!(
                "[[app]]\nappid = \"wx0123456789abcdef\"\nkind = \"official_account\"\napp_secret = \"s\"\n{caps}\n"
            );
            FileSecretStore::from_file(AppsFile::parse(&text).unwrap())
        };
        let store = file(
            "max_per_user_per_day = 3\nmax_per_user_per_day_by_template = { TPL_a = 1, TPL-b = 2 }",
        )
        .unwrap();
        let caps = &store.apps().next().unwrap().daily_caps;
        assert_eq!(caps.per_user, Some(3));
        assert_eq!(caps.per_template.get("TPL_a"), Some(&1));
        assert_eq!(caps.per_template.get("TPL-b"), Some(&2));
        let none = file("").unwrap();
        assert_eq!(
            none.apps().next().unwrap().daily_caps,
            crate::app::DailyCaps::default()
        );
        for (bad, name) in [
            ("max_per_user_per_day = 0", "max_per_user_per_day"),
            ("max_per_user_per_day = 1001", "max_per_user_per_day"),
            (
                "max_per_user_per_day_by_template = { TPL_a = 0 }",
                "max_per_user_per_day_by_template",
            ),
            (
                "max_per_user_per_day_by_template = { \"bad id\" = 1 }",
                "max_per_user_per_day_by_template",
            ),
        ] {
            match file(bad) {
                Err(ConfigError::InvalidParameter { name: n, .. }) => assert_eq!(n, name, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
