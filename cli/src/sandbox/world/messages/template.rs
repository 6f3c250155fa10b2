//! `message/template/send`: an official account's template message to a follower, deduped
//! by `client_msg_id` for 10 minutes, and its `TEMPLATESENDJOBFINISH` event.

use super::{check_data, check_miniprogram, template_id};
use crate::sandbox::push::Push;
use crate::sandbox::world::{EmulatedApp, World, WxErr, wx_err};
use serde_json::{Value, json};
use wxpush_shared::AppKind;

/// How long WeChat remembers a template message's `client_msg_id` per openid.
pub const CLIENT_MSG_ID_WINDOW_SECS: i64 = 600;

impl World {
    pub fn template_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/template/send";
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, PATH, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        let user = self
            .user(&app.appid, touser)
            .ok_or_else(|| wx_err(40003, "invalid openid"))?;
        if !user.subscribed {
            return Err(wx_err(43004, "require subscribe"));
        }
        let tid = template_id(body)?;
        self.check_registered(&app.appid, &tid, false)?;
        check_data(body, false)?;
        if let Some(url) = body.get("url")
            && !url.is_string()
        {
            return Err(wx_err(47001, "data format error: url"));
        }
        check_miniprogram(body)?;
        let client_msg_id = body
            .get("client_msg_id")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty());
        let dedupe_key =
            client_msg_id.map(|cid| (app.appid.clone(), touser.to_string(), cid.to_string()));
        if let Some(key) = &dedupe_key {
            // WeChat sends one message per (openid, client_msg_id) for 10 minutes, then
            // forgets the id: a resend after that is delivered again (docs/wechat.md).
            if let Some((msgid, at)) = self.client_msg_ids.get(key)
                && now - at < CLIENT_MSG_ID_WINDOW_SECS
            {
                return Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}));
            }
        }
        let blocked = user.blocks_templates;
        if let Some(msgid) = self.intercept(&app.appid, &tid, touser, body, now) {
            if let Some(key) = dedupe_key {
                self.client_msg_ids.insert(key, (msgid, now));
            }
            return Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}));
        }
        let msgid = self.deliver(&app.appid, PATH, touser, body, now);
        if blocked && let Some(last) = self.messages.last_mut() {
            last["not_shown"] = json!(true);
        }
        let status = if blocked {
            "failed:user block"
        } else {
            "success"
        };
        self.pending_pushes.push(Push::template_finished(
            &app.appid, touser, msgid, status, now,
        ));
        if let Some(key) = dedupe_key {
            self.client_msg_ids.insert(key, (msgid, now));
        }
        Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
    }
}
