//! `POST /sandbox/faults` and `DELETE /sandbox/faults`: what the next calls on a WeChat
//! path do instead of answering.

use super::{ControlError, ControlResult, parse_control, wechat_path};
use crate::sandbox::Emulator;
use crate::sandbox::world::{Fault, FaultKind};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    path: String,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    http_status: Option<u16>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    after_delivery: bool,
    #[serde(default = "super::one")]
    times: u32,
}

pub(super) async fn add_fault(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let f: NewFault = parse_control(&body)?;
    let kind = match (f.errcode, f.http_status, f.delay_ms) {
        (Some(c), None, None) => FaultKind::ErrCode(c),
        (None, Some(s), None) if (100..=599).contains(&s) => FaultKind::HttpStatus(s),
        (None, None, Some(ms)) if ms <= 60_000 => FaultKind::Delay(ms),
        _ => {
            return Err(ControlError::bad_request(
                "give exactly one of errcode, http_status (100-599) or delay_ms (<= 60000)",
            ));
        }
    };
    let path = wechat_path(&f.path).to_string();
    if !path.starts_with("/cgi-bin/") && !path.starts_with("/sns/") {
        return Err(ControlError::bad_request(
            "path must be a WeChat path such as /cgi-bin/message/template/send",
        ));
    }
    if f.after_delivery && matches!(kind, FaultKind::ErrCode(_)) {
        return Err(ControlError::bad_request(
            "after_delivery goes with http_status or delay_ms: an errcode means WeChat did nothing",
        ));
    }
    let times = f.times.max(1);
    emu.world().faults.push(Fault {
        path,
        kind,
        after_delivery: f.after_delivery,
        remaining: times,
    });
    Ok(Json(json!({"queued": times})))
}

/// `DELETE /sandbox/faults` (an extension): every pending fault is dropped.
pub(super) async fn clear_faults(State(emu): State<Emulator>) -> ControlResult {
    let mut world = emu.world();
    let cleared: u64 = world.faults.iter().map(|f| f.remaining as u64).sum();
    world.faults.clear();
    Ok(Json(json!({"cleared": cleared})))
}
