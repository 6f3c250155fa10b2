//! The WeChat call of a send, with the retry rules of docs/api.md: the message as WeChat gets
//! it, the attempts within the invocation's budget, and how delivery ends when it does not
//! succeed.

use super::claim::ClaimState;
use super::refusal::send_error;
use super::service::Sender;
use super::validate::{Payload, SendRequest};
use crate::app::AppConfig;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::token::TokenError;
use crate::wechat::{
    BizSubscribeMessage, CustomMessage, ErrorClass, SubscribeMessage, TemplateMessage, WeChatApi,
    WeChatCallError,
};
use http::StatusCode;
use std::time::{Duration, Instant};
use tracing::warn;

/// Attempts at WeChat per send at most (the first included).
pub const MAX_ATTEMPTS: u32 = 4;
/// Time kept free at the end of the budget for recording the outcome.
const RESERVE: Duration = Duration::from_millis(1500);
/// How long after a first attempt a template message may still be resent with the same
/// `client_msg_id`. WeChat's dedupe window is not documented (docs/wechat.md#template-message-dedupe: unverified; reported
/// as 10 minutes): later than this, a takeover answers `unknown` instead of resending.
pub const TEMPLATE_RESEND_WINDOW_SECS: i64 = 540;

/// The message as WeChat gets it, for the app that sends it.
pub(super) enum WxMessage {
    Template(TemplateMessage),
    Subscribe(SubscribeMessage),
    BizSubscribe(BizSubscribeMessage),
    Custom(CustomMessage),
}

impl WxMessage {
    /// The WeChat body; a template message carries a `client_msg_id` derived from our
    /// message id (or the caller's), which is what makes resending it after a lost answer
    /// safe.
    pub(super) fn build(req: &SendRequest, openid: &str, id: &str) -> WxMessage {
        match &req.payload {
            Payload::Template(t) => WxMessage::Template(TemplateMessage {
                touser: openid.to_string(),
                template_id: t.template_id.clone(),
                url: t.url.clone(),
                miniprogram: t.miniprogram.clone(),
                client_msg_id: Some(
                    t.client_msg_id
                        .clone()
                        .unwrap_or_else(|| format!("wxp-{id}")),
                ),
                data: t.data.clone(),
            }),
            Payload::Subscribe(sm) => WxMessage::Subscribe(SubscribeMessage {
                touser: openid.to_string(),
                template_id: sm.template_id.clone(),
                page: sm.page.clone(),
                miniprogram_state: sm.miniprogram_state.clone(),
                lang: sm.lang.clone(),
                data: sm.data.clone(),
            }),
            Payload::OaSubscribe(sm) => WxMessage::BizSubscribe(BizSubscribeMessage {
                touser: openid.to_string(),
                template_id: sm.template_id.clone(),
                page: sm.page.clone(),
                miniprogram: sm.miniprogram.clone(),
                data: sm.data.clone(),
            }),
            Payload::Custom {
                body,
                customservice,
            } => WxMessage::Custom(CustomMessage {
                touser: openid.to_string(),
                body: body.clone(),
                customservice: customservice.clone(),
            }),
        }
    }

    /// Whether WeChat dedupes a resend of this message (a template's `client_msg_id`).
    pub(super) fn dedupes(&self) -> bool {
        matches!(self, WxMessage::Template(_))
    }

    /// One request to WeChat: the message's msgid, if WeChat gives one.
    async fn send(
        &self,
        wechat: &dyn WeChatApi,
        token: &str,
    ) -> Result<Option<i64>, WeChatCallError> {
        match self {
            WxMessage::Template(m) => wechat.send_template(token, m).await.map(|r| r.msgid),
            WxMessage::Subscribe(m) => wechat.send_subscribe(token, m).await.map(|r| r.msgid),
            WxMessage::BizSubscribe(m) => {
                wechat.send_biz_subscribe(token, m).await.map(|r| r.msgid)
            }
            WxMessage::Custom(m) => wechat.send_custom(token, m).await.map(|_| None),
        }
    }
}

/// How delivery ended when it did not succeed.
pub(super) enum Failure {
    /// WeChat refused the message for good (recorded `failed`).
    Refused(WeChatCallError),
    /// Nothing was delivered and a later try may work (token, quota, WeChat down).
    NotSent(ApiError),
    /// A request went out but its answer did not come back, or did not say that nothing was
    /// done: it may have been delivered. Never resent except where WeChat dedupes.
    Unknown(String),
    /// Another invocation took the Idempotency-Key over (this one outlived its lease):
    /// nothing was sent here and nothing is recorded.
    Superseded(ApiError),
}

