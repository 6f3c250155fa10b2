//! What a body says besides its message: `cap` (any message; `false` exempts it from the
//! app's daily cap), `require_grant` (`subscribe`, `oa_subscribe`: refuse before WeChat
//! without a known acceptance) and `fallback` (`custom`: the template or `oa_subscribe`
//! message sent instead when the customer-service window is closed). docs/sending.md, Know
//! before you send.

use super::fields::invalid;
use super::{SendRequest, parse_send_request};
use crate::error::ApiError;
use serde_json::{Map, Value};

/// The options of one body.
pub(super) struct Options {
    pub(super) require_grant: bool,
    pub(super) cap: bool,
    pub(super) fallback: Option<Box<SendRequest>>,
}

fn flag(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(name, "must be true or false")),
    }
}

/// The options of a body (whose fields were already checked against its kind's: only a
/// `custom` body can hold `fallback`, only a subscribe one `require_grant`).
pub(super) fn options(obj: &Map<String, Value>) -> Result<Options, ApiError> {
    let fallback = match obj.get("fallback") {
        None | Some(Value::Null) => None,
        Some(f) => Some(Box::new(fallback(f, obj.get("to"))?)),
    };
    Ok(Options {
        require_grant: flag(obj, "require_grant")?.unwrap_or(false),
        cap: flag(obj, "cap")?.unwrap_or(true),
        fallback,
    })
}

/// `fallback`: a template or `oa_subscribe` body without `to` (the custom message's is
/// used), checked as such a message; its refusals name `fallback.{field}`.
fn fallback(value: &Value, to: Option<&Value>) -> Result<SendRequest, ApiError> {
    let Value::Object(f) = value else {
        return Err(invalid(
            "fallback",
            "must be a template or oa_subscribe message without \"to\"",
        ));
    };
    if let Some(k) = ["to", "fallback", "cap"]
        .iter()
        .find(|k| f.contains_key(**k))
    {
        return Err(invalid(
            format!("fallback.{k}"),
            "is not a field of a fallback: it goes to the custom message's recipient, under its cap",
        ));
    }
    match f.get("type").and_then(Value::as_str) {
        Some("template" | "oa_subscribe") => {}
        _ => {
            return Err(invalid(
                "fallback.type",
                "a fallback is a \"template\" or an \"oa_subscribe\" message",
            ));
        }
    }
    let mut body = f.clone();
    if let Some(to) = to {
        body.insert("to".into(), to.clone());
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parse_send_request(&bytes).map_err(|e| match e {
        ApiError::Validation { field, message } => ApiError::Validation {
            field: format!("fallback.{field}"),
            message,
        },
        other => invalid("fallback", other.to_string()),
    })
}
