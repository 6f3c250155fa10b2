//! The `/sandbox` controls: what tests and the operator use to shape the emulator's world
//! (users, grants, templates, faults, quotas, the clock) and to read what it saw. One file
//! per control; the guard in front of them all.

mod clock;
mod faults;
mod grants;
mod guard;
mod interactions;
mod limits;
mod login;
mod phones;
mod records;
mod templates;
mod tokens;
mod users;

pub(crate) use guard::{host_is_local_or_ip, is_loopback};

use super::world::World;
use super::{Emulator, callback_ips};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

impl Emulator {
    pub(super) fn control_routes(&self) -> Router {
        Router::new()
            .route("/users", post(users::add_users))
            .route("/users/{openid}/follow", post(users::follow))
            .route("/users/{openid}/unfollow", post(users::unfollow))
            .route("/users/{openid}/message", post(interactions::message))
            .route("/users/{openid}/click", post(interactions::click))
            .route("/users/{openid}/scan", post(interactions::scan))
            .route("/pushes", get(records::list_pushes))
            .route("/grants", post(grants::add_grant))
            .route("/login-codes", post(login::new_login_code))
            .route(
                "/faults",
                post(faults::add_fault).delete(faults::clear_faults),
            )
            .route("/tokens/invalidate", post(tokens::invalidate_tokens))
            .route("/messages", get(records::list_messages))
            .route("/phones", get(phones::list_phones))
            .route("/stats", get(records::stats))
            .route("/session-keys", get(records::session_keys))
            .route("/reset", post(reset))
            .route("/clock", post(clock::advance_clock))
            .route("/quotas", post(limits::set_quota))
            .route("/paging", post(limits::set_paging))
            .route("/templates", post(templates::add_template))
            .route("/templates/{id}/block", post(templates::block_template))
            .route("/callback-ips", post(callback_ips::set_callback_ips))
            // Bulk user loads (tens of thousands of followers) exceed axum's 2 MB default.
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .layer(axum::middleware::from_fn(guard::guard_controls))
            .with_state(self.clone())
    }
}

/// A refused control call; answers in the error shape of docs/api.md.
pub(super) struct ControlError(StatusCode, String);

impl ControlError {
    pub(super) fn bad_request(message: impl Into<String>) -> ControlError {
        ControlError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let code = match self.0 {
            StatusCode::NOT_FOUND => "unknown_app",
            StatusCode::FORBIDDEN => "forbidden_host",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_request",
        };
        (
            self.0,
            Json(json!({"error": {"code": code, "message": self.1}})),
        )
            .into_response()
    }
}

pub(super) type ControlResult = Result<Json<Value>, ControlError>;

pub(super) fn parse_control<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid body: {e}")))
}

fn known_app(world: &World, appid: &str) -> Result<(), ControlError> {
    if world.apps.contains_key(appid) {
        Ok(())
    } else {
        Err(ControlError(
            StatusCode::NOT_FOUND,
            format!("the sandbox does not know app {appid}"),
        ))
    }
}

fn one() -> u32 {
    1
}

/// A WeChat path as the controls accept it: with or without the `/sandbox` prefix.
fn wechat_path(path: &str) -> &str {
    path.strip_prefix("/sandbox").unwrap_or(path)
}

async fn reset(State(emu): State<Emulator>) -> Json<Value> {
    emu.world().reset();
    emu.inner.clock_offset.store(0, Ordering::SeqCst);
    emu.set_callback_ips(callback_ips::default_list());
    Json(json!({"reset": true}))
}
