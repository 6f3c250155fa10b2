//! Messages as the API shows them: `GET /v1/apps/{appid}/messages/{id}` (one, with the
//! delivery status WeChat's `TEMPLATESENDJOBFINISH` reported) and `GET
//! /v1/apps/{appid}/messages` (the app's messages newest first, paged: [`crate::listing`]).

use super::service::Sender;
use crate::error::ApiError;
use crate::listing::{self, ListQuery};
use crate::store::{Attrs, ItemKey, ItemRead};
use serde_json::{Value, json};

impl Sender {
    /// `GET /v1/apps/{appid}/messages/{id}`, with the delivery status from TEMPLATESENDJOBFINISH.
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
        let mut body = record_view(id, &rec);
        if let (Some(msgid), Some(via)) = (rec.text("wechat_msgid"), rec.text("via_appid"))
            && let Some(d) = self.store.get(&ItemKey::delivery(via, msgid)).await?
        {
            if let Some(state) = d.text("state") {
                body["status"] = json!(state);
            }
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
