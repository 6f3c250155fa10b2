//! What the emulator saw: the messages delivered, the events pushed, the calls per path and
//! the session keys issued.

use crate::sandbox::{Emulator, Query_};
use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

/// `GET /sandbox/pushes[?appid=]`: every event pushed back (or not) and its outcome.
pub(super) async fn list_pushes(State(emu): State<Emulator>, Query(q): Query_) -> Json<Value> {
    let world = emu.world();
    let pushes: Vec<&Value> = world
        .pushes
        .iter()
        .filter(|p| {
            q.get("appid")
                .is_none_or(|a| p.get("appid").and_then(Value::as_str) == Some(a))
        })
        .collect();
    Json(json!(pushes))
}

pub(super) async fn list_messages(State(emu): State<Emulator>, Query(q): Query_) -> Json<Value> {
    let world = emu.world();
    let messages: Vec<&Value> = world
        .messages
        .iter()
        .filter(|m| {
            q.get("appid")
                .is_none_or(|a| m.get("appid").and_then(Value::as_str) == Some(a))
        })
        .collect();
    Json(json!(messages))
}

/// Extension: every session_key `jscode2session` issued (to check wxpush never exposes one).
pub(super) async fn session_keys(State(emu): State<Emulator>) -> Json<Value> {
    Json(json!(emu.world().session_keys))
}

pub(super) async fn stats(State(emu): State<Emulator>) -> Json<Value> {
    Json(json!(emu.world().stats))
}
