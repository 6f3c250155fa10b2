//! Account management calls of the `/v1` API that are one WeChat call each: the quota of
//! an API (`openapi/quota/get`), and the token-retry rule they share with the template
//! management in [`crate::templates`].

use crate::error::ApiError;
use crate::token::TokenManager;
use crate::wechat::{ErrorClass, WeChatApi, WeChatCallError};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use tracing::warn;

/// Calls WeChat with `appid`'s access_token. A token WeChat refuses (40001/40014/42001) is
/// invalidated (compare-and-invalidate) and the call made once more with a fresh one; every
/// other failure maps through [`ApiError::from_wechat`]. For calls that are safe to repeat
/// (reads, and writes WeChat refused without acting).
pub async fn with_token<T, F, Fut>(
    tokens: &TokenManager,
    appid: &str,
    call: F,
) -> Result<T, WeChatOrApi>
where
    F: Fn(Arc<dyn WeChatApi>, String) -> Fut,
    Fut: Future<Output = Result<T, WeChatCallError>>,
{
    let mut token = tokens.get(appid).await.map_err(ApiError::from)?;
    let mut retried = false;
    loop {
        match call(tokens.wechat().clone(), token.token.expose().to_string()).await {
            Ok(v) => return Ok(v),
            Err(e) if e.class() == ErrorClass::TokenInvalid && !retried => {
                warn!(appid, errcode = ?e.errcode(), "access_token refused; refreshing once");
                retried = true;
                let _ = tokens.invalidate(appid, &token).await;
                token = tokens.get(appid).await.map_err(ApiError::from)?;
            }
            Err(e) => return Err(WeChatOrApi::WeChat(e)),
        }
    }
}

/// What [`with_token`] failed with: WeChat's own answer (for callers that map some codes
/// themselves) or an API error (no token).
#[derive(Debug)]
pub enum WeChatOrApi {
    WeChat(WeChatCallError),
    Api(ApiError),
}

impl From<ApiError> for WeChatOrApi {
    fn from(e: ApiError) -> Self {
        WeChatOrApi::Api(e)
    }
}

impl WeChatOrApi {
    /// The API error, WeChat's through the common errcode mapping.
    pub fn into_api(self, appid: &str) -> ApiError {
        match self {
            WeChatOrApi::WeChat(e) => ApiError::from_wechat(appid, &e),
            WeChatOrApi::Api(e) => e,
        }
    }
}

/// A WeChat API path as `openapi/quota/get` takes it: `/cgi-bin/...`-like, at most 256
/// characters of letters, digits and `/_-.`.
pub fn check_cgi_path(path: Option<&str>) -> Result<&str, ApiError> {
    let invalid = |message: &str| ApiError::Validation {
        field: "path".into(),
        message: message.into(),
    };
    let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
        invalid("the query parameter is required, e.g. ?path=/cgi-bin/message/template/send")
    })?;
    if !path.starts_with('/')
        || path.len() > 256
        || path.contains("//")
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
    {
        return Err(invalid(
            "must be a WeChat API path starting with /, such as /cgi-bin/message/template/send",
        ));
    }
    Ok(path)
}

/// `GET /v1/apps/{appid}/quota?path=...`: `{"path", "daily_limit", "used", "remain"}`.
pub async fn quota(
    tokens: &TokenManager,
    appid: &str,
    path: Option<&str>,
) -> Result<Value, ApiError> {
    tokens.secrets().app(appid).await?;
    let path = check_cgi_path(path)?;
    let q = with_token(tokens, appid, |wechat, token| async move {
        wechat.quota(&token, path).await
    })
    .await
    .map_err(|e| match e {
        WeChatOrApi::WeChat(e) if e.errcode() == Some(76021) => ApiError::Validation {
            field: "path".into(),
            message: format!("WeChat keeps no quota for {path} ({e})"),
        },
        other => other.into_api(appid),
    })?;
    Ok(json!({
        "path": path,
        "daily_limit": q.daily_limit,
        "used": q.used,
        "remain": q.remain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_paths() {
        assert_eq!(
            check_cgi_path(Some("/cgi-bin/message/template/send")).unwrap(),
            "/cgi-bin/message/template/send"
        );
        for bad in [
            None,
            Some(""),
            Some("cgi-bin/token"),
            Some("/cgi-bin/token?x=1"),
            Some("/a b"),
            Some("//evil"),
        ] {
            assert!(
                matches!(check_cgi_path(bad), Err(ApiError::Validation { ref field, .. }) if field == "path"),
                "{bad:?}"
            );
        }
    }
}
