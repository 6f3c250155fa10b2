//! What WeChat pushes, in XML (official accounts, mini programs) or JSON (mini programs that
//! chose it), parsed into one shape (facts.md §2.2, §2.4).
//!
//! XML goes through quick-xml's event reader in one pass (see `read_xml`): no entities
//! beyond the five predefined ones and character references, no DTD, so entity bombs are
//! parse errors.

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

    /// The key WeChat's retries share, as it goes into item keys and jobs: the
    /// [`full_dedupe_key`](Self::full_dedupe_key), or its short form when it is long (a menu
    /// URL in `EventKey`: [`crate::store::key_part`]).
    pub fn dedupe_key(&self) -> String {
        crate::store::key_part(&self.full_dedupe_key()).into_owned()
    }

    /// The key WeChat's retries share: `MsgId` for messages, else
    /// `FromUserName|CreateTime|Event|EventKey|MsgID` (facts.md §2.3), of any length.
    pub fn full_dedupe_key(&self) -> String {
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

/// `v` without surrounding blanks, `None` if nothing is left; a value with none to trim is
/// kept as it is (a 2.7 KB `Encrypt` is not copied again).
fn trimmed(v: Option<String>) -> Option<String> {
    let mut s = v?;
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s)
    } else if s.starts_with(t) {
        s.truncate(t.len());
        Some(s)
    } else {
        Some(t.to_string())
    }
}

/// Which field an element's text goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    ToUserName,
    FromUserName,
    CreateTime,
    MsgType,
    Event,
    EventKey,
    MsgId,
    MsgIdUpper,
    Status,
    Encrypt,
    TemplateId,
    SubscribeStatus,
    PopupScene,
    ItemMsgId,
    ErrorCode,
    ErrorStatus,
    /// An element wxpush does not read (its text is skipped).
    Other,
}

fn top_slot(name: &str) -> Slot {
    match name {
        "ToUserName" => Slot::ToUserName,
        "FromUserName" => Slot::FromUserName,
        "CreateTime" => Slot::CreateTime,
        "MsgType" => Slot::MsgType,
        "Event" => Slot::Event,
        "EventKey" => Slot::EventKey,
        "MsgId" => Slot::MsgId,
        "MsgID" => Slot::MsgIdUpper,
        "Status" => Slot::Status,
        "Encrypt" => Slot::Encrypt,
        _ => Slot::Other,
    }
}

fn item_slot(name: &str) -> Slot {
    match name {
        "TemplateId" => Slot::TemplateId,
        "SubscribeStatusString" => Slot::SubscribeStatus,
        "PopupScene" => Slot::PopupScene,
        "MsgID" => Slot::ItemMsgId,
        "ErrorCode" => Slot::ErrorCode,
        "ErrorStatus" => Slot::ErrorStatus,
        _ => Slot::Other,
    }
}

/// The raw fields of an XML push, as read.
#[derive(Default)]
struct XmlBody {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    event: Option<String>,
    event_key: Option<String>,
    msg_id: Option<String>,
    msg_id_upper: Option<String>,
    status: Option<String>,
    encrypt: Option<String>,
    items: Vec<XmlItem>,
}

#[derive(Default)]
struct XmlItem {
    template_id: Option<String>,
    status: Option<String>,
    popup_scene: Option<String>,
    msg_id: Option<String>,
    error_code: Option<String>,
    error_status: Option<String>,
}

impl XmlBody {
    fn set(&mut self, slot: Slot, text: String) {
        let target = match slot {
            Slot::ToUserName => &mut self.to_user_name,
            Slot::FromUserName => &mut self.from_user_name,
            Slot::CreateTime => &mut self.create_time,
            Slot::MsgType => &mut self.msg_type,
            Slot::Event => &mut self.event,
            Slot::EventKey => &mut self.event_key,
            Slot::MsgId => &mut self.msg_id,
            Slot::MsgIdUpper => &mut self.msg_id_upper,
            Slot::Status => &mut self.status,
            Slot::Encrypt => &mut self.encrypt,
            Slot::Other => return,
            item_slot => {
                let Some(item) = self.items.last_mut() else {
                    return;
                };
                match item_slot {
                    Slot::TemplateId => &mut item.template_id,
                    Slot::SubscribeStatus => &mut item.status,
                    Slot::PopupScene => &mut item.popup_scene,
                    Slot::ItemMsgId => &mut item.msg_id,
                    Slot::ErrorCode => &mut item.error_code,
                    _ => &mut item.error_status,
                }
            }
        };
        *target = Some(text);
    }
}

