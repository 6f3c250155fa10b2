//! What WeChat pushes, in XML (official accounts, mini programs) or JSON (mini programs that
//! chose it), parsed into one shape (facts.md §2.2, §2.4).
//!
//! XML goes through quick-xml's serde deserializer, which expands no entities beyond the
//! five predefined ones and reads no DTD, so entity bombs are parse errors.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("the message body cannot be read: {0}")]
pub struct ParseError(pub String);

/// One entry of a subscribe-message event's list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeItem {
    pub template_id: String,
    /// `accept` / `reject` (popup and change events).
    pub status: Option<String>,
    pub popup_scene: Option<String>,
    /// `subscribe_msg_sent_event`: the message and its outcome.
    pub msg_id: Option<String>,
    pub error_code: Option<i64>,
    pub error_status: Option<String>,
}

/// The fields wxpush uses, from either format; everything else stays in the raw body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub to_user_name: Option<String>,
    pub from_user_name: Option<String>,
    pub create_time: Option<i64>,
    pub msg_type: Option<String>,
    pub event: Option<String>,
    pub event_key: Option<String>,
    /// `MsgId` (messages) or `MsgID` (TEMPLATESENDJOBFINISH, subscribe_msg_sent_event).
    pub msg_id: Option<String>,
    pub status: Option<String>,
    pub encrypt: Option<String>,
    pub subscribe_items: Vec<SubscribeItem>,
}

/// A message or event, with the fields every push has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    pub to_user_name: String,
    pub from_user_name: String,
    pub create_time: i64,
    pub msg_type: String,
    pub fields: Fields,
}

impl InboundMessage {
    pub fn event(&self) -> Option<&str> {
        self.fields.event.as_deref()
    }

