//! A JSON push (mini programs that chose JSON) read into [`Fields`].

use super::{Fields, ParseError, SubscribeItem};
use serde_json::Value;

/// A JSON value as text: strings as they are, numbers printed (MsgId may be either).
fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn parse_json(body: &str) -> Result<Fields, ParseError> {
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
            template_id: json_text(i.get("TemplateId")).unwrap_or_default(),
            status: json_text(i.get("SubscribeStatusString")),
            popup_scene: json_text(i.get("PopupScene")),
            msg_id: json_text(i.get("MsgID")),
            error_code: json_text(i.get("ErrorCode")).and_then(|c| c.parse().ok()),
            error_status: json_text(i.get("ErrorStatus")),
        })
        .collect();
    Ok(Fields {
        to_user_name: json_text(obj.get("ToUserName")),
        from_user_name: json_text(obj.get("FromUserName")),
        create_time,
        msg_type: json_text(obj.get("MsgType")),
        event: json_text(obj.get("Event")),
        event_key: obj.get("EventKey").and_then(|k| json_text(Some(k))),
        msg_id: json_text(obj.get("MsgId")).or_else(|| json_text(obj.get("MsgID"))),
        status: json_text(obj.get("Status")),
        encrypt: json_text(obj.get("Encrypt")),
        subscribe_items: items,
    })
}
