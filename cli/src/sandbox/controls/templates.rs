//! `POST /sandbox/templates`: a template added as in WeChat's console;
//! `POST /sandbox/templates/{id}/block`: WeChat intercepts its next messages.

use super::{ControlError, ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use crate::sandbox::world::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTemplate {
    appid: String,
    id: String,
    kind: String,
    title: String,
    content: String,
    #[serde(default)]
    example: String,
}

/// `POST /sandbox/templates`: a template the app has, as if added in WeChat's console.
pub(super) async fn add_template(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let t: NewTemplate = parse_control(&body)?;
    if !matches!(
        t.kind.as_str(),
        "template" | "subscribe_once" | "subscribe_long_term"
    ) {
        return Err(ControlError::bad_request(
            "kind must be template, subscribe_once or subscribe_long_term",
        ));
    }
    if t.id.is_empty() || t.content.is_empty() {
        return Err(ControlError::bad_request(
            "id and content must not be empty",
        ));
    }
    let mut world = emu.world();
    known_app(&world, &t.appid)?;
    let app_kind = world.apps[&t.appid].kind;
    if t.kind == "template" && app_kind != wxpush_shared::AppKind::OfficialAccount {
        return Err(ControlError::bad_request(
            "template messages belong to official accounts",
        ));
    }
    world.add_template(
        &t.appid,
        Template {
            id: t.id.clone(),
            kind: t.kind,
            title: t.title,
            content: t.content,
            example: t.example,
        },
    );
    Ok(Json(json!({"id": t.id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    appid: String,
}

/// `POST /sandbox/templates/{id}/block` `{"appid"}`: WeChat intercepts the template's next
/// messages (errcode 0, never delivered, listed by `queryblocktmplmsg`).
pub(super) async fn block_template(
    State(emu): State<Emulator>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> ControlResult {
    let b: Block = parse_control(&body)?;
    if id.is_empty() || id.len() > 128 {
        return Err(ControlError::bad_request(
            "a template id is 1-128 characters",
        ));
    }
    let mut world = emu.world();
    known_app(&world, &b.appid)?;
    world.block_template(&b.appid, &id);
    Ok(Json(json!({"id": id, "blocked": true})))
}
