//! `POST /sandbox/login-codes`: the code a user's `wx.login` yields.

use super::{ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCode {
    appid: String,
    openid: String,
}

pub(super) async fn new_login_code(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let c: NewCode = parse_control(&body)?;
    let now = emu.now();
    let mut world = emu.world();
    known_app(&world, &c.appid)?;
    let code = world.new_login_code(&c.appid, &c.openid, now);
    Ok(Json(json!({"code": code})))
}
