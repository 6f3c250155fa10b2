//! `POST /sandbox/clock`: the emulator's clock moved forward.

use super::{ControlError, ControlResult, parse_control};
use crate::sandbox::Emulator;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    advance_secs: i64,
}

/// Extension: moves the emulator's clock forward (token expiry, quota days, code expiry).
pub(super) async fn advance_clock(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let c: Clock = parse_control(&body)?;
    if c.advance_secs < 0 {
        return Err(ControlError::bad_request(
            "advance_secs must not be negative",
        ));
    }
    let offset = emu
        .inner
        .clock_offset
        .fetch_add(c.advance_secs, Ordering::SeqCst)
        + c.advance_secs;
    Ok(Json(json!({"offset_secs": offset, "now": emu.now()})))
}
