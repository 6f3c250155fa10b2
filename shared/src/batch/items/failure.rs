//! A failure row (`bfail#…` / `{chunk}#{index}`): a recipient that failed, was given up, or
//! whose send may have been delivered (`unknown`), with why; `GET` lists them.

use super::UNKNOWN;
use crate::batch::recipient::Done;
use crate::clock::now_unix;
use crate::send::service::MESSAGE_TTL_SECS;
use crate::send::validate::Recipient;
use crate::store::{Attr, Attrs, ItemRead, attrs};
use serde_json::{Value, json};

/// The failure row of `recipient` (its key) for its outcome `done`.
pub(in crate::batch) fn failure_row(recipient: &str, done: Done) -> Attrs {
    let now = now_unix();
    let status = if done.outcome == UNKNOWN {
        "unknown"
    } else {
        "failed"
    };
    let mut row = attrs([
        ("recipient", recipient.into()),
        ("status", status.into()),
        (
            "error",
            done.detail.unwrap_or(Value::Null).to_string().into(),
        ),
        ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
    ]);
    if let Some(m) = done.message_id {
        row.insert("message_id".into(), m.into());
    }
    row
}

/// A failure row as `GET` lists it.
pub(in crate::batch) fn failure_json(row: &Attrs) -> Value {
    let mut f = json!({
        "recipient": row.text("recipient").and_then(Recipient::from_key).map(|r| r.to_json()),
        "status": row.text("status"),
        "error": row.text("error").and_then(|e| serde_json::from_str::<Value>(e).ok()),
    });
    if let Some(m) = row.text("message_id") {
        f["message_id"] = json!(m);
    }
    f
}
