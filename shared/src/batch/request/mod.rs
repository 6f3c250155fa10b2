//! A batch request body (`POST /v1/apps/{appid}/batches`), read in one pass into typed
//! parts with memory bounded by what a valid batch needs: at most [`MAX_RECIPIENTS`]
//! recipients are kept (a longer list is counted to the limit and skipped), each as a short
//! key; the message is built only while its compact JSON stays within
//! [`MAX_MESSAGE_BYTES`]; every other value (unknown fields, a wrong `audience`, a body that
//! is no object) is skipped without being kept. A 6 MiB body of `[0,0,…]` therefore costs
//! nothing beyond its bytes, where a `serde_json::Value` of it took about 3 million values.
//!
//! The checks and their messages are those of the whole-`Value` reader this replaced, in the
//! same order: JSON syntax and nesting (400) first, then unknown fields, the message, the
//! audience or recipients, the count, each recipient.

mod message;
mod recipients;
#[cfg(test)]
mod tests;

use super::items::Audience;
use super::{MAX_MESSAGE_BYTES, MAX_RECIPIENTS, invalid};
use crate::error::ApiError;
use crate::send::validate::parse_send_request;
use message::{Message, MessageSeed};
use recipients::{ListSeed, Listed};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::fmt;

/// The scalar `visit_*` methods of a visitor that answers `$value` for any scalar.
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
use scalars_are;

/// A batch request, checked.
#[derive(Debug)]
pub(super) struct BatchRequest {
    pub message: Map<String, Value>,
    pub audience: Audience,
    /// Recipient keys, each once, in the order first listed.
    pub recipients: Vec<String>,
    pub duplicates: usize,
}

/// The message with a stand-in recipient, to check it as a single send would be.
pub(super) fn probe(message: &Map<String, Value>) -> Vec<u8> {
    let mut m = message.clone();
    m.insert("to".into(), json!({"openid": "batch-recipient"}));
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Reads and checks a batch body: 400 for JSON that does not parse or is no object, else a
/// 422 naming the field, or `invalid_recipients` listing the first
/// [`MAX_LISTED_INVALID`](super::MAX_LISTED_INVALID) bad recipients and their count.
pub(super) fn parse_batch_request(body: &[u8]) -> Result<BatchRequest, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = TopSeed
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Top::Object(top) = read else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    if let Some(extra) = top.unknown {
        return Err(invalid(
            extra,
            "is not a field of a batch (message, recipients, audience)",
        ));
    }
    let message = checked_message(top.message)?;
    let (audience, mut listed) = match (top.recipients, top.audience) {
        (Some(Some(listed)), None) => (Audience::Recipients, listed),
        (None, Some(true)) => (Audience::Followers, Listed::default()),
        (None, Some(false)) => {
            return Err(invalid(
                "audience",
                "the only audience is \"followers\" (every subscribed follower)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "recipients",
                "give recipients or an audience, not both",
            ));
        }
        (Some(None), None) => {
            return Err(invalid(
                "recipients",
                "must be an array of {\"openid\": ...} or {\"unionid\": ...}",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "recipients",
                "is required (or \"audience\": \"followers\")",
            ));
        }
    };
    if audience == Audience::Recipients {
        if listed.len == 0 {
            return Err(invalid("recipients", "must list at least one recipient"));
        }
        if listed.too_many {
            return Err(invalid(
                "recipients",
                format!(
                    "lists more than {MAX_RECIPIENTS} recipients; a batch takes at most {MAX_RECIPIENTS}"
                ),
            ));
        }
    }
    listed.check_kind(parse_send_request(&probe(&message))?.kind);
    if listed.count_bad > 0 {
        return Err(ApiError::InvalidRecipients {
            count: listed.count_bad,
            listed: listed.bad,
        });
    }
    let (recipients, duplicates) = deduplicated(listed.keys);
    Ok(BatchRequest {
        message,
        audience,
        recipients,
        duplicates,
    })
}

/// The message as read, checked in the order of a single send's fields, then as a single
/// send (field names prefixed `message.`).
fn checked_message(read: Option<Message>) -> Result<Map<String, Value>, ApiError> {
    let Some(Message::Object {
        map,
        size,
        has_to,
        has_client_msg_id,
    }) = read
    else {
        return Err(invalid(
            "message",
            "is required: the message to send, without \"to\"",
        ));
    };
    if has_to {
        return Err(invalid(
            "message.to",
            "a batch's recipients are listed in \"recipients\", not in the message",
        ));
    }
    if has_client_msg_id {
        return Err(invalid(
            "message.client_msg_id",
            "each recipient's message gets its own (from its message id); a batch cannot share one",
        ));
    }
    let message = match map {
        Some(map) if size <= MAX_MESSAGE_BYTES => map,
        _ => {
            return Err(invalid(
                "message",
                format!(
                    "is {size} bytes of JSON; a batch's message may have at most {MAX_MESSAGE_BYTES}"
                ),
            ));
        }
    };
    parse_send_request(&probe(&message)).map_err(|e| match e {
        ApiError::Validation { field, message } => invalid(format!("message.{field}"), message),
        other => other,
    })?;
    Ok(message)
}

/// Keys in the order first listed, each once, and how many repeats were dropped.
fn deduplicated(mut keys: Vec<String>) -> (Vec<String>, usize) {
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(keys.len());
        keys.iter().map(|k| seen.insert(k.as_str())).collect()
    };
    let before = keys.len();
    let mut flags = keep.into_iter();
    keys.retain(|_| flags.next().unwrap_or(false));
    let duplicates = before - keys.len();
    (keys, duplicates)
}

// ---------------------------------------------------------------- the body's top level

/// The body: an object's fields as read, or anything else (skipped).
enum Top {
    Object(Fields),
    NotObject,
}

/// The top-level fields. A repeated field counts as its last occurrence (as a JSON object
/// read into a map does); `unknown` is the first unknown name in key order.
#[derive(Default)]
struct Fields {
    message: Option<Message>,
    /// `Some(None)`: present but not an array.
    recipients: Option<Option<Listed>>,
    /// `Some(true)`: `"followers"`; `Some(false)`: anything else.
    audience: Option<bool>,
    unknown: Option<String>,
}

struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "message" => fields.message = Some(map.next_value_seed(MessageSeed::new())?),
                "recipients" => fields.recipients = Some(map.next_value_seed(ListSeed)?),
                "audience" => fields.audience = Some(map.next_value::<Followers>()?.0),
                _ => {
                    map.next_value::<Skip>()?;
                    if fields.unknown.as_ref().is_none_or(|u| name < *u) {
                        fields.unknown = Some(name);
                    }
                }
            }
        }
        Ok(Top::Object(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Top::NotObject)
    }
    scalars_are!(Top::NotObject);
}

/// Any JSON value, read and dropped. Nested arrays and objects go through the parser's
/// nesting limit, as when the body was read whole.
pub(super) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

pub(super) struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
    scalars_are!(Skip);
}

/// `audience`: whether it is the string `"followers"` (anything else is skipped).
struct Followers(bool);

impl<'de> Deserialize<'de> for Followers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Followers, D::Error> {
        d.deserialize_any(FollowersVisitor)
    }
}

struct FollowersVisitor;

impl<'de> Visitor<'de> for FollowersVisitor {
    type Value = Followers;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"followers\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Followers, E> {
        Ok(Followers(v == "followers"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Followers, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Followers(false))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Followers, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Followers(false))
    }
}
