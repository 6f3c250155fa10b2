//! `GET /v1/apps/{appid}/quota`: the quota WeChat keeps for one of its APIs
//! (`openapi/quota/get`), one WeChat call.

use crate::error::ApiError;
use crate::token::TokenManager;
use crate::token_retry::{WeChatOrApi, with_token};
use serde_json::{Value, json};

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
