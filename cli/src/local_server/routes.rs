//! The local server's routes: `/v1` behind the bearer key and `/wechat` behind the callback
//! guard, each handed to its Lambda's own handler, and the emulator under `/sandbox`.

use crate::callback_guard::{CallbackGuard, Refusal};
use crate::sandbox::Emulator;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;
use wxpush_send::{LOCAL_CALLER, LocalPrincipal, MAX_BODY_BYTES, SendService};
use wxpush_shared::ApiError;
use wxpush_shared::callback::service::{CallbackService, MAX_CALLBACK_BODY};
use wxpush_shared::http::error_response;

/// What the handlers share.
#[derive(Clone)]
pub(super) struct AppState {
    pub send: Arc<SendService>,
    pub callback: Arc<CallbackService>,
    pub api_key: Arc<String>,
    pub guard: Arc<CallbackGuard>,
}

/// Every route, with the emulator's under `/sandbox` when there is one.
pub(super) fn router(state: AppState, emulator: Option<&Emulator>) -> Router {
    let mut router = Router::new()
        .route("/v1/{*rest}", axum::routing::any(private_api))
        .route("/wechat/{*rest}", axum::routing::any(wechat_callback))
        .with_state(state);
    if let Some(emu) = emulator {
        router = router.nest("/sandbox", emu.nested_router());
    }
    router.fallback(not_found)
}

async fn not_found(req: Request) -> Response {
    refuse(ApiError::NotFound(req.uri().path().to_string()))
}

fn bearer_ok(req: &Request, key: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time, and the lengths compared in the same pass.
    !key.is_empty() && bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

/// `/v1/...`: the bearer key stands in for IAM, then the Lambda's own handler.
async fn private_api(State(state): State<AppState>, req: Request) -> Response {
    if !bearer_ok(&req, &state.api_key) {
        let mut resp = refuse(ApiError::Unauthorized);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    match into_lambda(req, MAX_BODY_BYTES).await {
        Ok(mut req) => {
            // The bearer key's holder is the principal (there is no IAM here).
            req.extensions_mut()
                .insert(LocalPrincipal(LOCAL_CALLER.to_string()));
            into_axum(wxpush_send::handle(&state.send, req).await)
        }
        Err(resp) => resp,
    }
}

/// `/wechat/...`: public, as on API Gateway; the callback Lambda's own handler, behind the
/// guard (allow-list 403, rate limits 429, as the deployed WAF and API Gateway answer).
async fn wechat_callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match state.guard.check(peer.ip(), Instant::now()) {
        Ok(()) => {}
        Err(Refusal::NotAllowed) => return StatusCode::FORBIDDEN.into_response(),
        Err(Refusal::TooMany) => return StatusCode::TOO_MANY_REQUESTS.into_response(),
    }
    match into_lambda(req, MAX_CALLBACK_BODY).await {
        Ok(req) => into_axum(wxpush_callback::handle(&state.callback, req).await),
        Err(resp) => resp,
    }
}

/// The request as the Lambda would get it, or 413 past `limit` bytes.
async fn into_lambda(req: Request, limit: usize) -> Result<lambda_http::Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| refuse(ApiError::PayloadTooLarge { limit }))?;
    Ok(lambda_http::Request::from_parts(
        parts,
        lambda_http::Body::from(bytes.to_vec()),
    ))
}

/// A refusal, through the shared error mapping.
fn refuse(err: ApiError) -> Response {
    error_response(&err).map(Body::from)
}

fn into_axum(resp: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = resp.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(t) => Body::from(t),
        lambda_http::Body::Binary(b) => Body::from(b),
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    Response::from_parts(parts, body)
}