    /// The key WeChat's retries share: `MsgId` for messages, else
    /// `FromUserName|CreateTime|Event|EventKey` (facts.md §2.3).
    pub fn dedupe_key(&self) -> String {
        match (&self.fields.msg_id, self.msg_type.as_str()) {
            (Some(id), t) if t != "event" => format!("msg|{id}"),
            _ => {
                // `subscribe_msg_sent_event` carries its MsgIDs inside the list: two pushes for
                // one user in one second differ only there.
                let mut listed: Vec<&str> = self
                    .fields
                    .subscribe_items
                    .iter()
                    .filter_map(|i| i.msg_id.as_deref())
                    .collect();
                listed.sort_unstable();
                let mut key = format!(
                    "evt|{}|{}|{}|{}|{}",
                    self.from_user_name,
                    self.create_time,
                    self.fields.event.as_deref().unwrap_or(""),
                    self.fields.event_key.as_deref().unwrap_or(""),
                    self.fields.msg_id.as_deref().unwrap_or("")
                );
                if !listed.is_empty() {
                    key.push('|');
                    key.push_str(&listed.join(","));
                }
                key
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

/// XML or JSON, by the body's first non-blank character.
pub fn detect_format(body: &str) -> Result<Format, ParseError> {
    match body.trim_start().chars().next() {
        Some('<') => Ok(Format::Xml),
        Some('{') => Ok(Format::Json),
        _ => Err(ParseError("expected an XML or JSON body".into())),
    }
}

pub fn parse_fields(body: &str) -> Result<Fields, ParseError> {
    match detect_format(body)? {
        Format::Xml => parse_xml(body),
        Format::Json => parse_json(body),
    }
}

pub fn parse_message(body: &str) -> Result<InboundMessage, ParseError> {
    let fields = parse_fields(body)?;
    let missing = |name: &str| ParseError(format!("{name} is missing"));
    Ok(InboundMessage {
        to_user_name: fields.to_user_name.clone().unwrap_or_default(),
        from_user_name: fields
            .from_user_name
            .clone()
            .filter(|f| !f.is_empty())
            .ok_or_else(|| missing("FromUserName"))?,
        create_time: fields.create_time.ok_or_else(|| missing("CreateTime"))?,
        msg_type: fields
            .msg_type
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| missing("MsgType"))?,
        fields,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct XmlBody {
    #[serde(rename = "ToUserName")]
    to_user_name: Option<String>,
    #[serde(rename = "FromUserName")]
    from_user_name: Option<String>,
    #[serde(rename = "CreateTime")]
    create_time: Option<String>,
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "EventKey")]
    event_key: Option<String>,
    #[serde(rename = "MsgId")]
    msg_id: Option<String>,
    #[serde(rename = "MsgID")]
    msg_id_upper: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "Encrypt")]
    encrypt: Option<String>,
    #[serde(rename = "SubscribeMsgPopupEvent")]
    popup: Option<XmlList>,
    #[serde(rename = "SubscribeMsgChangeEvent")]
    change: Option<XmlList>,
    #[serde(rename = "SubscribeMsgSentEvent")]
    sent: Option<XmlList>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct XmlList {
    #[serde(rename = "List")]
    list: Vec<XmlItem>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct XmlItem {
    #[serde(rename = "TemplateId")]
    template_id: Option<String>,
    #[serde(rename = "SubscribeStatusString")]
    status: Option<String>,
    #[serde(rename = "PopupScene")]
    popup_scene: Option<String>,
    #[serde(rename = "MsgID")]
    msg_id: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorStatus")]
    error_status: Option<String>,
}

fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn parse_xml(body: &str) -> Result<Fields, ParseError> {
    let x: XmlBody =
        quick_xml::de::from_str(body).map_err(|e| ParseError(format!("invalid XML: {e}")))?;
    let create_time = match trimmed(x.create_time) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ParseError("CreateTime is not an integer".into()))?,
        ),
    };
    // Community report: some change events arrive wrapped as SubscribeMsgPopupEvent; all three are read alike.
    let items = [x.popup, x.change, x.sent]
        .into_iter()
        .flatten()
        .flat_map(|l| l.list)
        .map(|i| SubscribeItem {
            template_id: i.template_id.unwrap_or_default(),
            status: trimmed(i.status),
            popup_scene: trimmed(i.popup_scene),
            msg_id: trimmed(i.msg_id),
            error_code: trimmed(i.error_code).and_then(|c| c.parse().ok()),
            error_status: trimmed(i.error_status),
        })
        .collect();
    Ok(Fields {
        to_user_name: trimmed(x.to_user_name),
        from_user_name: trimmed(x.from_user_name),
        create_time,
        msg_type: trimmed(x.msg_type),
        event: trimmed(x.event),
        event_key: x.event_key.map(|k| k.trim().to_string()),
        msg_id: trimmed(x.msg_id).or(trimmed(x.msg_id_upper)),
        status: trimmed(x.status),
        encrypt: trimmed(x.encrypt),
        subscribe_items: items,
    })
}

/// A JSON value as text: strings as they are, numbers printed (MsgId may be either).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_json(body: &str) -> Result<Fields, ParseError> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ParseError("expected a JSON object".into()))?;
    let create_time = match obj.get("CreateTime") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| ParseError("CreateTime is not an integer".into()))?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| ParseError("CreateTime is not an integer".into()))?,
        ),
        Some(_) => return Err(ParseError("CreateTime is not an integer".into())),
    };
    // `List` is an array, or a single object for some events; both are accepted.
    let list: Vec<&Value> = match obj.get("List") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => vec![],
    };
    let items = list
        .into_iter()
        .map(|i| SubscribeItem {
            template_id: text(i.get("TemplateId")).unwrap_or_default(),
            status: text(i.get("SubscribeStatusString")),
            popup_scene: text(i.get("PopupScene")),
            msg_id: text(i.get("MsgID")),
            error_code: text(i.get("ErrorCode")).and_then(|c| c.parse().ok()),
            error_status: text(i.get("ErrorStatus")),
        })
        .collect();
    Ok(Fields {
        to_user_name: text(obj.get("ToUserName")),
        from_user_name: text(obj.get("FromUserName")),
        create_time,
        msg_type: text(obj.get("MsgType")),
        event: text(obj.get("Event")),
        event_key: obj.get("EventKey").and_then(|k| text(Some(k))),
        msg_id: text(obj.get("MsgId")).or_else(|| text(obj.get("MsgID"))),
        status: text(obj.get("Status")),
        encrypt: text(obj.get("Encrypt")),
        subscribe_items: items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xml_text_message_and_event() {
        let m = parse_message("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>24012345678901234</MsgId></xml>").unwrap();
        assert_eq!(
            (
                m.from_user_name.as_str(),
                m.create_time,
                m.msg_type.as_str()
            ),
            ("o1", 1700000000, "text")
        );
        assert_eq!(m.dedupe_key(), "msg|24012345678901234");
        let e = parse_message("<xml><ToUserName>gh</ToUserName><FromUserName>o2</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>200163836</MsgID><Status><![CDATA[failed: system failed]]></Status></xml>").unwrap();
        assert_eq!(e.fields.msg_id.as_deref(), Some("200163836"));
        assert_eq!(e.fields.status.as_deref(), Some("failed: system failed"));
        assert_eq!(e.dedupe_key(), "evt|o2|5|TEMPLATESENDJOBFINISH||200163836");
    }

    #[test]
    fn subscribe_lists_in_both_formats() {
        let xml = "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List><List><TemplateId>T2</TemplateId><SubscribeStatusString>reject</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent></xml>";
        let m = parse_message(xml).unwrap();
        assert_eq!(m.fields.subscribe_items.len(), 2);
        assert_eq!(
            m.fields.subscribe_items[1].status.as_deref(),
            Some("reject")
        );
        let json = r#"{"FromUserName":"o","CreateTime":"1","MsgType":"event","Event":"subscribe_msg_sent_event","List":{"TemplateId":"T1","MsgID":"1700","ErrorCode":"0","ErrorStatus":"success"}}"#;
        let m = parse_message(json).unwrap();
        assert_eq!(m.fields.subscribe_items[0].error_code, Some(0));
        assert_eq!(m.fields.subscribe_items[0].msg_id.as_deref(), Some("1700"));
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><FromUserName>&lol2;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"#;
        assert!(parse_message(bomb).is_err());
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(5000), "</a>".repeat(5000));
        assert!(parse_message(&deep).is_err());
        // Deep unknown elements beside valid fields are skipped without blowing the stack.
        let deep_valid = format!(
            "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>{}{}</xml>",
            "<a>".repeat(20_000),
            "</a>".repeat(20_000)
        );
        let _ = parse_message(&deep_valid);
        let deep_json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_message(&deep_json).is_err());
        assert!(parse_message("hello").is_err());
        assert!(parse_message("<xml><CreateTime>soon</CreateTime></xml>").is_err());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in ".{0,300}") {
            let _ = parse_message(&s);
            let _ = parse_message(&format!("<xml>{s}</xml>"));
            let _ = parse_message(&format!("{{\"FromUserName\":{s}}}"));
        }
    }
}
