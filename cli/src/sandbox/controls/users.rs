//! `POST /sandbox/users` and a user's follow / unfollow.

use super::{ControlError, ControlResult, known_app, parse_control};
use crate::sandbox::Emulator;
use crate::sandbox::world::{Interaction, User};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    appid: String,
    openid: String,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default = "yes")]
    subscribed: bool,
    /// Unix seconds of the user's last message (opens the customer-service window: 5
    /// messages in 48 hours).
    #[serde(default)]
    last_interaction: Option<i64>,
    /// The user blocked template messages: they are delivered as `failed:user block`.
    #[serde(default)]
    blocks_templates: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// `POST /sandbox/users`: one user object, or an array of them. All are checked before any is added.
pub(super) async fn add_users(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let users = match parse_control::<OneOrMany<NewUser>>(&body)? {
        OneOrMany::One(u) => vec![u],
        OneOrMany::Many(v) => v,
    };
    let now = emu.now();
    let mut world = emu.world();
    for u in &users {
        known_app(&world, &u.appid)?;
        if u.openid.is_empty() {
            return Err(ControlError::bad_request("openid must not be empty"));
        }
    }
    let added = users.len();
    for u in users {
        let user = User {
            unionid: u.unionid,
            subscribed: u.subscribed,
            subscribe_time: now,
            blocks_templates: u.blocks_templates,
        };
        world.add_user(&u.appid, &u.openid, user);
        if let Some(at) = u.last_interaction {
            world.interact(&u.appid, &u.openid, Interaction::Message, at);
        }
    }
    Ok(Json(json!({"added": added})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Following {
    appid: String,
    /// For a user new to the sandbox (follow only).
    #[serde(default)]
    unionid: Option<String>,
}

/// `POST /sandbox/users/{openid}/follow` and `/unfollow`: the user follows or unfollows the
/// official account; WeChat pushes `subscribe` / `unsubscribe` to its callback.
pub(super) async fn set_following(
    emu: Emulator,
    openid: String,
    body: Bytes,
    follow: bool,
) -> ControlResult {
    let f: Following = parse_control(&body)?;
    let now = emu.now();
    {
        let mut world = emu.world();
        known_app(&world, &f.appid)?;
        if openid.is_empty() || openid.len() > 64 {
            return Err(ControlError::bad_request("openid must be 1-64 characters"));
        }
        world
            .set_following(&f.appid, &openid, f.unionid, follow, now)
            .map_err(ControlError::bad_request)?;
    }
    emu.dispatch_pushes();
    Ok(Json(json!({"openid": openid, "subscribed": follow})))
}

pub(super) async fn follow(
    State(emu): State<Emulator>,
    axum::extract::Path(openid): axum::extract::Path<String>,
    body: Bytes,
) -> ControlResult {
    set_following(emu, openid, body, true).await
}

pub(super) async fn unfollow(
    State(emu): State<Emulator>,
    axum::extract::Path(openid): axum::extract::Path<String>,
    body: Bytes,
) -> ControlResult {
    set_following(emu, openid, body, false).await
}
