//! The reqwest implementation of [`WeChatApi`].

use super::WeChatApi;
use super::error::{WeChatCallError, WeChatError};
use super::types::*;
use crate::app::{AppConfig, TokenApi};
use async_trait::async_trait;
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

    async fn get<T: DeserializeOwned>(
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

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
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

#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'a str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Serialize)]
struct BatchGetRequest<'a> {
    user_list: Vec<BatchGetEntry<'a>>,
}

#[derive(Serialize)]
struct BatchGetEntry<'a> {
    openid: &'a str,
    lang: &'a str,
}

#[derive(serde::Deserialize)]
struct BatchGetResponse {
    #[serde(default)]
    user_info_list: Vec<UserInfo>,
}

#[derive(serde::Deserialize)]
struct Ack {}

#[derive(serde::Deserialize)]
struct QuotaResponse {
    quota: ApiQuota,
}

#[derive(serde::Deserialize)]
struct PrivateTemplates {
    #[serde(default)]
    template_list: Vec<PrivateTemplate>,
}

#[derive(serde::Deserialize)]
struct AddedPrivateTemplate {
    template_id: String,
}

#[derive(serde::Deserialize)]
struct SubscribeTemplates {
    #[serde(default)]
    data: Vec<SubscribeTemplate>,
}

#[derive(serde::Deserialize)]
struct CallbackIps {
    #[serde(default)]
    ip_list: Vec<String>,
}

#[derive(serde::Deserialize)]
struct AddedSubscribeTemplate {
    #[serde(rename = "priTmplId")]
    pri_tmpl_id: String,
}

#[async_trait]
impl WeChatApi for HttpWeChatClient {
    async fn fetch_token(&self, app: &AppConfig) -> Result<IssuedToken, WeChatCallError> {
        match app.token_api {
            TokenApi::Stable => {
                let body = StableTokenRequest {
                    grant_type: "client_credential",
                    appid: &app.appid,
                    secret: app.app_secret.expose(),
                    force_refresh: false,
                };
                self.post("/cgi-bin/stable_token", &[], &body).await
            }
            TokenApi::Classic => {
                let query = [
                    ("grant_type", "client_credential"),
                    ("appid", app.appid.as_str()),
                    ("secret", app.app_secret.expose()),
                ];
                self.get("/cgi-bin/token", &query).await
            }
        }
    }

    async fn send_template(
        &self,
        token: &str,
        msg: &TemplateMessage,
    ) -> Result<SentMessage, WeChatCallError> {
        self.post(
            "/cgi-bin/message/template/send",
            &[("access_token", token)],
            msg,
        )
        .await
    }

    async fn send_subscribe(
        &self,
        token: &str,
        msg: &SubscribeMessage,
    ) -> Result<SentMessage, WeChatCallError> {
        self.post(
            "/cgi-bin/message/subscribe/send",
            &[("access_token", token)],
            msg,
        )
        .await
    }

    async fn send_biz_subscribe(
        &self,
        token: &str,
        msg: &BizSubscribeMessage,
    ) -> Result<SentMessage, WeChatCallError> {
        self.post(
            "/cgi-bin/message/subscribe/bizsend",
            &[("access_token", token)],
            msg,
        )
        .await
    }

    async fn send_custom(&self, token: &str, msg: &CustomMessage) -> Result<(), WeChatCallError> {
        let _: Ack = self
            .post(
                "/cgi-bin/message/custom/send",
                &[("access_token", token)],
                msg,
            )
            .await?;
        Ok(())
    }

    async fn get_followers(
        &self,
        token: &str,
        next_openid: Option<&str>,
    ) -> Result<FollowerPage, WeChatCallError> {
        let mut query = vec![("access_token", token)];
        if let Some(next) = next_openid.filter(|n| !n.is_empty()) {
            query.push(("next_openid", next));
        }
        self.get("/cgi-bin/user/get", &query).await
    }

    async fn user_info(&self, token: &str, openid: &str) -> Result<UserInfo, WeChatCallError> {
        self.get(
            "/cgi-bin/user/info",
            &[
                ("access_token", token),
                ("openid", openid),
                ("lang", "zh_CN"),
            ],
        )
        .await
    }

