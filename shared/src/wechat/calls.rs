//! [`WeChatApi`] over the HTTP client: each WeChat endpoint wxpush calls, with the request
//! and answer shapes only that endpoint uses.

use super::client::HttpWeChatClient;
use super::error::WeChatCallError;
use super::types::*;
use super::{BlockedMessage, WeChatApi};
use crate::app::{AppConfig, TokenApi};
use async_trait::async_trait;
use serde::Serialize;

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

    async fn blocked_messages(
        &self,
        token: &str,
        template_id: &str,
        largest_id: i64,
        limit: u32,
    ) -> Result<Vec<BlockedMessage>, WeChatCallError> {
        let body = serde_json::json!({
            "tmpl_msg_id": template_id, "largest_id": largest_id, "limit": limit,
        });
        let answer: serde_json::Value = self
            .post(
                "/wxa/sec/queryblocktmplmsg",
                &[("access_token", token)],
                &body,
            )
            .await?;
        BlockedMessage::list(&answer)
    }
}
