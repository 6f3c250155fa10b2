//! `GET /console/state` (bearer key): what the console cannot read through `/v1` without
//! seeing a secret — each configured app with its kind, its token state (valid for how long,
//! refreshing, the last refresh failure; never the token) and its follower sync — and
//! whether the emulator runs.

use super::super::routes::bearer_ok;
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use wxpush_shared::ApiError;
use wxpush_shared::clock::{now_unix, now_unix_millis};
use wxpush_shared::followers::FollowerSync;
use wxpush_shared::http::error_response;
use wxpush_shared::secrets::AppsFile;
use wxpush_shared::token::{TokenRecord, TokenStore};

/// What the state route reads.
pub(in crate::local_server) struct ConsoleState {
    pub apps: AppsFile,
    pub tokens: Arc<dyn TokenStore>,
    pub followers: Arc<FollowerSync>,
    pub api_key: Arc<String>,
    pub sandbox: bool,
}

pub(super) async fn console_state(
    State(state): State<Arc<ConsoleState>>,
    req: Request,
) -> Response {
    if !bearer_ok(&req, &state.api_key) {
        return error_response(&ApiError::Unauthorized)
            .map(axum::body::Body::from)
            .into_response();
    }
    let mut apps = Vec::with_capacity(state.apps.apps.len());
    for app in &state.apps.apps {
        let token = match state.tokens.load(&app.appid).await {
            Ok(record) => token_state(record.as_ref(), now_unix(), now_unix_millis()),
            Err(e) => json!({"state": "unreadable", "message": e.to_string()}),
        };
        let sync = match state.followers.progress(&app.appid).await {
            Ok(progress) => progress,
            Err(e) if e.code() == "no_sync" => Value::Null,
            Err(e) => json!({"state": "unreadable", "message": e.to_string()}),
        };
        apps.push(json!({
            "appid": app.appid,
            "kind": app.kind,
            "linked_official_account": app.linked_official_account,
            "token": token,
            "follower_sync": sync,
        }));
    }
    Json(json!({"sandbox": state.sandbox, "now": now_unix(), "apps": apps})).into_response()
}

/// A token's state for people: `valid` with seconds left, `expired`, or `none`; whether a
/// refresh holds the lease; the last refresh failure. Never the token.
fn token_state(record: Option<&TokenRecord>, now: i64, now_ms: i64) -> Value {
    let Some(r) = record else {
        return json!({"state": "none", "refreshing": false});
    };
    let mut v = match r.valid_token(now) {
        Some(_) => json!({"state": "valid", "expires_at": r.expires_at,
                          "expires_in": r.expires_at - now}),
        None if r.access_token.is_some() => json!({"state": "expired", "expires_at": r.expires_at}),
        None => json!({"state": "none"}),
    };
    v["refreshing"] = json!(r.lease_held_at(now_ms));
    if let Some(f) = &r.last_failure {
        v["last_failure"] = json!({"errcode": f.errcode, "message": f.message, "at_ms": f.at_ms});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_shared::Secret;
    use wxpush_shared::token::RefreshFailure;

    #[test]
    fn the_token_state_never_holds_the_token() {
        let record = TokenRecord {
            access_token: Some(Secret::new("TOKEN-VALUE")),
            expires_at: 1_000 + 7_200,
            last_failure: Some(RefreshFailure {
                errcode: Some(40164),
                message: "ip not allowed".into(),
                at_ms: 900_000,
            }),
            ..TokenRecord::default()
        };
        let v = token_state(Some(&record), 1_000, 1_000_000);
        assert_eq!(v["state"], "valid");
        assert_eq!(v["expires_in"], 7_200);
        assert_eq!(v["last_failure"]["errcode"], 40164);
        assert!(!v.to_string().contains("TOKEN-VALUE"));
        assert_eq!(token_state(Some(&record), 9_000, 0)["state"], "expired");
        assert_eq!(token_state(None, 0, 0)["state"], "none");
    }
}
