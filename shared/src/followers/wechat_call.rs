//! A WeChat call with the follower sync's rules: a rejected token renewed once, transient
//! failures retried with backoff, every failed attempt counted.

use super::FollowerSync;
use super::run::Stop;
use crate::wechat::{ErrorClass, WeChatCallError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tracing::warn;

impl FollowerSync {
    /// [`FollowerSync::call_raw`], failing the run with `what` and the reason.
    pub(super) async fn call<T, Fut>(
        &self,
        appid: &str,
        what: &'static str,
        errors: &AtomicI64,
        f: impl Fn(String) -> Fut,
    ) -> Result<T, Stop>
    where
        Fut: Future<Output = Result<T, WeChatCallError>>,
    {
        self.call_raw(appid, errors, f)
            .await
            .map_err(|e| e.into_stop(what))
    }

    /// A WeChat call with the sync's rules: a token error invalidates the token and retries
    /// once; -1, 5xx and timeouts retry with backoff (reads are safe to repeat). Every failed
    /// attempt counts in `errors`.
    pub(super) async fn call_raw<T, Fut>(
        &self,
        appid: &str,
        errors: &AtomicI64,
        f: impl Fn(String) -> Fut,
    ) -> Result<T, RawStop>
    where
        Fut: Future<Output = Result<T, WeChatCallError>>,
    {
        let mut token = self
            .tokens
            .get(appid)
            .await
            .map_err(|e| RawStop::Token(e.to_string()))?;
        let mut token_retried = false;
        let attempts = self.config.attempts.max(1);
        // One more round than `attempts`: a token refresh does not use up an attempt.
        for attempt in 1..=attempts + 1 {
            let err = match f(token.token.expose().to_string()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            errors.fetch_add(1, Ordering::Relaxed);
            match err.class() {
                ErrorClass::TokenInvalid if !token_retried => {
                    token_retried = true;
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = self
                        .tokens
                        .get(appid)
                        .await
                        .map_err(|e| RawStop::Token(e.to_string()))?;
                }
                ErrorClass::Retryable if attempt < attempts => {
                    let backoff = self.config.backoff * (1 << (attempt - 1).min(6))
                        + Duration::from_millis(rand::random_range(0..50));
                    warn!(appid, attempt, error = %err, "WeChat call failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
                _ => return Err(RawStop::WeChat(err)),
            }
        }
        Err(RawStop::Token(
            "the access token kept being rejected".into(),
        ))
    }
}

/// Why a WeChat call failed for good: no token, or WeChat's answer.
pub(super) enum RawStop {
    Token(String),
    WeChat(WeChatCallError),
}

impl RawStop {
    pub(super) fn into_stop(self, what: &str) -> Stop {
        match self {
            RawStop::Token(e) => Stop::Fail(format!("no access token: {e}")),
            RawStop::WeChat(e) => Stop::Fail(format!("{what} failed: {e}")),
        }
    }
}
