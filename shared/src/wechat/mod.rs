//! WeChat: the endpoints wxpush calls, their payloads, their errors.
//!
//! [`WeChatApi`] is the seam: the real HTTP client ([`HttpWeChatClient`]) implements it,
//! and so could any test double; the project's tests use the real client against the
//! project's WeChat emulator instead.

mod blocked;
mod calls;
pub(crate) mod client;
mod error;
mod types;

pub use blocked::BlockedMessage;
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
    /// An official account's subscribe notification (`subscribe/bizsend`).
    async fn send_biz_subscribe(
        &self,
        token: &str,
        msg: &BizSubscribeMessage,
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
    /// `POST /cgi-bin/openapi/quota/get` for one API path (`/cgi-bin/message/template/send`).
    async fn quota(&self, token: &str, cgi_path: &str) -> Result<ApiQuota, WeChatCallError>;
    /// `GET /cgi-bin/template/get_all_private_template` (official accounts).
    async fn private_templates(&self, token: &str)
    -> Result<Vec<PrivateTemplate>, WeChatCallError>;
    /// `POST /cgi-bin/template/api_add_template`: the new template's id.
    async fn add_private_template(
        &self,
        token: &str,
        template_id_short: &str,
        keyword_names: &[String],
    ) -> Result<String, WeChatCallError>;
    /// `POST /cgi-bin/template/del_private_template`.
    async fn delete_private_template(
        &self,
        token: &str,
        template_id: &str,
    ) -> Result<(), WeChatCallError>;
    /// `GET /wxaapi/newtmpl/gettemplate` (mini programs, and official accounts' 订阅通知).
    async fn subscribe_templates(
        &self,
        token: &str,
    ) -> Result<Vec<SubscribeTemplate>, WeChatCallError>;
    /// `POST /wxaapi/newtmpl/addtemplate`: the new template's `priTmplId`.
    async fn add_subscribe_template(
        &self,
        token: &str,
        tid: &str,
        kid_list: &[i64],
        scene_desc: &str,
    ) -> Result<String, WeChatCallError>;
    /// `POST /wxaapi/newtmpl/deltemplate`.
    async fn delete_subscribe_template(
        &self,
        token: &str,
        pri_tmpl_id: &str,
    ) -> Result<(), WeChatCallError>;
    /// `GET /cgi-bin/getcallbackip`: the addresses WeChat pushes callbacks from, as WeChat
    /// lists them (single IPv4 addresses and CIDRs); see [`crate::callback_ips`].
    async fn callback_ips(&self, token: &str) -> Result<Vec<String>, WeChatCallError>;
    /// `POST /wxa/sec/queryblocktmplmsg`: up to `limit` (at most 100) messages of
    /// `template_id` WeChat intercepted, with an `id` above `largest_id`.
    async fn blocked_messages(
        &self,
        token: &str,
        template_id: &str,
        largest_id: i64,
        limit: u32,
    ) -> Result<Vec<BlockedMessage>, WeChatCallError>;
}
