//! What WeChat pushes, in XML (official accounts, mini programs) or JSON (mini programs that
//! chose it), parsed into one shape (docs/wechat.md#message-and-event-pushes, #events).
//!
//! XML goes through quick-xml's event reader in one pass (`xml.rs`): no entities beyond the
//! five predefined ones and character references, no DTD, so entity bombs are parse errors.
//! JSON goes through serde_json (`json.rs`).

mod json;
#[cfg(test)]
mod tests;
mod xml;

use json::parse_json;
use thiserror::Error;
use xml::parse_xml;

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
    /// `FromUserName|CreateTime|Event|EventKey|MsgID` (docs/wechat.md#answering-retries-and-dedupe), of any length.
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
