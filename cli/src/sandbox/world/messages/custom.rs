//! `message/custom/send`: customer-service messages, within the allowance the user's
//! interactions opened (`windows.rs`), with the body each msgtype needs.

use crate::sandbox::world::{EmulatedApp, World, WxErr, wx_err};
use serde_json::{Value, json};
use wxpush_shared::AppKind;

impl World {
    pub fn custom_send(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        const PATH: &str = "/cgi-bin/message/custom/send";
        self.charge_quota(&app.appid, PATH, now)?;
        let touser = body.get("touser").and_then(Value::as_str).unwrap_or("");
        if self.user(&app.appid, touser).is_none() {
            return Err(wx_err(40003, "invalid openid"));
        }
        let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
        check_custom_body(app.kind, msgtype, body)?;
        self.use_allowance(&app.appid, touser, now)?;
        self.deliver(&app.appid, PATH, touser, body, now);
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }
}

/// A customer-service message's body as `custom/send` checks it (docs/wechat.md#customer-service-messages): the msgtype
/// must be one the app's kind may send (mini programs: text, image, link, miniprogrampage),
/// its object must be there with the fields WeChat requires.
fn check_custom_body(kind: AppKind, msgtype: &str, body: &Value) -> Result<(), WxErr> {
    if !allowed_msgtypes(kind).contains(&msgtype) {
        return Err(wx_err(40008, "invalid message type"));
    }
    let Some(fields) = body.get(msgtype).and_then(Value::as_object) else {
        return Err(wx_err(47001, "data format error"));
    };
    check_content(kind, &Content { msgtype, fields })?;
    check_customservice(body)
}

/// The msgtypes an app of `kind` may send.
fn allowed_msgtypes(kind: AppKind) -> &'static [&'static str] {
    match kind {
        AppKind::MiniProgram => &["text", "image", "link", "miniprogrampage"],
        AppKind::OfficialAccount => &[
            "text",
            "image",
            "voice",
            "video",
            "music",
            "news",
            "mpnews",
            "mpnewsarticle",
            "msgmenu",
            "wxcard",
            "miniprogrampage",
        ],
    }
}

/// The object under the message's msgtype, and the checks of its fields.
struct Content<'a> {
    msgtype: &'a str,
    fields: &'a serde_json::Map<String, Value>,
}

impl Content<'_> {
    /// A field's text, when it is a non-empty string.
    fn text(&self, k: &str) -> Option<&str> {
        self.fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A field WeChat requires (47001 names it).
    fn need(&self, k: &str) -> Result<(), WxErr> {
        self.text(k).map(|_| ()).ok_or_else(|| {
            wx_err(
                47001,
                &format!("data format error: {}.{k} is missing", self.msgtype),
            )
        })
    }

    /// A media id WeChat requires (40007 names it).
    fn media(&self, k: &str) -> Result<(), WxErr> {
        self.text(k)
            .map(|_| ())
            .ok_or_else(|| wx_err(40007, &format!("invalid media_id: {}.{k}", self.msgtype)))
    }
}

/// The fields each msgtype requires.
fn check_content(kind: AppKind, c: &Content) -> Result<(), WxErr> {
    match c.msgtype {
        "text" => {
            let t = c
                .text("content")
                .ok_or_else(|| wx_err(44003, "empty content"))?;
            if t.len() > 2048 {
                return Err(wx_err(45002, "content size out of limit"));
            }
        }
        "image" | "voice" | "mpnews" => c.media("media_id")?,
        "video" => {
            c.media("media_id")?;
            c.media("thumb_media_id")?;
        }
        "music" => {
            c.need("musicurl")?;
            c.need("hqmusicurl")?;
            c.media("thumb_media_id")?;
        }
        "news" => check_news(c)?,
        "mpnewsarticle" => c.need("article_id")?,
        "msgmenu" => check_msgmenu(c)?,
        "wxcard" => c
            .text("card_id")
            .map(|_| ())
            .ok_or_else(|| wx_err(40056, "invalid card_id"))?,
        "miniprogrampage" => {
            c.need("title")?;
            c.need("pagepath")?;
            c.media("thumb_media_id")?;
            if kind == AppKind::OfficialAccount {
                c.need("appid")?;
            }
        }
        _ => {
            // link (mini programs)
            for k in ["title", "description", "url", "thumb_url"] {
                c.need(k)?;
            }
        }
    }
    Ok(())
}

/// `news`: one article, with a title.
fn check_news(c: &Content) -> Result<(), WxErr> {
    let articles = c
        .fields
        .get("articles")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| wx_err(44002, "empty post data"))?;
    if articles.len() > 1 {
        return Err(wx_err(45008, "article size out of limit"));
    }
    if articles[0]
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(wx_err(47001, "data format error: news.articles[0].title"));
    }
    Ok(())
}

/// `msgmenu`: a list of items, each with an id and a content.
fn check_msgmenu(c: &Content) -> Result<(), WxErr> {
    let list = c
        .fields
        .get("list")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| wx_err(47001, "data format error: msgmenu.list"))?;
    for item in list {
        for k in ["id", "content"] {
            if item
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(wx_err(
                    47001,
                    &format!("data format error: msgmenu.list.{k}"),
                ));
            }
        }
    }
    Ok(())
}

/// A message sent as a named customer-service account: its `kf_account` is `name@account`.
fn check_customservice(body: &Value) -> Result<(), WxErr> {
    if let Some(cs) = body.get("customservice")
        && cs
            .get("kf_account")
            .and_then(Value::as_str)
            .is_none_or(|k| !k.contains('@'))
    {
        return Err(wx_err(47001, "data format error: customservice.kf_account"));
    }
    Ok(())
}