/// A claim taken over from a holder that may have reached WeChat: resent only where WeChat
/// dedupes, and only within [`TEMPLATE_RESEND_WINDOW_SECS`] of that holder's first attempt.
fn check_resend(claim: Option<&ClaimState>, dedupes: bool) -> Result<(), Failure> {
    let Some(c) = claim.filter(|c| c.after_attempt) else {
        return Ok(());
    };
    if !dedupes {
        return Err(Failure::Unknown(
            "an earlier attempt with this Idempotency-Key may have reached WeChat and this message type cannot be resent safely".into(),
        ));
    }
    if let Some(first) = c.attempted_at
        && now_unix() - first > TEMPLATE_RESEND_WINDOW_SECS
    {
        return Err(Failure::Unknown(format!(
            "an earlier attempt may have reached WeChat {} s ago, beyond the {TEMPLATE_RESEND_WINDOW_SECS} s in which its client_msg_id is relied on to dedupe",
            now_unix() - first
        )));
    }
    Ok(())
}

/// No token: nothing sent, unless an earlier attempt may have gone out (never release the
/// key then).
fn token_failure(e: TokenError, maybe_sent: bool) -> Failure {
    if maybe_sent {
        Failure::Unknown(format!(
            "no token for a retry after an attempt that may have been delivered: {e}"
        ))
    } else {
        Failure::NotSent(e.into())
    }
}

/// The attempts ran out. Unreachable in practice: every retry needs another attempt to fit,
/// which the last attempt never has. Kept truthful all the same.
fn attempts_exhausted(appid: &str, maybe_sent: bool) -> Failure {
    if maybe_sent {
        Failure::Unknown("retries ended after an attempt that may have been delivered".into())
    } else {
        Failure::NotSent(ApiError::WeChat {
            code: "wechat_unavailable",
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "app {appid}: WeChat did not accept the message in {MAX_ATTEMPTS} attempts"
            ),
            errcode: None,
        })
    }
}

impl Sender {
    /// Calls WeChat with the rules of docs/api.md: a token error invalidates that token and retries
    /// once; -1 retries with jittered backoff while the budget allows; an attempt that may have
    /// been delivered (timeout, reset, HTTP 5xx, unreadable answer) is resent only where WeChat
    /// dedupes (template messages carry a `client_msg_id`) and otherwise ends `unknown`. Every
    /// way out after such an attempt is `unknown`, never "not sent".
    ///
    /// With a claim, the claim moves to `attempting` just before the first request leaves.
    pub(super) async fn deliver(
        &self,
        via: &AppConfig,
        wx: &WxMessage,
        claim: Option<&mut ClaimState>,
        deadline: Instant,
    ) -> Result<Option<i64>, Failure> {
        let appid = via.appid.as_str();
        let dedupes = wx.dedupes();
        check_resend(claim.as_deref(), dedupes)?;
        let mut maybe_sent = claim.as_ref().is_some_and(|c| c.after_attempt);
        let mut token = self
            .tokens
            .get(appid)
            .await
            .map_err(|e| token_failure(e, maybe_sent))?;
        if let Some(c) = claim
            && !c.after_attempt
        {
            self.mark_attempting(c).await?;
        }
        let mut token_retried = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let err = match wx
                .send(self.tokens.wechat().as_ref(), token.token.expose())
                .await
            {
                Ok(msgid) => return Ok(msgid),
                Err(e) => e,
            };
            let backoff = Duration::from_millis(100 * (1 << attempt.min(5)))
                + Duration::from_millis(rand::random_range(0..100));
            let another = attempt < MAX_ATTEMPTS
                && Instant::now() + backoff + self.attempt_timeout + RESERVE < deadline;
            if err.maybe_delivered() {
                maybe_sent = true;
                if dedupes && another {
                    warn!(appid, attempt, error = %err, "WeChat's answer is missing or unreadable; resending with the same client_msg_id");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                return Err(Failure::Unknown(err.to_string()));
            }
            match err.class() {
                ErrorClass::TokenInvalid if !token_retried && another => {
                    token_retried = true;
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = self
                        .tokens
                        .get(appid)
                        .await
                        .map_err(|e| token_failure(e, maybe_sent))?;
                }
                ErrorClass::Retryable if another => {
                    warn!(appid, attempt, error = %err, "WeChat busy; retrying");
                    tokio::time::sleep(backoff).await;
                }
                _ if maybe_sent => {
                    return Err(Failure::Unknown(format!(
                        "{err}, after an attempt that may have been delivered"
                    )));
                }
                ErrorClass::Retryable | ErrorClass::Quota | ErrorClass::TokenInvalid => {
                    return Err(Failure::NotSent(send_error(appid, &err)));
                }
                _ => return Err(Failure::Refused(err)),
            }
        }
        Err(attempts_exhausted(appid, maybe_sent))
    }
}
