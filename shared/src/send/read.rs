//! Messages as the API shows them: `GET /v1/apps/{appid}/messages/{id}` (a message as it was
//! asked and sent, and its status) and `GET /v1/apps/{appid}/messages` (the app's messages,
//! newest first, a page at a time: [`crate::listing`]). The status only moves forward:
//! `sent`, then the first final state WeChat reported (`delivered`, `failed`, `user_blocked`
//! from `TEMPLATESENDJOBFINISH`, or `blocked` found by `GET .../templates/{id}/blocked`),
//! kept on the delivery item, which nothing overwrites.

use super::service::Sender;
use crate::error::ApiError;
use crate::listing::{self, ListQuery};
use crate::store::{Attrs, ItemKey, ItemRead};
use serde_json::{Value, json};

impl Sender {
    /// `GET /v1/apps/{appid}/messages/{id}`, with the delivery status WeChat reported.
    pub async fn message(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        self.message_view(appid, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} of app {appid}")))
    }

    /// `GET /v1/apps/{appid}/messages?cursor=&limit=`: the app's messages, newest first,
    /// each as [`Sender::message`] shows it, and the cursor of the next page (`null` on the
    /// last).
    pub async fn messages(&self, appid: &str, query: &ListQuery) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let page = listing::page(self.store.as_ref(), listing::MESSAGES, appid, query).await?;
        let messages = listing::read_each(page.strings("id"), |id| async move {
            self.message_view(appid, &id).await
        })
        .await?;
        Ok(json!({"messages": messages, "next_cursor": page.next_cursor}))
    }

    /// The message `id` of `appid` as the API shows it; `None` when there is no record.
    async fn message_view(&self, appid: &str, id: &str) -> Result<Option<Value>, ApiError> {
        let Some(rec) = self.store.get(&ItemKey::message(appid, id)).await? else {
            return Ok(None);
        };
        let status = rec.text("status").unwrap_or_default();
        let msgid = rec.text("wechat_msgid");
        let mut body = record_view(id, &rec);
        // The final state WeChat reported: by its msgid, or by our id for a message WeChat
        // gave none (found intercepted).
        if let Some(via) = rec.text("via_appid")
            && (msgid.is_some() || status == "sent")
            && let Some(d) = self
                .store
                .get(&ItemKey::delivery(via, msgid.unwrap_or(id)))
                .await?
        {
            body["status"] = json!(d.text("state").unwrap_or(status));
            body["delivery"] = json!({"status": d.text("status_raw"), "at": d.num("updated_at")});
        }
        Ok(Some(body))
    }
}

/// A message record as the API shows it, before the delivery report is added.
fn record_view(id: &str, rec: &Attrs) -> Value {
    let mut body = json!({
        "id": id,
        "type": rec.text("type"),
        "status": rec.text("status").unwrap_or_default(),
        "to": {"openid": rec.text("openid"), "unionid": rec.text("unionid")},
        "sent_by": rec.text("via_appid"),
        "requested_by": rec.text("requested_by"),
        "wechat_msgid": rec.text("wechat_msgid").and_then(|m| m.parse::<i64>().ok()),
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
    if let Some(error) = rec.text("error") {
        body["error"] = json!(error);
    }
    if let Some(batch) = rec.text("batch_id") {
        body["batch_id"] = json!(batch);
    }
    body
}
