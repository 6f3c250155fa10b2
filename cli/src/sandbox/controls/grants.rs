//! `POST /sandbox/grants`: a user accepts subscribe messages.

use super::{ControlError, ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use crate::sandbox::push::Push;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    appid: String,
    openid: String,
    template_id: String,
    #[serde(default = "super::one")]
    count: u32,
}

/// `POST /sandbox/grants`: the user accepts `count` subscribe messages of a template, and
/// WeChat pushes `subscribe_msg_popup_event` (one `accept` per acceptance) to the app.
pub(super) async fn add_grant(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let g: NewGrant = parse_control(&body)?;
    if g.count == 0 || g.count > 100 {
        return Err(ControlError::bad_request("count must be 1-100"));
    }
    let now = emu.now();
    {
        let mut world = emu.world();
        known_app(&world, &g.appid)?;
        world.add_grant(&g.appid, &g.openid, &g.template_id, g.count);
        world.pending_pushes.push(Push::popup_accepted(
            &g.appid,
            &g.openid,
            &g.template_id,
            g.count,
            now,
        ));
    }
    emu.dispatch_pushes();
    Ok(Json(json!({"granted": g.count})))
}
