//! The templates an app has: template-message templates (official accounts, at most 25
//! private ones) and subscribe templates, the calls that list, add and delete them, and the
//! check that a message names one of them.

use super::{EmulatedApp, World, WxErr, random_alnum, wx_err};
use serde_json::{Value, json};
use wxpush_shared::AppKind;

/// A template an app has: an official account's template message (`kind` `template`) or a
/// subscribe template (`subscribe_once`, `subscribe_long_term`).
#[derive(Clone, Debug)]
pub struct Template {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub content: String,
    pub example: String,
}

impl Template {
    pub fn is_subscribe(&self) -> bool {
        self.kind != "template"
    }
    /// The keys of `content`: `{{thing1.DATA}}` → `thing1`.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(start) = rest.find("{{") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find("}}") else { break };
            if let Some(key) = rest[..end].strip_suffix(".DATA") {
                keys.push(key.to_string());
            }
            rest = &rest[end + 2..];
        }
        keys
    }
}

/// Private templates an official account may hold (docs/wechat.md#templates-and-subscribe-notifications; 45026 beyond).
pub const MAX_PRIVATE_TEMPLATES: usize = 25;

impl World {
    /// When the app has templates at all, `template_id` must be one of them of the right
    /// family (40037 otherwise). An app without any keeps accepting any id, as the emulator
    /// always did.
    pub(super) fn check_registered(
        &self,
        appid: &str,
        template_id: &str,
        subscribe: bool,
    ) -> Result<Option<Template>, WxErr> {
        // Per family: an account with template-message templates only still sends any
        // subscribe template, and the other way round.
        let family: Vec<&Template> = self
            .templates
            .get(appid)
            .map(|all| {
                all.iter()
                    .filter(|t| t.is_subscribe() == subscribe)
                    .collect()
            })
            .unwrap_or_default();
        if family.is_empty() {
            return Ok(None);
        }
        family
            .into_iter()
            .find(|t| t.id == template_id)
            .cloned()
            .map(Some)
            .ok_or_else(|| wx_err(40037, "invalid template_id"))
    }

    /// `POST /sandbox/templates`: a template the app has (replacing one with the same id).
    pub fn add_template(&mut self, appid: &str, t: Template) {
        let list = self.templates.entry(appid.to_string()).or_default();
        list.retain(|x| x.id != t.id);
        list.push(t);
    }

    /// `GET /cgi-bin/template/get_all_private_template` (official accounts).
    pub fn private_templates(&self, app: &EmulatedApp) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let list: Vec<Value> = self
            .templates
            .get(&app.appid)
            .into_iter()
            .flatten()
            .filter(|t| !t.is_subscribe())
            .map(|t| {
                json!({"template_id": t.id, "title": t.title, "primary_industry": "IT科技",
                       "deputy_industry": "互联网|电子商务", "content": t.content, "example": t.example})
            })
            .collect();
        Ok(json!({"template_list": list}))
    }

    /// `POST /cgi-bin/template/api_add_template`: at most 25 private templates (45026).
    pub fn add_private_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let short = body
            .get("template_id_short")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| wx_err(40037, "invalid template_id_short"))?;
        let names: Vec<&str> = body
            .get("keyword_name_list")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names.is_empty() {
            return Err(wx_err(
                47003,
                "argument invalid! keyword_name_list is empty",
            ));
        }
        let count = self
            .templates
            .get(&app.appid)
            .map(|l| l.iter().filter(|t| !t.is_subscribe()).count())
            .unwrap_or(0);
        if count >= MAX_PRIVATE_TEMPLATES {
            return Err(wx_err(45026, "template num exceeds limit"));
        }
        let id = format!("{}_{}", short, random_alnum(30));
        let content: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}:{{{{thing{}.DATA}}}}", i + 1))
            .collect();
        self.add_template(
            &app.appid,
            Template {
                id: id.clone(),
                kind: "template".into(),
                title: format!("模板 {short}"),
                content: content.join("\n"),
                example: String::new(),
            },
        );
        Ok(json!({"errcode": 0, "errmsg": "ok", "template_id": id}))
    }

    /// `POST /cgi-bin/template/del_private_template`.
    pub fn delete_private_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        let id = body
            .get("template_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.remove_template(&app.appid, id, false)
    }

    fn remove_template(&mut self, appid: &str, id: &str, subscribe: bool) -> Result<Value, WxErr> {
        let list = self.templates.entry(appid.to_string()).or_default();
        let before = list.len();
        list.retain(|t| !(t.id == id && t.is_subscribe() == subscribe));
        if list.len() == before {
            return Err(wx_err(40037, "invalid template_id"));
        }
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// `GET /wxaapi/newtmpl/gettemplate`: subscribe templates (`type` 2 one-time, 3 long-term).
    pub fn subscribe_templates(&self, app: &EmulatedApp) -> Result<Value, WxErr> {
        let list: Vec<Value> = self
            .templates
            .get(&app.appid)
            .into_iter()
            .flatten()
            .filter(|t| t.is_subscribe())
            .map(|t| {
                let kind = if t.kind == "subscribe_long_term" {
                    3
                } else {
                    2
                };
                json!({"priTmplId": t.id, "title": t.title, "content": t.content,
                       "example": t.example, "type": kind})
            })
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "data": list}))
    }

    /// `POST /wxaapi/newtmpl/addtemplate` `{"tid", "kidList", "sceneDesc"}`.
    pub fn add_subscribe_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let tid = match body.get("tid") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(wx_err(47003, "argument invalid! tid")),
        };
        let kids: Vec<i64> = body
            .get("kidList")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        if kids.is_empty() {
            return Err(wx_err(47003, "argument invalid! kidList"));
        }
        let id = random_alnum(43);
        let content: Vec<String> = kids
            .iter()
            .map(|k| format!("关键词{k}:{{{{thing{k}.DATA}}}}"))
            .collect();
        self.add_template(
            &app.appid,
            Template {
                id: id.clone(),
                kind: "subscribe_once".into(),
                title: format!("订阅模板 {tid}"),
                content: content.join("\n"),
                example: String::new(),
            },
        );
        Ok(json!({"errcode": 0, "errmsg": "ok", "priTmplId": id}))
    }

    /// `POST /wxaapi/newtmpl/deltemplate` `{"priTmplId"}`.
    pub fn delete_subscribe_template(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let id = body.get("priTmplId").and_then(Value::as_str).unwrap_or("");
        self.remove_template(&app.appid, id, true)
    }
}
