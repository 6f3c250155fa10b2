//! The console (`/console/`): a web page over wxpush's state and, with `--sandbox`, the
//! emulator's phones. Static files embedded in the binary ([`assets`]), one JSON route of
//! its own ([`state`]: each app's token state and follower sync, never a token); everything
//! else it reads through `/v1` with the bearer key and through the `/sandbox` controls.
//!
//! Guarded like the sandbox controls and more: only a loopback peer, only a `Host` that is an
//! IP address or `localhost` (a page that rebinds its DNS name to 127.0.0.1 sends its own
//! name), and every answer with a Content-Security-Policy that allows no inline script,
//! nothing from elsewhere, and no framing. docs/console.md describes it.

mod assets;
mod state;

pub(super) use state::ConsoleState;

use crate::sandbox::{host_is_local_or_ip, is_loopback};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use wxpush_shared::ApiError;
use wxpush_shared::http::error_response;

/// What every console answer carries: scripts and styles from this origin only (no inline
/// script, no `eval`), requests to this origin only, no plugin, no base or form target
/// elsewhere, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/console/...`: the page, its files and its state route, behind the guard.
pub(super) fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { assets::serve("index.html") }))
        .route("/console/state", get(state::console_state))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { assets::serve(&file) }),
        )
        .layer(axum::middleware::from_fn(guarded))
        .with_state(state)
}

/// Every console request: refused unless it comes from this machine, and every answer with
/// the security headers.
async fn guarded(peer: ConnectInfo<SocketAddr>, req: Request, next: Next) -> Response {
    let resp = match refusal(peer, &req) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    with_headers(resp)
}

/// Only this machine: a loopback peer and a local `Host` (403 `forbidden_host` otherwise).
fn refusal(ConnectInfo(peer): ConnectInfo<SocketAddr>, req: &Request) -> Option<Response> {
    let host_ok = host_is_local_or_ip(req.headers().get(header::HOST));
    if !is_loopback(&peer) || !host_ok {
        let err = ApiError::Missing {
            code: "forbidden_host",
            message: "the console answers only this machine (a loopback address, with a Host \
                      that is an IP address or localhost)"
                .into(),
        };
        let mut resp = error_response(&err).map(axum::body::Body::from);
        *resp.status_mut() = StatusCode::FORBIDDEN;
        return Some(resp);
    }
    None
}

/// The security headers of every console answer, errors included.
fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.into_response()
}