    async fn user_info_batch(
        &self,
        token: &str,
        openids: &[String],
    ) -> Result<Vec<UserInfo>, WeChatCallError> {
        let body = BatchGetRequest {
            user_list: openids
                .iter()
                .map(|o| BatchGetEntry {
                    openid: o,
                    lang: "zh_CN",
                })
                .collect(),
        };
        let resp: BatchGetResponse = self
            .post(
                "/cgi-bin/user/info/batchget",
                &[("access_token", token)],
                &body,
            )
            .await?;
        Ok(resp.user_info_list)
    }

    async fn code_to_session(
        &self,
        app: &AppConfig,
        code: &str,
    ) -> Result<CodeSession, WeChatCallError> {
        let query = [
            ("appid", app.appid.as_str()),
            ("secret", app.app_secret.expose()),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ];
        self.get("/sns/jscode2session", &query).await
    }

    async fn quota(&self, token: &str, cgi_path: &str) -> Result<ApiQuota, WeChatCallError> {
        let resp: QuotaResponse = self
            .post(
                "/cgi-bin/openapi/quota/get",
                &[("access_token", token)],
                &serde_json::json!({ "cgi_path": cgi_path }),
            )
            .await?;
        Ok(resp.quota)
    }

    async fn private_templates(
        &self,
        token: &str,
    ) -> Result<Vec<PrivateTemplate>, WeChatCallError> {
        let resp: PrivateTemplates = self
            .get(
                "/cgi-bin/template/get_all_private_template",
                &[("access_token", token)],
            )
            .await?;
        Ok(resp.template_list)
    }

    async fn add_private_template(
        &self,
        token: &str,
        template_id_short: &str,
        keyword_names: &[String],
    ) -> Result<String, WeChatCallError> {
        let resp: AddedPrivateTemplate = self
            .post(
                "/cgi-bin/template/api_add_template",
                &[("access_token", token)],
                &serde_json::json!({
                    "template_id_short": template_id_short,
                    "keyword_name_list": keyword_names,
                }),
            )
            .await?;
        Ok(resp.template_id)
    }

    async fn delete_private_template(
        &self,
        token: &str,
        template_id: &str,
    ) -> Result<(), WeChatCallError> {
        let _: Ack = self
            .post(
                "/cgi-bin/template/del_private_template",
                &[("access_token", token)],
                &serde_json::json!({ "template_id": template_id }),
            )
            .await?;
        Ok(())
    }

    async fn subscribe_templates(
        &self,
        token: &str,
    ) -> Result<Vec<SubscribeTemplate>, WeChatCallError> {
        let resp: SubscribeTemplates = self
            .get("/wxaapi/newtmpl/gettemplate", &[("access_token", token)])
            .await?;
        Ok(resp.data)
    }

    async fn add_subscribe_template(
        &self,
        token: &str,
        tid: &str,
        kid_list: &[i64],
        scene_desc: &str,
    ) -> Result<String, WeChatCallError> {
        let resp: AddedSubscribeTemplate = self
            .post(
                "/wxaapi/newtmpl/addtemplate",
                &[("access_token", token)],
                &serde_json::json!({ "tid": tid, "kidList": kid_list, "sceneDesc": scene_desc }),
            )
            .await?;
        Ok(resp.pri_tmpl_id)
    }

    async fn delete_subscribe_template(
        &self,
        token: &str,
        pri_tmpl_id: &str,
    ) -> Result<(), WeChatCallError> {
        let _: Ack = self
            .post(
                "/wxaapi/newtmpl/deltemplate",
                &[("access_token", token)],
                &serde_json::json!({ "priTmplId": pri_tmpl_id }),
            )
            .await?;
        Ok(())
    }

    async fn callback_ips(&self, token: &str) -> Result<Vec<String>, WeChatCallError> {
        let resp: CallbackIps = self
            .get("/cgi-bin/getcallbackip", &[("access_token", token)])
            .await?;
        Ok(resp.ip_list)
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
