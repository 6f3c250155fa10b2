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
mod skip;
#[cfg(test)]
mod tests;
mod top;

use super::items::Audience;
use super::{MAX_MESSAGE_BYTES, MAX_RECIPIENTS, invalid};
use crate::error::ApiError;
use crate::send::validate::parse_send_request;
use message::Message;
use recipients::Listed;
use serde::de::DeserializeSeed;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use top::{Top, TopSeed};

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
    if message
        .get("fallback")
        .and_then(|f| f.get("client_msg_id"))
        .is_some()
    {
        return Err(invalid(
            "message.fallback.client_msg_id",
            "each recipient's message gets its own (from its message id); a batch cannot share one",
        ));
    }
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
