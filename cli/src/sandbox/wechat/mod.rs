//! WeChat's paths: the handlers of `api.weixin.qq.com`'s endpoints, one file per family,
//! each answering through `Emulator::call` from the world's rules.

mod call;
mod login;
mod messages;
mod quotas;
mod templates;
mod tokens;
mod users;

use super::Emulator;
use super::callback_ips;
use super::world::{WxErr, wx_err};
use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use serde_json::Value;

impl Emulator {
    pub(super) fn wechat_routes(&self) -> Router {
        Router::new()
            .route("/cgi-bin/token", get(tokens::classic_token))
            .route("/cgi-bin/stable_token", post(tokens::stable_token))
            .route(
                "/cgi-bin/message/template/send",
                post(messages::template_send),
            )
            .route(
                "/cgi-bin/message/subscribe/send",
                post(messages::subscribe_send),
            )
            .route(
                "/cgi-bin/message/subscribe/bizsend",
                post(messages::biz_subscribe_send),
            )
            .route("/cgi-bin/message/custom/send", post(messages::custom_send))
            .route(
                "/cgi-bin/message/wxopen/template/uniform_send",
                post(messages::uniform_send),
            )
            .route("/cgi-bin/user/get", get(users::user_get))
            .route("/cgi-bin/user/info", get(users::user_info))
            .route("/cgi-bin/user/info/batchget", post(users::user_info_batch))
            .route("/sns/jscode2session", get(login::code_to_session))
            .route("/cgi-bin/openapi/quota/get", post(quotas::quota_get))
            .route(
                "/cgi-bin/template/get_all_private_template",
                get(templates::private_templates),
            )
            .route(
                "/cgi-bin/template/api_add_template",
                post(templates::add_private_template),
            )
            .route(
                "/cgi-bin/template/del_private_template",
                post(templates::delete_private_template),
            )
            .route(
                "/cgi-bin/getcallbackip",
                get(callback_ips::get_callback_ips),
            )
            .route(
                "/wxaapi/newtmpl/gettemplate",
                get(templates::subscribe_templates),
            )
            .route(
                "/wxaapi/newtmpl/addtemplate",
                post(templates::add_subscribe_template),
            )
            .route(
                "/wxa/sec/queryblocktmplmsg",
                post(templates::blocked_messages),
            )
            .route(
                "/wxaapi/newtmpl/deltemplate",
                post(templates::delete_subscribe_template),
            )
            .with_state(self.clone())
    }
}

fn parse_json(body: &Bytes) -> Result<Value, WxErr> {
    serde_json::from_slice(body).map_err(|_| wx_err(47001, "data format error"))
}
