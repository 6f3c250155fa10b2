//! Sending messages: template messages, subscribe messages and customer-service messages,
//! each checked by WeChat's rules, then delivered (listed in `messages`) with the events
//! WeChat pushes back.

mod custom;
mod subscribe;
mod subscribe_values;
mod template;

use super::{World, WxErr, wx_err};
use serde_json::{Value, json};
use subscribe_values::check_subscribe_value;

impl World {
    /// A new WeChat message id (of a delivered message, or of a user's message).
    pub fn next_msgid(&mut self) -> i64 {
        self.next_msgid += 1;
        self.next_msgid
    }

    fn deliver(&mut self, appid: &str, path: &str, touser: &str, body: &Value, now: i64) -> i64 {
        let msgid = self.next_msgid();
        self.messages.push(json!({
            "appid": appid, "path": path, "touser": touser, "msgid": msgid, "body": body, "at": now,
        }));
        msgid
    }
}

fn template_id(body: &Value) -> Result<String, WxErr> {
    body.get("template_id")
        .and_then(Value::as_str)
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| wx_err(40037, "invalid template_id"))
}

/// `data` must be `{key: {"value": "<string>"}}`; subscribe values follow the type table.
fn check_data(body: &Value, subscribe_rules: bool) -> Result<(), WxErr> {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| wx_err(47003, "argument invalid! data is empty"))?;
    for (key, entry) in data {
        let value = entry.get("value").and_then(Value::as_str).ok_or_else(|| {
            wx_err(
                47003,
                &format!("argument invalid! data.{key}.value is empty"),
            )
        })?;
        if subscribe_rules && let Some(msg) = check_subscribe_value(key, value) {
            return Err(wx_err(47003, &msg));
        }
    }
    Ok(())
}

/// A message that opens a mini program names it: `miniprogram.appid` (40013 without it).
fn check_miniprogram(body: &Value) -> Result<(), WxErr> {
    if let Some(mp) = body.get("miniprogram")
        && mp
            .get("appid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(wx_err(40013, "invalid appid: miniprogram.appid"));
    }
    Ok(())
}
