//! A user's interactions: `POST /sandbox/users/{openid}/message`, `/click` and `/scan`. Each
//! opens the customer-service allowance WeChat gives it and is pushed to the app's callback
//! as WeChat pushes it (a text message, a `CLICK` event, a `SCAN` event).

use super::{ControlError, ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use crate::sandbox::push::Push;
use crate::sandbox::world::Interaction;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;
use wxpush_shared::AppKind;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserMessage {
    appid: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyedEvent {
    appid: String,
    #[serde(default)]
    key: String,
}

/// Records the interaction of a known user of `appid` (official accounts only for menu and
/// scan events) and pushes it.
fn interact(
    emu: &Emulator,
    appid: &str,
    openid: &str,
    kind: Interaction,
    push: impl FnOnce(i64, i64) -> Push,
) -> ControlResult {
    let now = emu.now();
    {
        let mut world = emu.world();
        known_app(&world, appid)?;
        if kind != Interaction::Message && world.apps[appid].kind != AppKind::OfficialAccount {
            return Err(ControlError::bad_request(
                "menu clicks and scans are an official account's events",
            ));
        }
        if !world.has_user(appid, openid) {
            return Err(ControlError::bad_request(format!(
                "{openid} is not a user of {appid}"
            )));
        }
        world.interact(appid, openid, kind, now);
        let msgid = world.next_msgid();
        world.pending_pushes.push(push(msgid, now));
    }
    emu.dispatch_pushes();
    Ok(Json(
        json!({"openid": openid, "interaction": kind.as_str()}),
    ))
}

/// `POST /sandbox/users/{openid}/message` `{"appid", "content"}`: the user sends a text
/// message (5 customer-service messages in 48 hours).
pub(super) async fn message(
    State(emu): State<Emulator>,
    Path(openid): Path<String>,
    body: Bytes,
) -> ControlResult {
    let m: UserMessage = parse_control(&body)?;
    if m.content.is_empty() {
        return Err(ControlError::bad_request("content must not be empty"));
    }
    let appid = m.appid.clone();
    interact(&emu, &appid, &openid, Interaction::Message, |msgid, now| {
        Push::text_message(&m.appid, &openid, &m.content, msgid, now)
    })
}

/// `POST /sandbox/users/{openid}/click` `{"appid", "key"}`: the user clicks a menu (3
/// customer-service messages in a minute).
pub(super) async fn click(
    State(emu): State<Emulator>,
    Path(openid): Path<String>,
    body: Bytes,
) -> ControlResult {
    let e: KeyedEvent = parse_control(&body)?;
    interact(&emu, &e.appid, &openid, Interaction::Click, |_, now| {
        Push::keyed_event(&e.appid, &openid, "CLICK", &e.key, now)
    })
}

/// `POST /sandbox/users/{openid}/scan` `{"appid", "key"}`: a follower scans a parametric QR
/// code (3 customer-service messages in a minute).
pub(super) async fn scan(
    State(emu): State<Emulator>,
    Path(openid): Path<String>,
    body: Bytes,
) -> ControlResult {
    let e: KeyedEvent = parse_control(&body)?;
    interact(&emu, &e.appid, &openid, Interaction::Scan, |_, now| {
        Push::keyed_event(&e.appid, &openid, "SCAN", &e.key, now)
    })
}
