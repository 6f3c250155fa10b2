//! Who may call the controls.

use super::ControlError;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The controls change what "WeChat" does and list session keys, so only the operator's own
/// tools may call them: a `Host` that is an IP address or `localhost` (a web page that
/// rebinds its own DNS name to 127.0.0.1 sends its name), and a JSON body on every write (a
/// cross-site form post cannot send `application/json` without a preflight, which is never
/// answered).
pub(super) async fn guard_controls(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !host_is_local_or_ip(req.headers().get(axum::http::header::HOST)) {
        return ControlError(
            StatusCode::FORBIDDEN,
            "the sandbox controls answer only requests to an IP address or localhost".into(),
        )
        .into_response();
    }
    // Served with the peer's address (`wxpush serve`, `wxpush sandbox`): this machine only,
    // whatever `--host`, as the console.
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
        && !is_loopback(peer)
    {
        return ControlError(
            StatusCode::FORBIDDEN,
            "the sandbox controls answer only this machine (a loopback address)".into(),
        )
        .into_response();
    }
    let writes =
        req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let has_body = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0");
    if writes && !json && (has_body || req.method() == axum::http::Method::POST) {
        return ControlError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "sandbox controls take Content-Type: application/json".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// A `Host` header naming an IP address or `localhost` (with or without a port).
pub(crate) fn host_is_local_or_ip(host: Option<&axum::http::HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // Strip the port: `[::1]:3000`, `127.0.0.1:3000`, `localhost:3000`.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// A loopback peer, IPv4-mapped IPv6 (`::ffff:127.0.0.1`, a dual-stack listener's IPv4
/// peer) included.
pub(crate) fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}
