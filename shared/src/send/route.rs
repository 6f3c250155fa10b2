//! Where a message goes: the app whose token sends it (checked against the message type and
//! the app's kind) and the recipient's openid there, a unionid looked up in the store. Reads
//! nothing from WeChat.

use super::service::Sender;
use super::validate::{
    MINI_PROGRAM_CUSTOM_MSGTYPES, MessageKind, Payload, Recipient, SendRequest, check_recipient,
};
use crate::app::{AppConfig, AppKind};
use crate::error::ApiError;
use crate::store::{ItemKey, ItemRead};
use crate::templates::{TemplateKind, check_data_keys};
use crate::wechat::{CustomBody, DataValue};
use http::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A message's route: see [`Sender::route`].
#[derive(Clone, Debug)]
pub struct Routed {
    /// The app the message was asked of.
    pub app: String,
    /// The app whose token sends it (the linked official account for `uniform`).
    pub via: Arc<AppConfig>,
    pub openid: String,
    pub unionid: Option<String>,
}

/// A mini program sends text, image, link and miniprogrampage customer-service messages; an
/// official account every other msgtype but link (docs/wechat.md#customer-service-messages).
fn check_custom_msgtype(app: &AppConfig, body: &CustomBody) -> Result<(), ApiError> {
    let msgtype = body.msgtype();
    let mini = MINI_PROGRAM_CUSTOM_MSGTYPES.contains(&msgtype);
    let ok = match app.kind {
        AppKind::MiniProgram => mini,
        AppKind::OfficialAccount => msgtype != "link",
    };
    if let (AppKind::OfficialAccount, CustomBody::Miniprogrampage { miniprogrampage }) =
        (app.kind, body)
        && miniprogrampage.appid.is_none()
    {
        return Err(ApiError::Validation {
            field: "miniprogrampage.appid".into(),
            message: format!(
                "app {}: an official account names the mini program the page belongs to",
                app.appid
            ),
        });
    }
    if ok {
        return Ok(());
    }
    let (who, allowed) = match app.kind {
        AppKind::MiniProgram => ("a mini program", MINI_PROGRAM_CUSTOM_MSGTYPES.join(", ")),
        AppKind::OfficialAccount => ("an official account", "every msgtype but link".to_string()),
    };
    Err(ApiError::Validation {
        field: "msgtype".into(),
        message: format!(
            "app {}: {who} cannot send {msgtype} customer-service messages ({allowed})",
            app.appid
        ),
    })
}

/// A `uniform` posted to a mini program's route would go out through another app (its
/// linked official account), past a policy scoped to the mini program: refused, naming the
/// form that is posted to the official account's route.
fn uniform_moved(mp: &AppConfig) -> ApiError {
    let oa = mp
        .linked_official_account
        .as_deref()
        .unwrap_or("{linked official account}");
    ApiError::Validation {
        field: "type".into(),
        message: format!(
            "app {mp_id}: \"uniform\" goes out through the official account, so it is posted to that account's route: POST /v1/apps/{oa}/messages with \"to\": {{\"openid\": \"<mini program openid>\", \"appid\": \"{mp_id}\"}} (or {{\"unionid\": ...}})",
            mp_id = mp.appid
        ),
    }
}

impl Sender {
    /// Where a message goes: the app whose token sends it and the recipient's openid there
    /// (a unionid looked up in the store). Reads nothing from WeChat.
    pub async fn route(&self, app: &Arc<AppConfig>, req: &SendRequest) -> Result<Routed, ApiError> {
        let via = self.check_request(app, req).await?;
        let (openid, unionid) = self.resolve(&via, req).await?;
        Ok(Routed {
            app: app.appid.clone(),
            via,
            openid,
            unionid,
        })
    }

    /// The app whose token sends `req`, with every check that needs the app: the message
    /// type against the app's kind, a customer-service msgtype against what that kind may
    /// send. Reads nothing from WeChat.
    pub async fn check_request(
        &self,
        app: &Arc<AppConfig>,
        req: &SendRequest,
    ) -> Result<Arc<AppConfig>, ApiError> {
        let via = self.sending_app(app, req.kind).await?;
        match &req.payload {
            Payload::Custom { body, .. } => check_custom_msgtype(&via, body)?,
            Payload::Template(t) => {
                self.check_keys(&via, &t.template_id, &t.data, false)
                    .await?
            }
            Payload::Subscribe(sm) => {
                self.check_keys(&via, &sm.template_id, &sm.data, true)
                    .await?
            }
            Payload::OaSubscribe(sm) => {
                self.check_keys(&via, &sm.template_id, &sm.data, true)
                    .await?
            }
        }
        Ok(via)
    }

