//! `GET /v1/apps/{appid}/messages/{id}`: a message as it was asked and sent, and its status.
//! The status only moves forward: `sent`, then the first final state WeChat reported
//! (`delivered`, `failed`, `user_blocked` from `TEMPLATESENDJOBFINISH`, or `blocked` found by
//! `GET .../templates/{id}/blocked`), kept on the delivery item, which nothing overwrites.

use super::service::Sender;
use crate::error::ApiError;
use crate::store::{ItemKey, ItemRead};
use serde_json::{Value, json};

impl Sender {
    /// `GET /v1/apps/{appid}/messages/{id}`, with the delivery status WeChat reported.
    pub async fn message(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let rec = self
            .store
            .get(&ItemKey::message(appid, id))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} of app {appid}")))?;
        let status = rec.text("status").unwrap_or_default();
        let msgid = rec.text("wechat_msgid");
        let mut body = json!({
            "id": id,
            "type": rec.text("type"),
            "status": status,
            "to": {"openid": rec.text("openid"), "unionid": rec.text("unionid")},
            "sent_by": rec.text("via_appid"),
            "requested_by": rec.text("requested_by"),
            "wechat_msgid": msgid.and_then(|m| m.parse::<i64>().ok()),
            "created_at": rec.num("created_at"),
        });
        if let Some(t) = rec.text("template_id") {
            body["template_id"] = json!(t);
        }
        if rec.text("sent_as") == Some("fallback") {
            body["sent_as"] = json!("fallback");
            body["fallback"] =
                json!({"type": rec.text("sent_type"), "reason": rec.text("fallback_reason")});
        }
        if let Some(code) = rec.num("wechat_errcode") {
            body["wechat_errcode"] = json!(code);
        }
        // The final state WeChat reported: by its msgid, or by our id for a message WeChat
        // gave none (found intercepted).
        if let Some(via) = rec.text("via_appid")
            && (msgid.is_some() || status == "sent")
            && let Some(d) = self
                .store
                .get(&ItemKey::delivery(via, msgid.unwrap_or(id)))
                .await?
        {
            let status = d.text("state").unwrap_or(status);
            body["status"] = json!(status);
            body["delivery"] = json!({"status": d.text("status_raw"), "at": d.num("updated_at")});
        }
        Ok(body)
    }
}
