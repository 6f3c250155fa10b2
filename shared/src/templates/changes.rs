//! Adding and deleting an app's templates (`POST /v1/apps/{appid}/templates`,
//! `DELETE /v1/apps/{appid}/templates/{id}`); the cached listing is re-read after either.

use super::new_template::{NewTemplate, parse_new};
use super::{TemplateKind, Templates, invalid};
use crate::app::AppKind;
use crate::error::ApiError;
use crate::token_retry::{WeChatOrApi, with_token};
use http::StatusCode;
use serde_json::{Value, json};
use tracing::info;

impl Templates {
    /// `POST /v1/apps/{appid}/templates` → `201 {"id"}`; the cached listing is re-read.
    pub async fn add(&self, appid: &str, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        let new = parse_new(body)?;
        let id = match new {
            NewTemplate::Template {
                short,
                keyword_names,
            } => {
                if app.kind != AppKind::OfficialAccount {
                    return Err(invalid(
                        "template_id_short",
                        format!("app {appid}: template messages belong to official accounts; a mini program adds subscribe templates (tid, kid_list)"),
                    ));
                }
                with_token(&self.tokens, appid, |wechat, token| {
                    let (short, names) = (short.clone(), keyword_names.clone());
                    async move { wechat.add_private_template(&token, &short, &names).await }
                })
                .await
            }
            NewTemplate::Subscribe {
                tid,
                kid_list,
                scene_desc,
            } => {
                with_token(&self.tokens, appid, |wechat, token| {
                    let (tid, kids, scene) = (tid.clone(), kid_list.clone(), scene_desc.clone());
                    async move { wechat.add_subscribe_template(&token, &tid, &kids, &scene).await }
                })
                .await
            }
        }
        .map_err(|e| management_error(appid, e))?;
        info!(appid, template_id = %id, "template added");
        self.refetch_after_change(&app).await;
        Ok((StatusCode::CREATED, json!({ "id": id })))
    }

    /// `DELETE /v1/apps/{appid}/templates/{id}` → `204`; the cached listing is re-read.
    pub async fn delete(&self, appid: &str, id: &str) -> Result<(), ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        // Which family the id belongs to: the cached listing says, else a fresh one.
        let mut found = self.find(appid, id).await?;
        if found.is_none() {
            found = self
                .fetch(&app)
                .await?
                .templates
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.kind);
        }
        let kind = found.ok_or_else(|| ApiError::Missing {
            code: "template_not_found",
            message: format!("app {appid} has no template {id}"),
        })?;
        let id_owned = id.to_string();
        let result = if kind == TemplateKind::Template {
            with_token(&self.tokens, appid, |wechat, token| {
                let id = id_owned.clone();
                async move { wechat.delete_private_template(&token, &id).await }
            })
            .await
        } else {
            with_token(&self.tokens, appid, |wechat, token| {
                let id = id_owned.clone();
                async move { wechat.delete_subscribe_template(&token, &id).await }
            })
            .await
        };
        result.map_err(|e| management_error(appid, e))?;
        info!(appid, template_id = id, "template deleted");
        self.refetch_after_change(&app).await;
        Ok(())
    }
}

/// Template management refusals: 45026 (an official account holds 25 private templates at
/// most) and 40037 (no such template) get their own codes; the rest map as any call.
pub(super) fn management_error(appid: &str, e: WeChatOrApi) -> ApiError {
    match e {
        WeChatOrApi::WeChat(w) if w.errcode() == Some(45026) => ApiError::WeChat {
            code: "template_limit_reached",
            status: StatusCode::CONFLICT,
            message: format!(
                "app {appid} holds the most private templates WeChat allows (25): delete one first ({w})"
            ),
            errcode: Some(45026),
        },
        WeChatOrApi::WeChat(w) if w.errcode() == Some(40037) => ApiError::WeChat {
            code: "template_not_found",
            status: StatusCode::NOT_FOUND,
            message: format!("app {appid}: WeChat does not know this template ({w})"),
            errcode: Some(40037),
        },
        WeChatOrApi::WeChat(w) if w.errcode() == Some(47003) => ApiError::WeChat {
            code: "invalid_template_request",
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("app {appid}: WeChat refused the template's parameters ({w})"),
            errcode: Some(47003),
        },
        other => other.into_api(appid),
    }
}
