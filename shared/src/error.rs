//! The API's errors and their one mapping to HTTP.
//!
//! Every error leaves as `{"error": {"code", "message", "wechat_errcode"?}}` with the status
//! from [`ApiError::status`]. Messages are written for a human and never contain a secret.

use crate::secrets::ConfigError;
use crate::store::StoreError;
use crate::token::TokenError;
use crate::wechat::{ErrorClass, WeChatCallError};
use http::StatusCode;
use serde_json::json;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("no route for {0}")]
    NotFound(String),
    /// `allow` is the route's method(s), sent back in the `Allow` header.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("missing or wrong credentials")]
    Unauthorized,
    /// A `/v1` request without a principal (no IAM principal in API Gateway's request
    /// context, and not vouched for by the local server).
    #[error("{0}")]
    Unauthenticated(String),
    /// A callback whose signature, or timestamp, does not check out.
    #[error("{0}")]
    SignatureRejected(String),
    #[error("app {appid} is not configured in wxpush")]
    UnknownApp { appid: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// Recipients of a batch that cannot be sent to: (index in the request, why), the first
    /// [`crate::batch::MAX_LISTED_INVALID`] of `count`.
    #[error("{count} recipient(s) are not valid; the batch was not created")]
    InvalidRecipients {
        count: usize,
        listed: Vec<(usize, String)>,
    },
    #[error("app {appid} is misconfigured: {message}")]
    Misconfigured { appid: String, message: String },
    #[error("{message}")]
    WeChat {
        code: &'static str,
        status: StatusCode,
        message: String,
        errcode: Option<i64>,
    },
    /// wxpush held a message back before WeChat: what it knows of the user says WeChat would
    /// not take it, or the app's rules do not allow it (the customer-service window, a
    /// grant, the daily cap). `state` holds fields the caller can act on, added to the error
    /// (`service_window`, `subscription`, `cap`).
    #[error("{message}")]
    Withheld {
        code: &'static str,
        status: StatusCode,
        message: String,
        state: Vec<(&'static str, serde_json::Value)>,
    },
    /// The request clashes with the current state (a run in progress, say).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The thing asked about does not exist (yet).
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    #[error("the state store is unavailable: {0}")]
    StoreUnavailable(String),
    #[error("the job queue is unavailable: {0}")]
    QueueUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownApp { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized
            | ApiError::Unauthenticated(_)
            | ApiError::SignatureRejected(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::InvalidRecipients { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Misconfigured { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::WeChat { status, .. } | ApiError::Withheld { status, .. } => *status,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Missing { .. } => StatusCode::NOT_FOUND,
            ApiError::StoreUnavailable(_) | ApiError::QueueUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The machine-readable `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::SignatureRejected(_) => "invalid_signature",
            ApiError::UnknownApp { .. } => "unknown_app",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::InvalidRecipients { .. } => "invalid_recipients",
            ApiError::Misconfigured { .. } => "app_misconfigured",
            ApiError::WeChat { code, .. } | ApiError::Withheld { code, .. } => code,
            ApiError::Conflict { code, .. } | ApiError::Missing { code, .. } => code,
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::QueueUnavailable(_) => "queue_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn wechat_errcode(&self) -> Option<i64> {
        match self {
            ApiError::WeChat { errcode, .. } => *errcode,
            _ => None,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Some(errcode) = self.wechat_errcode() {
            error["wechat_errcode"] = json!(errcode);
        }
        if let ApiError::Validation { field, .. } = self {
            error["field"] = json!(field);
        }
        if let ApiError::Withheld { state, .. } = self {
            for (name, value) in state {
                error[*name] = value.clone();
            }
        }
        if let ApiError::InvalidRecipients { listed, .. } = self {
            error["recipients"] = listed
                .iter()
                .map(|(index, why)| json!({"index": index, "error": why}))
                .collect();
        }
        json!({ "error": error })
    }

    /// A failed WeChat call made for `appid`, mapped to the status a caller can act on.
    pub fn from_wechat(appid: &str, err: &WeChatCallError) -> ApiError {
        let errcode = err.errcode();
        let (code, status) = match (err.class(), errcode) {
            (_, Some(40125 | 40013 | 41004 | 40243)) => {
                ("wechat_credentials_rejected", StatusCode::BAD_GATEWAY)
            }
            (_, Some(40164 | 61004 | 89501 | 89503 | 89506 | 89507)) => {
                ("wechat_ip_not_allowed", StatusCode::BAD_GATEWAY)
            }
            (ErrorClass::Quota, _) => ("wechat_quota_exceeded", StatusCode::TOO_MANY_REQUESTS),
            (ErrorClass::TokenInvalid, _) => ("wechat_token_rejected", StatusCode::BAD_GATEWAY),
            (ErrorClass::UserRefused, _) => ("wechat_user_refused", StatusCode::FORBIDDEN),
            (_, None) if matches!(err, WeChatCallError::Timeout) => {
                ("wechat_timeout", StatusCode::GATEWAY_TIMEOUT)
            }
            (ErrorClass::Retryable, _) => ("wechat_unavailable", StatusCode::SERVICE_UNAVAILABLE),
            (ErrorClass::Permanent, _) => ("wechat_error", StatusCode::BAD_GATEWAY),
        };
        ApiError::WeChat {
            code,
            status,
            message: format!("WeChat call for app {appid} failed: {err}"),
            errcode,
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::UnknownApp { appid } => ApiError::UnknownApp { appid },
            ConfigError::Backend(m) => ApiError::StoreUnavailable(m),
            other => {
                let appid = other.appid().unwrap_or_default().to_string();
                ApiError::Misconfigured {
                    appid,
                    message: other.to_string(),
                }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::StoreUnavailable(e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Config(c) => c.into(),
            TokenError::WeChat { appid, source } => ApiError::from_wechat(&appid, &source),
            TokenError::Store(s) => s.into(),
            e @ TokenError::RefreshInProgress { .. } => ApiError::WeChat {
                code: "token_refresh_in_progress",
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
                errcode: None,
            },
            e @ TokenError::RecentlyFailed { errcode, .. } => ApiError::WeChat {
                code: "token_unavailable",
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
                errcode,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::WeChatError;

    #[test]
    fn wechat_mapping() {
        let quota = ApiError::from_wechat(
            "wx0",
            &WeChatError {
                errcode: 45009,
                errmsg: "quota".into(),
            }
            .into(),
        );
        assert_eq!(quota.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(quota.body()["error"]["wechat_errcode"], 45009);
        let secret = ApiError::from_wechat(
            "wx0",
            &WeChatError {
                errcode: 40125,
                errmsg: "invalid appsecret".into(),
            }
            .into(),
        );
        assert_eq!(secret.code(), "wechat_credentials_rejected");
        let busy = ApiError::from_wechat("wx0", &WeChatCallError::Http { status: 503 });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.body()["error"].get("wechat_errcode").is_none());
        assert_eq!(
            ApiError::from_wechat("wx0", &WeChatCallError::Timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
