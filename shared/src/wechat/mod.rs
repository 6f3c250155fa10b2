//! WeChat: the endpoints wxpush calls, their payloads, their errors.
//!
//! [`WeChatApi`] is the seam: the real HTTP client ([`HttpWeChatClient`]) implements it,
//! and so could any test double; the project's tests use the real client against the
//! project's WeChat emulator instead.

pub(crate) mod client;
mod error;
mod types;

pub use client::{HttpWeChatClient, WeChatClientConfig};
pub use error::{ErrorClass, WeChatCallError, WeChatError, classify_errcode};
pub use types::*;

use crate::app::AppConfig;
use async_trait::async_trait;

/// The WeChat server API, as wxpush uses it.
///
/// Calls that need an access_token take it as `&str`; calls that need the AppSecret take
/// the whole [`AppConfig`]. No implementation may log either.
#[async_trait]
pub trait WeChatApi: Send + Sync {
    /// A token from `/cgi-bin/stable_token` (normal mode) or `/cgi-bin/token`, per `app.token_api`.
    async fn fetch_token(&self, app: &AppConfig) -> Result<IssuedToken, WeChatCallError>;
    async fn send_template(
        &self,
        token: &str,
        msg: &TemplateMessage,
    ) -> Result<SentMessage, WeChatCallError>;
    async fn send_subscribe(
        &self,
        token: &str,
        msg: &SubscribeMessage,
    ) -> Result<SentMessage, WeChatCallError>;
    async fn send_custom(&self, token: &str, msg: &CustomMessage) -> Result<(), WeChatCallError>;
    async fn get_followers(
        &self,
        token: &str,
        next_openid: Option<&str>,
    ) -> Result<FollowerPage, WeChatCallError>;
    async fn user_info(&self, token: &str, openid: &str) -> Result<UserInfo, WeChatCallError>;
    async fn user_info_batch(
        &self,
        token: &str,
        openids: &[String],
    ) -> Result<Vec<UserInfo>, WeChatCallError>;
    async fn code_to_session(
        &self,
        app: &AppConfig,
        code: &str,
    ) -> Result<CodeSession, WeChatCallError>;
}
