//! The send API's request body, checked before WeChat is called: every refusal is a 422
//! naming the field (docs/wechat.md#template-messages, #subscribe-data-values, #customer-service-messages for WeChat's own limits).
//!
//! One file per message kind (`template.rs`, `subscribe.rs` for both subscribe kinds,
//! `custom.rs` for customer-service messages), the recipient in `recipient.rs`, and the
//! readers they share in `fields.rs`.

mod custom;
mod fields;
mod options;
mod recipient;
mod subscribe;
mod template;
#[cfg(test)]
mod tests;

use crate::error::ApiError;
use crate::wechat::{CustomBody, CustomService};
use fields::{Fields, invalid};
use serde_json::Value;

pub use custom::{CUSTOM_MSGTYPES, MINI_PROGRAM_CUSTOM_MSGTYPES};
pub use recipient::{
    IdField, Recipient, ToFields, check_recipient, missing_recipient, parse_recipient,
};
pub use subscribe::{OaSubscribeFields, SubscribeFields, check_subscribe_value};
pub use template::TemplateFields;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Template,
    Subscribe,
    /// An official account's 订阅通知 (`subscribe/bizsend`).
    OaSubscribe,
    Uniform,
    Custom,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Template => "template",
            MessageKind::Subscribe => "subscribe",
            MessageKind::OaSubscribe => "oa_subscribe",
            MessageKind::Uniform => "uniform",
            MessageKind::Custom => "custom",
        }
    }
}

impl MessageKind {
    /// The kind a body's `type` names.
    fn parse(kind: &str) -> Result<MessageKind, ApiError> {
        Ok(match kind {
            "template" => MessageKind::Template,
            "subscribe" => MessageKind::Subscribe,
            "oa_subscribe" => MessageKind::OaSubscribe,
            "uniform" => MessageKind::Uniform,
            "custom" => MessageKind::Custom,
            other => {
                return Err(invalid(
                    "type",
                    format!(
                        "`{other}` is not one of template, subscribe, oa_subscribe, uniform, custom"
                    ),
                ));
            }
        })
    }

    /// The body fields a message of this kind takes besides `type` and `to`: its own, and
    /// the objects of which one names the message's content (a custom message's msgtype).
    fn fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            MessageKind::Template | MessageKind::Uniform => (template::TEMPLATE_FIELDS, &[]),
            MessageKind::Subscribe => (subscribe::SUBSCRIBE_FIELDS, &[]),
            MessageKind::OaSubscribe => (subscribe::OA_SUBSCRIBE_FIELDS, &[]),
            MessageKind::Custom => (custom::CUSTOM_FIELDS, CUSTOM_MSGTYPES),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Template(TemplateFields),
    Subscribe(SubscribeFields),
    OaSubscribe(OaSubscribeFields),
    Custom {
        body: CustomBody,
        customservice: Option<CustomService>,
    },
}

/// A checked send request.
#[derive(Clone, Debug, PartialEq)]
pub struct SendRequest {
    pub kind: MessageKind,
    pub to: Recipient,
    pub payload: Payload,
    /// `subscribe` and `oa_subscribe`: refused before WeChat when wxpush knows no acceptance.
    pub require_grant: bool,
    /// Counted against the app's daily cap (`"cap": false` exempts the message).
    pub cap: bool,
    /// `custom`: what is sent instead when the customer-service window is closed.
    pub fallback: Option<Box<SendRequest>>,
}

impl SendRequest {
    /// The template the message is sent with, if it has one.
    pub fn template_id(&self) -> Option<&str> {
        match &self.payload {
            Payload::Template(t) => Some(&t.template_id),
            Payload::Subscribe(s) => Some(&s.template_id),
            Payload::OaSubscribe(s) => Some(&s.template_id),
            Payload::Custom { .. } => None,
        }
    }
}

/// The fields every message has.
const COMMON: &[&str] = &["type", "to", "cap"];

/// Parses and checks a send body. Malformed JSON is a 400; everything else a 422 naming the field.
pub fn parse_send_request(body: &[u8]) -> Result<SendRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    let f = Fields { obj };
    let kind = MessageKind::parse(f.req_str("type")?)?;
    let (allowed, objects) = kind.fields();
    if let Some(extra) = obj.keys().find(|k| {
        let k = k.as_str();
        !COMMON.contains(&k) && !allowed.contains(&k) && !objects.contains(&k)
    }) {
        return Err(invalid(
            extra.as_str(),
            format!("is not a field of a {} message", kind.as_str()),
        ));
    }
    let to = recipient::recipient(obj)?;
    if matches!(to, Recipient::AppOpenId { .. }) {
        check_recipient(kind, &to)?;
    }
    let payload = match kind {
        MessageKind::Template | MessageKind::Uniform => {
            Payload::Template(template::template_fields(&f)?)
        }
        MessageKind::Subscribe => Payload::Subscribe(subscribe::subscribe_fields(&f)?),
        MessageKind::OaSubscribe => Payload::OaSubscribe(subscribe::oa_subscribe_fields(&f)?),
        MessageKind::Custom => custom::custom_payload(&f)?,
    };
    let options = options::options(obj)?;
    Ok(SendRequest {
        kind,
        to,
        payload,
        require_grant: options.require_grant,
        cap: options.cap,
        fallback: options.fallback,
    })
}
