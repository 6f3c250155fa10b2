//! Templates WeChat intercepts (docs/wechat.md, Intercepted template messages): once a
//! template is blocked (`POST /sandbox/templates/{id}/block`), its messages are answered
//! errcode 0 with a msgid, never delivered and never reported, and listed by
//! `queryblocktmplmsg`.

use super::{EmulatedApp, World, WxErr, wx_err};
use serde_json::{Value, json};

/// One intercepted message.
#[derive(Clone, Debug)]
pub(super) struct Intercepted {
    id: i64,
    appid: String,
    template_id: String,
    title: String,
    content: String,
    sent_at: i64,
    openid: String,
}

/// `queryblocktmplmsg`'s largest page.
const MAX_LIMIT: i64 = 100;

impl World {
    /// WeChat intercepts the next messages of `template_id` of `appid`.
    pub fn block_template(&mut self, appid: &str, template_id: &str) {
        self.blocked_templates
            .insert((appid.to_string(), template_id.to_string()));
    }

    /// When `template_id` is blocked: the message is intercepted (recorded, not delivered)
    /// and its msgid answered.
    pub(super) fn intercept(
        &mut self,
        appid: &str,
        template_id: &str,
        touser: &str,
        body: &Value,
        now: i64,
    ) -> Option<i64> {
        let key = (appid.to_string(), template_id.to_string());
        if !self.blocked_templates.contains(&key) {
            return None;
        }
        let template = self
            .templates
            .get(appid)
            .and_then(|all| all.iter().find(|t| t.id == template_id))
            .cloned();
        let mut content = template
            .as_ref()
            .map(|t| t.content.clone())
            .unwrap_or_default();
        if let Some(data) = body.get("data").and_then(Value::as_object) {
            for (k, v) in data {
                let value = v.get("value").and_then(Value::as_str).unwrap_or("");
                content = content.replace(&format!("{{{{{k}.DATA}}}}"), value);
            }
        }
        let msgid = self.next_msgid();
        let id = self.intercepted.len() as i64 + 1;
        self.intercepted.push(Intercepted {
            id,
            appid: appid.to_string(),
            template_id: template_id.to_string(),
            title: template.map(|t| t.title).unwrap_or_default(),
            content,
            sent_at: now,
            openid: touser.to_string(),
        });
        Some(msgid)
    }

    /// `POST /wxa/sec/queryblocktmplmsg` `{"tmpl_msg_id", "largest_id", "limit"}`: the app's
    /// intercepted messages of the template with an id above `largest_id`, at most `limit`
    /// (1-100).
    pub fn blocked_messages(&self, app: &EmulatedApp, body: &Value) -> Result<Value, WxErr> {
        let template = body
            .get("tmpl_msg_id")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| wx_err(47001, "data format error: tmpl_msg_id"))?;
        let after = body.get("largest_id").and_then(Value::as_i64).unwrap_or(0);
        let limit = body
            .get("limit")
            .and_then(Value::as_i64)
            .unwrap_or(MAX_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(wx_err(47001, "data format error: limit"));
        }
        let list: Vec<Value> = self
            .intercepted
            .iter()
            .filter(|m| m.appid == app.appid && m.template_id == template && m.id > after)
            .take(limit as usize)
            .map(|m| {
                json!({"id": m.id, "tmpl_msg_id": m.template_id, "title": m.title,
                       "content": m.content, "send_timestamp": m.sent_at, "openid": m.openid})
            })
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "msginfo": list}))
    }
}
