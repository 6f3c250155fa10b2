//! An app served by wxpush: its appid, kind and secrets.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret value (AppSecret, callback token, EncodingAESKey, access_token, session_key).
///
/// Its `Debug` and `Display` never show the value, so a secret cannot reach a log line,
/// an error message or a panic message by accident; `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself: only for building a request to WeChat or a response body that is
    /// meant to carry it (the token route).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// 公众号
    OfficialAccount,
    /// 小程序
    MiniProgram,
}

impl AppKind {
    pub fn parse(s: &str) -> Option<AppKind> {
        match s.trim() {
            "official_account" => Some(AppKind::OfficialAccount),
            "mini_program" => Some(AppKind::MiniProgram),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::OfficialAccount => "official_account",
            AppKind::MiniProgram => "mini_program",
        }
    }
}

/// Which WeChat endpoint issues this app's access_token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenApi {
    /// `POST /cgi-bin/stable_token` in normal mode (the default: repeated calls do not rotate).
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: every call rotates the token (old one lives 5 more minutes).
    Classic,
}

impl TokenApi {
    pub fn parse(s: &str) -> Option<TokenApi> {
        match s.trim() {
            "stable" | "stable_token" => Some(TokenApi::Stable),
            "classic" | "token" => Some(TokenApi::Classic),
            _ => None,
        }
    }
}

/// How WeChat pushes to this app's callback (the mode chosen in its console).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackMode {
    /// 安全模式: every push encrypted (`encrypt_type=aes`); plaintext pushes are refused.
    Safe,
    /// 兼容模式: WeChat sends the plaintext fields and the ciphertext; wxpush reads only the
    /// ciphertext, so pushes without `encrypt_type=aes` are refused as in safe mode.
    Compatible,
    /// 明文模式: the signature does not cover the body, so a (timestamp, nonce) seen with one
    /// body is refused with any other.
    Plaintext,
}

impl CallbackMode {
    pub fn parse(s: &str) -> Option<CallbackMode> {
        match s.trim() {
            "safe" => Some(CallbackMode::Safe),
            "compatible" => Some(CallbackMode::Compatible),
            "plaintext" => Some(CallbackMode::Plaintext),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackMode::Safe => "safe",
            CallbackMode::Compatible => "compatible",
            CallbackMode::Plaintext => "plaintext",
        }
    }
    pub fn encrypted(self) -> bool {
        self != CallbackMode::Plaintext
    }
}

/// Everything wxpush knows about one app. Built by a `SecretStore`.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub appid: String,
    pub kind: AppKind,
    pub app_secret: Secret,
    pub callback_token: Option<Secret>,
    pub encoding_aes_key: Option<Secret>,
    pub linked_official_account: Option<String>,
    pub token_api: TokenApi,
    /// `safe` by default when an `encoding_aes_key` is set, else `plaintext`.
    pub callback_mode: CallbackMode,
    /// Messages per second this app's batches may send, all workers together (parameter
    /// `batch_rate`); `None`: the deployment's default.
    pub batch_rate: Option<u32>,
    /// The daily frequency caps (parameters `max_per_user_per_day` and
    /// `max_per_user_per_day_by_template`); none by default.
    pub daily_caps: DailyCaps,
}

/// How many messages one user may get from the app in a day (China Standard Time), in all
/// and of one template; docs/sending.md, Frequency caps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyCaps {
    pub per_user: Option<u32>,
    pub per_template: std::collections::BTreeMap<String, u32>,
}

/// `wx` followed by 16 hexadecimal characters, as WeChat issues them.
///
/// Checked before an appid is used in an SSM path or a DynamoDB key, so a request cannot
/// steer a lookup outside its own app.
pub fn is_valid_appid(appid: &str) -> bool {
    appid.len() == 18
        && appid.starts_with("wx")
        && appid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("topsecret");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "topsecret");
    }

    #[test]
    fn appid_shape() {
        assert!(is_valid_appid("wx0123456789abcdef"));
        assert!(is_valid_appid("wxBA5FAD812F8E6FB9"));
        assert!(!is_valid_appid("wx0123456789abcde"));
        assert!(!is_valid_appid("wx0123456789abcdeg"));
        assert!(!is_valid_appid("xx0123456789abcdef"));
        assert!(!is_valid_appid("wx/../../etc/passw"));
    }
}
