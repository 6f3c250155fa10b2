//! `POST /sandbox/tokens/invalidate`.

use super::{ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct AppOnly {
    appid: String,
}

pub(super) async fn invalidate_tokens(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let a: AppOnly = parse_control(&body)?;
    let mut world = emu.world();
    known_app(&world, &a.appid)?;
    let n = world.invalidate_tokens(&a.appid);
    Ok(Json(json!({"invalidated": n})))
}
