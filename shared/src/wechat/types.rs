//! WeChat request and response bodies (docs/wechat.md#access-tokens, #sending-messages, #users-and-identity).

use crate::app::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An access_token as WeChat issued it.
#[derive(Clone, Debug, Deserialize)]
pub struct IssuedToken {
    pub access_token: Secret,
    pub expires_in: i64,
}

/// `{"value": "..."}` in a template or subscribe message's `data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataValue {
    pub value: String,
    /// Ignored by WeChat since 2023-05-04; kept so old callers' payloads round-trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiniProgramLink {
    pub appid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// `POST /cgi-bin/message/template/send` (official account).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramLink>,
    /// WeChat does not send the same `client_msg_id` twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub data: BTreeMap<String, DataValue>,
}

/// `POST /cgi-bin/message/subscribe/send` (mini program).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscribeMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub data: BTreeMap<String, DataValue>,
}

/// `POST /cgi-bin/message/subscribe/bizsend` (an official account's 订阅通知, docs/wechat.md#templates-and-subscribe-notifications).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BizSubscribeMessage {
    pub touser: String,
    pub template_id: String,
    /// A web page the notification opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramLink>,
    pub data: BTreeMap<String, DataValue>,
}

/// `POST /cgi-bin/message/custom/send`: `touser`, `msgtype` and the object named by it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMessage {
    pub touser: String,
    #[serde(flatten)]
    pub body: CustomBody,
    /// Sends as this customer-service agent (`{"kf_account": "agent@account"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customservice: Option<CustomService>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomService {
    pub kf_account: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum CustomBody {
    Text {
        text: CustomText,
    },
    Image {
        image: CustomMedia,
    },
    Voice {
        voice: CustomMedia,
    },
    Video {
        video: CustomVideo,
    },
    Music {
        music: CustomMusic,
    },
    News {
        news: CustomNews,
    },
    /// A published article by its media id (the "图文消息" of the material library).
    Mpnews {
        mpnews: CustomMedia,
    },
    /// A published article by its `article_id` (freepublish).
    Mpnewsarticle {
        mpnewsarticle: CustomArticleId,
    },
    Msgmenu {
        msgmenu: CustomMenu,
    },
    Wxcard {
        wxcard: CustomCard,
    },
    Miniprogrampage {
        miniprogrampage: CustomMiniProgramPage,
    },
    /// Mini programs only: a link card.
    Link {
        link: CustomLink,
    },
}

impl CustomBody {
    /// The `msgtype` WeChat gets.
    pub fn msgtype(&self) -> &'static str {
        match self {
            CustomBody::Text { .. } => "text",
            CustomBody::Image { .. } => "image",
            CustomBody::Voice { .. } => "voice",
            CustomBody::Video { .. } => "video",
            CustomBody::Music { .. } => "music",
            CustomBody::News { .. } => "news",
            CustomBody::Mpnews { .. } => "mpnews",
            CustomBody::Mpnewsarticle { .. } => "mpnewsarticle",
            CustomBody::Msgmenu { .. } => "msgmenu",
            CustomBody::Wxcard { .. } => "wxcard",
            CustomBody::Miniprogrampage { .. } => "miniprogrampage",
            CustomBody::Link { .. } => "link",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomVideo {
    pub media_id: String,
    pub thumb_media_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMusic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub musicurl: String,
    pub hqmusicurl: String,
    pub thumb_media_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomArticleId {
    pub article_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMenu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_content: Option<String>,
    pub list: Vec<CustomMenuItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_content: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMenuItem {
    pub id: String,
    pub content: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomCard {
    pub card_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomLink {
    pub title: String,
    pub description: String,
    pub url: String,
    pub thumb_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomText {
    pub content: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMedia {
    pub media_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomNews {
    pub articles: Vec<CustomArticle>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomArticle {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMiniProgramPage {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    pub pagepath: String,
    pub thumb_media_id: String,
}

/// A send WeChat accepted. `msgid` matches the later TEMPLATESENDJOBFINISH `MsgID`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    #[serde(default)]
    pub msgid: Option<i64>,
}

/// One page of `GET /cgi-bin/user/get`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FollowerPage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub data: Option<FollowerOpenids>,
    #[serde(default)]
    pub next_openid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FollowerOpenids {
    #[serde(default)]
    pub openid: Vec<String>,
}

impl FollowerPage {
    pub fn openids(&self) -> &[String] {
        self.data
            .as_ref()
            .map(|d| d.openid.as_slice())
            .unwrap_or(&[])
    }
}

/// `GET /cgi-bin/user/info` and each entry of `user/info/batchget`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserInfo {
    /// 0: not following (most other fields are then absent).
    #[serde(default)]
    pub subscribe: i64,
    pub openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_scene: Option<String>,
}

/// `POST /cgi-bin/openapi/quota/get`: one API's daily quota for the app (docs/wechat.md#quotas-and-rate-limits).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiQuota {
    pub daily_limit: u64,
    pub used: u64,
    pub remain: u64,
}

/// One entry of `GET /cgi-bin/template/get_all_private_template` (an official account's
/// template messages, docs/wechat.md#templates-and-subscribe-notifications).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrivateTemplate {
    pub template_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
}

/// One entry of `GET /wxaapi/newtmpl/gettemplate` (subscribe templates: a mini program's, and
/// an official account's 订阅通知). `type` 2 = one-time, 3 = long-term.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SubscribeTemplate {
    #[serde(rename = "priTmplId")]
    pub pri_tmpl_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
    #[serde(rename = "type", default)]
    pub kind: i64,
}

/// `GET /sns/jscode2session`. The `session_key` is a [`Secret`]: never returned or logged.
#[derive(Clone, Debug, Deserialize)]
pub struct CodeSession {
    pub openid: String,
    #[serde(default)]
    pub unionid: Option<String>,
    pub session_key: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_message_shape() {
        let m = CustomMessage {
            touser: "o1".into(),
            body: CustomBody::Text {
                text: CustomText {
                    content: "hi".into(),
                },
            },
            customservice: None,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}})
        );
    }

    #[test]
    fn follower_page_without_data() {
        let p: FollowerPage =
            serde_json::from_str(r#"{"total":0,"count":0,"next_openid":""}"#).unwrap();
        assert!(p.openids().is_empty());
    }
}