    /// `data` against the template, when a cached listing of the sending app has it (no
    /// WeChat call; an unknown template is left to WeChat).
    async fn check_keys(
        &self,
        via: &AppConfig,
        template_id: &str,
        data: &BTreeMap<String, DataValue>,
        subscribe: bool,
    ) -> Result<(), ApiError> {
        if let Some(t) = self.templates.known(&via.appid, template_id).await
            && (t.kind != TemplateKind::Template) == subscribe
        {
            check_data_keys(&t, data)?;
        }
        Ok(())
    }

    /// The app whose token sends the message, checked against the message type.
    pub async fn sending_app(
        &self,
        app: &Arc<AppConfig>,
        kind: MessageKind,
    ) -> Result<Arc<AppConfig>, ApiError> {
        let wrong = |msg: &str| ApiError::Validation {
            field: "type".into(),
            message: format!("app {}: {msg}", app.appid),
        };
        match (kind, app.kind) {
            (MessageKind::Template, AppKind::OfficialAccount)
            | (MessageKind::Subscribe, AppKind::MiniProgram)
            | (MessageKind::OaSubscribe, AppKind::OfficialAccount)
            | (MessageKind::Custom, _) => Ok(app.clone()),
            (MessageKind::OaSubscribe, _) => Err(wrong(
                "\"oa_subscribe\" (订阅通知) is sent by an official account; a mini program sends \"subscribe\"",
            )),
            (MessageKind::Template, _) => Err(wrong(
                "template messages are sent by an official account; use \"uniform\" from a mini program",
            )),
            (MessageKind::Subscribe, _) => {
                Err(wrong("subscribe messages are sent by a mini program"))
            }
            // Sent by the official account it goes out through, on that account's route (IAM
            // scopes it there); the mini program's openid is only looked up.
            (MessageKind::Uniform, AppKind::OfficialAccount) => Ok(app.clone()),
            (MessageKind::Uniform, AppKind::MiniProgram) => Err(uniform_moved(app)),
        }
    }

    /// The unionid of a mini program user of a `uniform` message: `mp` must be a mini
    /// program linked to `via` (the official account it goes out through), so a caller of
    /// the official account's route reads no other app's users.
    async fn mini_program_unionid(
        &self,
        via: &AppConfig,
        mp: &str,
        openid: &str,
    ) -> Result<Option<String>, ApiError> {
        let linked = match self.tokens.secrets().app(mp).await {
            Ok(a) => {
                a.kind == AppKind::MiniProgram
                    && a.linked_official_account.as_deref() == Some(via.appid.as_str())
            }
            Err(crate::secrets::ConfigError::UnknownApp { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !linked {
            return Err(ApiError::Validation {
                field: "to.appid".into(),
                message: format!(
                    "app {mp} is not a mini program linked to {} (its linked_official_account)",
                    via.appid
                ),
            });
        }
        let account = self.store.get(&ItemKey::account(mp, openid)).await?;
        Ok(account.as_ref().and_then(|a| a.string("unionid")))
    }

    /// (openid in the sending app, unionid if known).
    async fn resolve(
        &self,
        via: &AppConfig,
        req: &SendRequest,
    ) -> Result<(String, Option<String>), ApiError> {
        let unknown = |message: String| ApiError::WeChat {
            code: "unknown_recipient",
            status: StatusCode::NOT_FOUND,
            message,
            errcode: None,
        };
        check_recipient(req.kind, &req.to)?;
        let unionid = match &req.to {
            Recipient::OpenId(o) => return Ok((o.clone(), None)),
            Recipient::AppOpenId { appid: mp, openid } => {
                match self.mini_program_unionid(via, mp, openid).await? {
                    Some(u) => u,
                    None => {
                        return Err(unknown(format!(
                            "no unionid is known for openid {openid} of app {mp}"
                        )));
                    }
                }
            }
            Recipient::UnionId(u) => u.clone(),
        };
        let accounts = self.store.query(&ItemKey::union_pk(&unionid)).await?;
        if accounts.is_empty() {
            return Err(unknown(format!("unionid {unionid} is not known")));
        }
        let sk = format!("acct#{}", via.appid);
        accounts
            .iter()
            .find(|(k, _)| *k == sk)
            .and_then(|(_, a)| a.string("openid"))
            .map(|openid| (openid, Some(unionid.clone())))
            .ok_or_else(|| {
                unknown(format!(
                    "unionid {unionid} has no account in app {}",
                    via.appid
                ))
            })
    }
}
