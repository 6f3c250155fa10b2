//! The reqwest client of [`super::WeChatApi`]: its configuration, one request and its answer
//! (a WeChat errcode as a typed error; a transport error without the URL, which carries a
//! token or secret). The calls themselves are in `calls.rs`.

use super::error::{WeChatCallError, WeChatError};
#[cfg(test)]
use super::types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";

#[derive(Clone, Debug)]
pub struct WeChatClientConfig {
    /// `WECHAT_API_BASE`; no trailing slash.
    pub api_base: String,
    /// Whole-request timeout (`WECHAT_TIMEOUT_MS`, default 5000).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for WeChatClientConfig {
    fn default() -> Self {
        WeChatClientConfig {
            api_base: DEFAULT_API_BASE.to_string(),
            timeout: Duration::from_millis(5000),
            connect_timeout: Duration::from_millis(2000),
        }
    }
}

impl WeChatClientConfig {
    /// From `WECHAT_API_BASE` and `WECHAT_TIMEOUT_MS`, with defaults.
    pub fn from_env() -> Self {
        let mut cfg = WeChatClientConfig::default();
        if let Ok(base) = std::env::var("WECHAT_API_BASE")
            && !base.trim().is_empty()
        {
            cfg.api_base = base.trim().trim_end_matches('/').to_string();
        }
        if let Some(ms) = std::env::var("WECHAT_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            cfg.timeout = Duration::from_millis(ms.max(1));
        }
        cfg
    }
}

/// One HTTP client (connection pool, TLS config), built on first use and reused: a cold
/// start that does not call WeChat (a token already stored, a refusal before WeChat) never
/// builds its root store (BENCHMARKS.md, cold start).
#[derive(Clone, Debug)]
pub struct HttpWeChatClient {
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
    cfg: Arc<WeChatClientConfig>,
    base: String,
}

impl HttpWeChatClient {
    pub fn new(cfg: WeChatClientConfig) -> Self {
        HttpWeChatClient {
            http: Arc::new(OnceLock::new()),
            base: cfg.api_base.trim_end_matches('/').to_string(),
            cfg: Arc::new(cfg),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, WeChatCallError> {
        let cfg = &self.cfg;
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.connect_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    // Sends are not idempotent at WeChat: wxpush decides every retry itself.
                    .retry(reqwest::retry::never())
                    .pool_idle_timeout(Duration::from_secs(50))
                    .user_agent(concat!("wxpush/", env!("CARGO_PKG_VERSION")))
                    // The process's one TLS configuration (compiled-in roots plus
                    // `SSL_CERT_FILE`), not the system's: see `crate::tls`.
                    .tls_backend_preconfigured(crate::tls::client_config().clone())
                    .build()
                    .map_err(|e| e.without_url().to_string())
            })
            .as_ref()
            .map_err(|e| WeChatCallError::Connect(e.clone()))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WeChatCallError> {
        let req = self
            .http()?
            .get(format!("{}{}", self.base, path))
            .query(query);
        self.execute(req).await
    }

    pub(super) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, WeChatCallError> {
        let req = self
            .http()?
            .post(format!("{}{}", self.base, path))
            .query(query)
            .json(body);
        self.execute(req).await
    }

    async fn execute<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, WeChatCallError> {
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(WeChatCallError::Http {
                status: status.as_u16(),
            });
        }
        parse_answer(&bytes)
    }
}

/// Turns a WeChat answer into `T`, or the typed error when `errcode` is non-zero.
pub(crate) fn parse_answer<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WeChatCallError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| WeChatCallError::Decode(format!("not JSON: {e}")))?;
    let errcode = value.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
    if errcode != 0 {
        let errmsg = value
            .get("errmsg")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        return Err(WeChatError { errcode, errmsg }.into());
    }
    serde_json::from_value(value).map_err(|e| WeChatCallError::Decode(e.to_string()))
}

/// Maps a reqwest error without its URL (the URL carries the access_token or AppSecret).
fn transport_error(e: reqwest::Error) -> WeChatCallError {
    let e = e.without_url();
    if e.is_timeout() {
        WeChatCallError::Timeout
    } else if e.is_connect() {
        WeChatCallError::Connect(e.to_string())
    } else {
        WeChatCallError::Interrupted(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_becomes_typed_error() {
        let err = parse_answer::<SentMessage>(
            br#"{"errcode":43101,"errmsg":"user refuse to accept the msg rid: x"}"#,
        )
        .unwrap_err();
        assert_eq!(err.errcode(), Some(43101));
        let ok: SentMessage =
            parse_answer(br#"{"errcode":0,"errmsg":"ok","msgid":200228332}"#).unwrap();
        assert_eq!(ok.msgid, Some(200228332));
        assert!(matches!(
            parse_answer::<SentMessage>(b"<html>"),
            Err(WeChatCallError::Decode(_))
        ));
    }
}
