//! Subscribe messages: a mini program's `subscribe/send` and an official account's
//! `subscribe/bizsend`, each using up one of the user's grants of the template.

use super::{check_data, check_miniprogram, template_id};
use crate::sandbox::push::Push;
use crate::sandbox::world::{EmulatedApp, World, WxErr, wx_err};
use serde_json::{Value, json};
use wxpush_shared::AppKind;

impl World {
    pub fn add_grant(&mut self, appid: &str, openid: &str, template_id: &str, count: u32) {
        *self
            .grants
            .entry((appid.into(), openid.into(), template_id.into()))
            .or_default() += count;
    }

    pub fn subscribe_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/subscribe/send";
        let (touser, template) =
            self.subscribe_checks(app, AppKind::MiniProgram, PATH, body, now)?;
        if let Some(state) = body.get("miniprogram_state")
            && !matches!(state.as_str(), Some("developer" | "trial" | "formal"))
        {
            return Err(wx_err(47003, "argument invalid! miniprogram_state"));
        }
        if let Some(lang) = body.get("lang")
            && !matches!(lang.as_str(), Some("zh_CN" | "en_US" | "zh_HK" | "zh_TW"))
        {
            return Err(wx_err(47003, "argument invalid! lang"));
        }
        self.use_grant_and_deliver(app, PATH, &touser, &template, body, now)
    }

    /// `subscribe/bizsend`: an official account's subscribe notification (docs/wechat.md#templates-and-subscribe-notifications):
    /// to one of its users, a template it has (once it has any), data by the subscribe value
    /// rules, and a one-time grant used up (43101 without one), like a mini program's.
    pub fn biz_subscribe_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/subscribe/bizsend";
        let (touser, template) =
            self.subscribe_checks(app, AppKind::OfficialAccount, PATH, body, now)?;
        if let Some(page) = body.get("page")
            && !page
                .as_str()
                .is_some_and(|p| p.starts_with("http://") || p.starts_with("https://"))
        {
            return Err(wx_err(47003, "argument invalid! page must be a url"));
        }
        check_miniprogram(body)?;
        self.use_grant_and_deliver(app, PATH, &touser, &template, body, now)
    }

    /// What every subscribe message needs (mini program or official account): the right kind
    /// of app, quota, a known user, a template the app has (once it has any; 47003 names a
    /// missing key) and data by the type table. Answers (touser, template_id).
    fn subscribe_checks(
        &mut self,
        app: &EmulatedApp,
        kind: AppKind,
        path: &str,
        body: &Value,
        now: i64,
    ) -> Result<(String, String), WxErr> {
        if app.kind != kind {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, path, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        if self.user(&app.appid, touser).is_none() {
            return Err(wx_err(40003, "invalid openid"));
        }
        let template = template_id(body)?;
        if let Some(t) = self.check_registered(&app.appid, &template, true)? {
            // Every key of the template needs a value (docs/wechat.md#subscribe-data-values: 47003 names the field).
            let data = body.get("data").and_then(Value::as_object);
            if let Some(missing) = t
                .keys()
                .into_iter()
                .find(|k| data.is_none_or(|d| !d.contains_key(k)))
            {
                return Err(wx_err(
                    47003,
                    &format!("argument invalid! data.{missing}.value is empty"),
                ));
            }
        }
        check_data(body, true)?;
        Ok((touser.to_string(), template))
    }

    /// Uses one of the user's grants of the template (43101 without one; a long-term
    /// template keeps its grant), delivers the message and queues WeChat's
    /// `subscribe_msg_sent_event`.
    fn use_grant_and_deliver(
        &mut self,
        app: &EmulatedApp,
        path: &str,
        touser: &str,
        template: &str,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        let key = (app.appid.clone(), touser.to_string(), template.to_string());
        // A long-term template needs the user's acceptance once, not one per message.
        let long_term = self
            .templates
            .get(&app.appid)
            .and_then(|all| all.iter().find(|t| t.id == template))
            .is_some_and(|t| t.kind == "subscribe_long_term");
        match self.grants.get_mut(&key) {
            Some(n) if *n > 0 && !long_term => *n -= 1,
            Some(n) if *n > 0 => {}
            _ => return Err(wx_err(43101, "user refuse to accept the msg")),
        }
        if let Some(msgid) = self.intercept(&app.appid, template, touser, body, now) {
            return Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}));
        }
        let msgid = self.deliver(&app.appid, path, touser, body, now);
        self.pending_pushes.push(Push::subscribe_sent(
            &app.appid, touser, template, msgid, now,
        ));
        Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
    }
}