/// One pass of quick-xml's event reader over the body, borrowing the text (a 2 KB `Content`
/// is scanned, never copied): the root's children, and the `List` items of the three
/// subscribe-message events. Only the five predefined entities and character references are
/// expanded; a DTD is refused, so entity bombs are parse errors.
fn read_xml(body: &str) -> Result<XmlBody, ParseError> {
    use quick_xml::events::Event;
    let invalid = |e: &dyn std::fmt::Display| ParseError(format!("invalid XML: {e}"));
    let mut reader = quick_xml::Reader::from_str(body);
    let mut x = XmlBody::default();
    // The open elements: 1 = the root, 2 = a field or an event list, 3 = `List`, 4 = its field.
    let mut depth = 0usize;
    let mut in_event_list = false;
    let mut slot = Slot::Other;
    let mut text = String::new();
    let mut seen_root = false;
    // Bounded by the body: every turn consumes at least one event of it.
    loop {
        match reader.read_event().map_err(|e| invalid(&e))? {
            Event::Start(e) => {
                depth += 1;
                let name = e.name();
                let name = name.as_ref();
                match depth {
                    1 if seen_root => return Err(invalid(&"more than one root element")),
                    1 => seen_root = true,
                    2 => {
                        in_event_list = matches!(
                            name,
                            "SubscribeMsgPopupEvent"
                                | "SubscribeMsgChangeEvent"
                                | "SubscribeMsgSentEvent"
                        );
                        slot = if in_event_list {
                            Slot::Other
                        } else {
                            top_slot(name)
                        };
                    }
                    3 if in_event_list && name == "List" => x.items.push(XmlItem::default()),
                    4 if in_event_list => slot = item_slot(name),
                    _ => slot = Slot::Other,
                }
                text.clear();
            }
            Event::Empty(_) if depth == 0 && seen_root => {
                return Err(invalid(&"more than one root element"));
            }
            Event::Empty(_) if depth == 0 => seen_root = true,
            Event::Text(t) if slot != Slot::Other => text.push_str(&t.xml10_content()),
            Event::CData(c) if slot != Slot::Other => text.push_str(&c.xml10_content()),
            Event::GeneralRef(r) if slot != Slot::Other => {
                if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(|e| invalid(&e))? {
                        Some(c) => text.push(c),
                        None => return Err(invalid(&"a character reference to nothing")),
                    }
                } else {
                    let name = r.into_inner();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => text.push_str(v),
                        None => return Err(invalid(&format!("unknown entity &{name};"))),
                    }
                }
            }
            Event::GeneralRef(r)
                if !r.is_char_ref()
                    && quick_xml::escape::resolve_predefined_entity(&r.borrow().into_inner())
                        .is_none() =>
            {
                return Err(invalid(&"unknown entity"));
            }
            Event::End(_) => {
                if (depth == 2 || depth == 4) && slot != Slot::Other {
                    x.set(slot, std::mem::take(&mut text));
                }
                slot = Slot::Other;
                if depth == 2 {
                    in_event_list = false;
                }
                depth = depth.saturating_sub(1);
            }
            Event::DocType(_) => return Err(invalid(&"a DTD is not allowed")),
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || !seen_root {
        return Err(invalid(&"the document ends inside an element"));
    }
    Ok(x)
}

fn parse_xml(body: &str) -> Result<Fields, ParseError> {
    let x = read_xml(body)?;
    let create_time = match trimmed(x.create_time) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ParseError("CreateTime is not an integer".into()))?,
        ),
    };
    // Community report: some change events arrive wrapped as SubscribeMsgPopupEvent; all three are read alike.
    let items = x
        .items
        .into_iter()
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
    fn xml_text_is_read_as_xml_says() {
        // Predefined entities and character references are expanded; CDATA is taken as is;
        // unknown elements (nested too) are skipped; empty elements are absent fields.
        let m = parse_message("<xml><ToUserName/><FromUserName>o&amp;&#x31;&#50;</FromUserName><CreateTime> 7 </CreateTime><MsgType><![CDATA[te]]>xt</MsgType><Extra><Deep><MsgType>no</MsgType></Deep></Extra><EventKey><![CDATA[a&amp;b]]></EventKey></xml>").unwrap();
        assert_eq!(m.from_user_name, "o&12");
        assert_eq!((m.create_time, m.msg_type.as_str()), (7, "text"));
        assert_eq!(m.fields.event_key.as_deref(), Some("a&amp;b"));
        assert_eq!(m.to_user_name, "");
        for bad in [
            "<xml><FromUserName>&nbsp;</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType></xml>",
            "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType></xml><xml/>",
            "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType>",
            "<xml><FromUserName>o</ToUserName></xml>",
            "",
        ] {
            assert!(parse_message(bad).is_err(), "{bad}");
        }
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
