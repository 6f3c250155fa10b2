//! What a user's WeChat shows for a delivered message: a template or subscribe message as
//! its template's title and content with the data filled in (the keys and values when the
//! app registered no such template), and each customer-service msgtype as its kind. Plain
//! text only: the console sets it as text.

use super::{Template, World};
use serde_json::{Value, json};

/// How a delivered message looks in the user's chat: `kind`, a `title`, `lines` of text, and
/// for a menu its `options`.
pub fn shown(delivered: &Value, template: Option<&Template>) -> Value {
    let body = &delivered["body"];
    let path = delivered["path"].as_str().unwrap_or_default();
    let mut view = if path.ends_with("/template/send") {
        templated("template", body, template)
    } else if path.contains("/subscribe/") {
        templated("subscribe", body, template)
    } else {
        customer_service(body)
    };
    view["msgid"] = delivered["msgid"].clone();
    view["at"] = delivered["at"].clone();
    view
}

/// A template or subscribe message: the template's title, then each line of its content with
/// `{{key.DATA}}` replaced by the value sent; a link line when it opens a page.
fn templated(kind: &str, body: &Value, template: Option<&Template>) -> Value {
    let data = &body["data"];
    let value = |key: &str| data[key]["value"].as_str().unwrap_or_default().to_string();
    let (title, mut lines) = match template {
        Some(t) => (
            t.title.clone(),
            t.content
                .lines()
                .map(|line| fill(line, &value))
                .filter(|line| !line.trim().is_empty())
                .collect::<Vec<_>>(),
        ),
        None => (
            body["template_id"].as_str().unwrap_or_default().to_string(),
            data.as_object()
                .map(|d| d.keys().map(|k| format!("{k}: {}", value(k))).collect())
                .unwrap_or_default(),
        ),
    };
    if body.get("url").is_some() || body.get("page").is_some() || body.get("miniprogram").is_some()
    {
        lines.push("详情 ›".to_string());
    }
    json!({"kind": kind, "title": title, "lines": lines})
}

/// `line` with every `{{key.DATA}}` replaced by `value(key)`.
fn fill(line: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = &after[..end];
                out.push_str(&value(inner.strip_suffix(".DATA").unwrap_or(inner)));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A customer-service message as the chat shows its msgtype.
fn customer_service(body: &Value) -> Value {
    let msgtype = body["msgtype"].as_str().unwrap_or_default();
    let m = &body[msgtype];
    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    match msgtype {
        "text" => json!({"kind": "text", "title": "", "lines": [text("content")]}),
        "news" => {
            let a = &m["articles"][0];
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            json!({"kind": "news", "title": field("title"), "lines": [field("description")]})
        }
        "link" => json!({"kind": "link", "title": text("title"), "lines": [text("description")]}),
        "miniprogrampage" => {
            json!({"kind": "miniprogram", "title": text("title"), "lines": ["小程序"]})
        }
        "msgmenu" => {
            let options: Vec<String> = m["list"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|o| o["content"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let lines: Vec<String> = [text("head_content"), text("tail_content")]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect();
            json!({"kind": "menu", "title": "", "lines": lines, "options": options})
        }
        "video" | "music" => {
            let label = if msgtype == "video" {
                "[视频]"
            } else {
                "[音乐]"
            };
            let lines: Vec<String> = Some(text("title"))
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect();
            json!({"kind": msgtype, "title": label, "lines": lines})
        }
        other => {
            let label = match other {
                "image" => "[图片]",
                "voice" => "[语音]",
                "mpnews" | "mpnewsarticle" => "[图文消息]",
                "wxcard" => "[卡券]",
                _ => "[消息]",
            };
            json!({"kind": other, "title": label, "lines": []})
        }
    }
}

impl World {
    /// The app's template `id` of the family a message path sends (template or subscribe).
    pub(super) fn template_for(&self, appid: &str, path: &str, id: &str) -> Option<&Template> {
        let subscribe = path.contains("/subscribe/");
        self.templates
            .get(appid)?
            .iter()
            .find(|t| t.id == id && t.is_subscribe() == subscribe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Template {
        Template {
            id: "TPL_ORDER".into(),
            kind: "template".into(),
            title: "订单发货通知".into(),
            content: "订单号：{{character_string1.DATA}}\n商品：{{thing2.DATA}}\n{{remark.DATA}}"
                .into(),
            example: String::new(),
        }
    }

    fn delivered(path: &str, body: Value) -> Value {
        json!({"appid": "wx1", "path": path, "touser": "o", "msgid": 7, "body": body, "at": 100})
    }

    #[test]
    fn a_template_message_shows_its_title_and_content_filled_in() {
        let body = json!({"template_id": "TPL_ORDER", "url": "https://example.com",
            "data": {"character_string1": {"value": "A1024"}, "thing2": {"value": "蓝牙耳机"},
                     "remark": {"value": ""}}});
        let shown = shown(
            &delivered("/cgi-bin/message/template/send", body),
            Some(&order()),
        );
        assert_eq!(
            shown,
            json!({"kind": "template", "title": "订单发货通知", "msgid": 7, "at": 100,
                   "lines": ["订单号：A1024", "商品：蓝牙耳机", "详情 ›"]})
        );
    }

    #[test]
    fn without_its_template_a_message_shows_its_keys_and_values() {
        let body = json!({"template_id": "SUB_1", "data": {"thing1": {"value": "<b>x</b>"}}});
        let shown = shown(&delivered("/cgi-bin/message/subscribe/send", body), None);
        assert_eq!(shown["kind"], "subscribe");
        assert_eq!(shown["title"], "SUB_1");
        assert_eq!(shown["lines"], json!(["thing1: <b>x</b>"]));
    }

    #[test]
    fn customer_service_messages_show_as_their_kind() {
        let cs = |body: Value| shown(&delivered("/cgi-bin/message/custom/send", body), None);
        let text = cs(json!({"msgtype": "text", "text": {"content": "您好"}}));
        assert_eq!(
            (text["kind"].as_str(), &text["lines"]),
            (Some("text"), &json!(["您好"]))
        );
        let image = cs(json!({"msgtype": "image", "image": {"media_id": "M"}}));
        assert_eq!(image["title"], "[图片]");
        let menu = cs(
            json!({"msgtype": "msgmenu", "msgmenu": {"head_content": "满意吗？",
            "list": [{"id": "1", "content": "满意"}, {"id": "2", "content": "不满意"}]}}),
        );
        assert_eq!(menu["options"], json!(["满意", "不满意"]));
        assert_eq!(menu["lines"], json!(["满意吗？"]));
        let news = cs(json!({"msgtype": "news", "news": {"articles": [
            {"title": "新品", "description": "秋季上新", "url": "https://e.com"}]}}));
        assert_eq!(
            (news["title"].as_str(), &news["lines"]),
            (Some("新品"), &json!(["秋季上新"]))
        );
        let mp =
            cs(json!({"msgtype": "miniprogrampage", "miniprogrampage": {"title": "查看订单"}}));
        assert_eq!(
            (mp["kind"].as_str(), mp["title"].as_str()),
            (Some("miniprogram"), Some("查看订单"))
        );
    }

    #[test]
    fn placeholders_without_an_end_stay_as_written() {
        let value = |_: &str| "v".to_string();
        assert_eq!(fill("a {{x.DATA}} b {{y", &value), "a v b {{y");
        assert_eq!(fill("{{k}}", &value), "v");
    }
}
