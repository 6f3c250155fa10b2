//! WeChat's errors, typed and classified so callers decide by class, not by number.

use thiserror::Error;

/// An answer from WeChat with a non-zero `errcode`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("WeChat errcode {errcode}: {errmsg}")]
pub struct WeChatError {
    pub errcode: i64,
    pub errmsg: String,
}

/// What a caller should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// 40001 / 40014 / 42001 / 41001: the access_token is bad; invalidate it, refresh once, retry once.
    TokenInvalid,
    /// 45009 (daily quota) / 45011 (minute quota): back off; do not retry now.
    Quota,
    /// The user's own state refuses the message (no subscription, not a follower, outside the
    /// 48-hour window, blocked). An expected per-user outcome, not an incident.
    UserRefused,
    /// -1 (system busy), HTTP 5xx, connection failures: retry with backoff.
    Retryable,
    /// Anything else: a request or configuration error; retrying cannot help.
    Permanent,
}

/// The class of a WeChat `errcode` (docs/wechat.md#token-error-codes, #sending-messages).
pub fn classify_errcode(errcode: i64) -> ErrorClass {
    match errcode {
        40001 | 40014 | 42001 | 41001 => ErrorClass::TokenInvalid,
        45009 | 45011 => ErrorClass::Quota,
        43101 | 43004 | 43019 | 45015 | 45047 => ErrorClass::UserRefused,
        -1 => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

/// Why a call to WeChat did not succeed.
///
/// No variant carries a URL: WeChat puts the access_token (and, for `jscode2session`, the
/// AppSecret) in the query string.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WeChatCallError {
    #[error(transparent)]
    Api(#[from] WeChatError),
    #[error("WeChat answered HTTP {status}")]
    Http { status: u16 },
    /// The request went out but no answer came in time: WeChat may have acted on it.
    #[error("WeChat did not answer within the timeout; the request may have been delivered")]
    Timeout,
    /// The request may or may not have been sent (connection reset mid-way, ...).
    #[error("the connection to WeChat failed after the request was sent: {0}")]
    Interrupted(String),
    /// Nothing was sent (DNS, connect refused, TLS handshake).
    #[error("could not connect to WeChat: {0}")]
    Connect(String),
    #[error("WeChat's answer could not be read: {0}")]
    Decode(String),
}

impl WeChatCallError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WeChatCallError::Api(e) => classify_errcode(e.errcode),
            WeChatCallError::Http { status } if *status >= 500 => ErrorClass::Retryable,
            WeChatCallError::Http { .. } => ErrorClass::Permanent,
            WeChatCallError::Timeout
            | WeChatCallError::Interrupted(_)
            | WeChatCallError::Connect(_) => ErrorClass::Retryable,
            WeChatCallError::Decode(_) => ErrorClass::Permanent,
        }
    }

    /// True when WeChat may have acted on the request although we saw no success: a resend
    /// could deliver a message twice. Besides a lost answer (timeout, reset), that is an HTTP
    /// 5xx (a proxy or gateway between us and WeChat may answer it after WeChat acted) and a
    /// 200 whose body cannot be read. Only WeChat's own errcodes say for sure that nothing
    /// was done.
    pub fn maybe_delivered(&self) -> bool {
        match self {
            WeChatCallError::Timeout
            | WeChatCallError::Interrupted(_)
            | WeChatCallError::Decode(_) => true,
            WeChatCallError::Http { status } => *status >= 500,
            WeChatCallError::Api(_) | WeChatCallError::Connect(_) => false,
        }
    }

    pub fn errcode(&self) -> Option<i64> {
        match self {
            WeChatCallError::Api(e) => Some(e.errcode),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for code in [40001, 40014, 42001] {
            assert_eq!(classify_errcode(code), ErrorClass::TokenInvalid, "{code}");
        }
        assert_eq!(classify_errcode(45009), ErrorClass::Quota);
        assert_eq!(classify_errcode(43101), ErrorClass::UserRefused);
        assert_eq!(classify_errcode(-1), ErrorClass::Retryable);
        assert_eq!(classify_errcode(40125), ErrorClass::Permanent);
        assert_eq!(
            WeChatCallError::Http { status: 503 }.class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            WeChatCallError::Http { status: 404 }.class(),
            ErrorClass::Permanent
        );
        assert!(WeChatCallError::Timeout.maybe_delivered());
        assert!(!WeChatCallError::Connect("refused".into()).maybe_delivered());
        assert!(WeChatCallError::Http { status: 502 }.maybe_delivered());
        assert!(!WeChatCallError::Http { status: 404 }.maybe_delivered());
        assert!(WeChatCallError::Decode("not JSON".into()).maybe_delivered());
        assert!(
            !WeChatCallError::Api(WeChatError {
                errcode: -1,
                errmsg: "busy".into()
            })
            .maybe_delivered()
        );
    }
}
