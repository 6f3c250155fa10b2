//! The private `/v1` API: IAM-authorised behind API Gateway on AWS, bearer-key protected
//! in `wxpush serve`. Both call [`handle`] with the same `lambda_http::Request`.
//!
//! Routes so far: `GET /v1/apps/{appid}/token`, `POST /v1/apps/{appid}/messages`,
//! `GET /v1/apps/{appid}/messages/{id}`, `POST /v1/apps/{appid}/sessions`,
//! `GET /v1/apps/{appid}/users`, `GET /v1/users/{unionid}`,
//! `POST`/`GET /v1/apps/{appid}/followers/sync`,
//! `POST /v1/apps/{appid}/batches`, `GET`/`DELETE /v1/apps/{appid}/batches/{id}`,
//! `GET /v1/apps/{appid}/quota`, `GET`/`POST /v1/apps/{appid}/templates`,
//! `DELETE /v1/apps/{appid}/templates/{id}`. The handler
//! is thin: it routes, parses and maps errors; the logic lives in `wxpush_shared`.

use http::{Method, StatusCode};
use lambda_http::RequestExt;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::ApiError;
use wxpush_shared::batch::{BatchConfig, Batches, is_batch_id};
use wxpush_shared::clock::{now_unix, now_unix_millis};
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::http::{error_response, json_response, query_value};
use wxpush_shared::identity::Identity;
use wxpush_shared::manage::quota;
use wxpush_shared::queue::JobQueue;
use wxpush_shared::runtime::UnconfiguredQueue;
use wxpush_shared::send::service::Sender;
use wxpush_shared::store::StateStore;
use wxpush_shared::templates::is_template_id;
use wxpush_shared::token::TokenManager;

/// Lambda's own payload limit; a larger body is refused with 413 before it is parsed.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// What the handler needs, built once per Lambda instance (or once per `wxpush serve`).
#[derive(Clone)]
pub struct SendService {
    pub tokens: Arc<TokenManager>,
    pub sender: Arc<Sender>,
    pub identity: Arc<Identity>,
    pub followers: Arc<FollowerSync>,
    pub batches: Arc<Batches>,
}

impl SendService {
    /// `wechat_timeout`: the WeChat client's per-request timeout (to budget retries).
    pub fn new(
        tokens: Arc<TokenManager>,
        store: Arc<dyn StateStore>,
        wechat_timeout: Duration,
    ) -> SendService {
        let sender = Arc::new(Sender::new(tokens.clone(), store.clone(), wechat_timeout));
        let identity = Arc::new(Identity::new(tokens.clone(), store.clone()));
        let queue: Arc<dyn JobQueue> = Arc::new(UnconfiguredQueue);
        let followers = Arc::new(FollowerSync::new(
            tokens.clone(),
            store.clone(),
            queue.clone(),
            SyncConfig::default(),
        ));
        let batches = Arc::new(Batches::new(
            sender.clone(),
            store,
            queue,
            BatchConfig::default(),
        ));
        SendService {
            tokens,
            sender,
            identity,
            followers,
            batches,
        }
    }

    /// The batches to create, read and cancel (their queue reaches the workers).
    pub fn with_batches(mut self, batches: Arc<Batches>) -> SendService {
        self.batches = batches;
        self
    }

    /// The follower sync to start runs with (its queue reaches the workers).
    pub fn with_followers(mut self, followers: Arc<FollowerSync>) -> SendService {
        self.followers = followers;
        self
    }
}

/// Without a Lambda deadline (the local server), a send may take this long.
const LOCAL_BUDGET: Duration = Duration::from_secs(25);

enum Route<'a> {
    Token { appid: &'a str },
    Send { appid: &'a str },
    Message { appid: &'a str, id: &'a str },
    Login { appid: &'a str },
    User { unionid: &'a str },
    AppUser { appid: &'a str },
    SyncStart { appid: &'a str },
    SyncProgress { appid: &'a str },
    BatchCreate { appid: &'a str },
    BatchStatus { appid: &'a str, id: &'a str },
    BatchCancel { appid: &'a str, id: &'a str },
    Quota { appid: &'a str },
    TemplateList { appid: &'a str },
    TemplateAdd { appid: &'a str },
    TemplateDelete { appid: &'a str, id: &'a str },
}

/// A message id as wxpush issues them: `msg_` and 32 lowercase hex digits.
fn is_message_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("msg_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A unionid as WeChat issues them (28 characters today): letters, digits, `-` and `_`.
fn is_unionid(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Matches the path; `Err` is a 404 or a 405 with the methods that are allowed. Path ids of
/// the wrong shape are 404 here, before they reach a store key.
fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["v1", "apps", appid, ..] if !wxpush_shared::is_valid_appid(appid) => {
            return Err(wxpush_shared::secrets::ConfigError::UnknownApp {
                appid: appid.chars().take(40).collect(),
            }
            .into());
        }
        ["v1", "apps", _, "messages", id] if !is_message_id(id) => {
            return Err(ApiError::NotFound(format!(
                "message {}: not a wxpush message id",
                id.chars().take(40).collect::<String>()
            )));
        }
        ["v1", "apps", _, "batches", id] if !is_batch_id(id) => {
            return Err(ApiError::NotFound(format!(
                "batch {}: not a wxpush batch id",
                id.chars().take(40).collect::<String>()
            )));
        }
        ["v1", "apps", _, "templates", id] if !is_template_id(id) => {
            return Err(ApiError::Missing {
                code: "template_not_found",
                message: format!(
                    "template {}: not a WeChat template id",
                    id.chars().take(40).collect::<String>()
                ),
            });
        }
        ["v1", "users", unionid] if !is_unionid(unionid) => {
            return Err(ApiError::NotFound(format!(
                "user {}: not a unionid",
                unionid.chars().take(40).collect::<String>()
            )));
        }
        _ => {}
    }
    let (route, allowed) = match segments.as_slice() {
        ["v1", "apps", appid, "token"] => (Route::Token { appid }, "GET"),
        ["v1", "apps", appid, "messages"] => (Route::Send { appid }, "POST"),
        ["v1", "apps", appid, "messages", id] => (Route::Message { appid, id }, "GET"),
        ["v1", "apps", appid, "sessions"] => (Route::Login { appid }, "POST"),
        ["v1", "users", unionid] => (Route::User { unionid }, "GET"),
        ["v1", "apps", appid, "users"] => (Route::AppUser { appid }, "GET"),
        ["v1", "apps", appid, "followers", "sync"] => match method.as_str() {
            "POST" => return Ok(Route::SyncStart { appid }),
            _ => (Route::SyncProgress { appid }, "GET, POST"),
        },
        ["v1", "apps", appid, "batches"] => (Route::BatchCreate { appid }, "POST"),
        ["v1", "apps", appid, "batches", id] => match method.as_str() {
            "DELETE" => return Ok(Route::BatchCancel { appid, id }),
            _ => (Route::BatchStatus { appid, id }, "GET, DELETE"),
        },
        ["v1", "apps", appid, "quota"] => (Route::Quota { appid }, "GET"),
        ["v1", "apps", appid, "templates"] => match method.as_str() {
            "POST" => return Ok(Route::TemplateAdd { appid }),
            _ => (Route::TemplateList { appid }, "GET, POST"),
        },
        ["v1", "apps", appid, "templates", id] => (Route::TemplateDelete { appid, id }, "DELETE"),
        _ => return Err(ApiError::NotFound(path.to_string())),
    };
    if method.as_str() != allowed.split(", ").next().unwrap_or(allowed) {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allow: allowed,
        });
    }
    Ok(route)
}

/// A shared-crate response as a Lambda response.
pub fn to_lambda(resp: http::Response<String>) -> Response<Body> {
    resp.map(Body::from)
}

/// The send function's service over its clients (what `main` runs).
pub fn service(
    deps: wxpush_shared::runtime::AwsDeps,
    batch_config: wxpush_shared::batch::BatchConfig,
) -> SendService {
    use std::sync::Arc;
    use wxpush_shared::batch::Batches;
    use wxpush_shared::followers::{FollowerSync, SyncConfig};
    let followers = Arc::new(FollowerSync::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
        deps.queue.clone(),
        SyncConfig::default(),
    ));
    let svc = SendService::new(deps.tokens, deps.state_store.clone(), deps.wechat_timeout)
        .with_followers(followers);
    let batches = Arc::new(Batches::new(
        svc.sender.clone(),
        deps.state_store,
        deps.queue,
        batch_config,
    ));
    svc.with_batches(batches)
}

pub async fn handle(svc: &SendService, req: Request) -> Response<Body> {
    let resp = match dispatch(svc, &req).await {
        Ok(resp) => resp,
        Err(err) => to_lambda(error_response(&err)),
    };
    wxpush_shared::metrics::count(
        "ApiResponses",
        1.0,
        &[
            ("Function", "send"),
            (
                "StatusClass",
                wxpush_shared::metrics::status_class(resp.status().as_u16()),
            ),
        ],
    );
    resp
}

/// Who is calling: the IAM principal API Gateway verified (its ARN), or, in the local
/// server, the holder of the bearer key.
pub fn caller(req: &Request) -> String {
    use lambda_http::request::RequestContext;
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone())
            .unwrap_or_else(|| "unauthenticated".to_string()),
        _ => LOCAL_CALLER.to_string(),
    }
}

/// The caller of every request the local server let through (it checked the bearer key).
pub const LOCAL_CALLER: &str = "local:bearer-key";

async fn dispatch(svc: &SendService, req: &Request) -> Result<Response<Body>, ApiError> {
    let caller = caller(req);
    tracing::info!(caller = %caller, method = %req.method(), path = req.uri().path(), "v1 request");
    if req.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    match route(req.method(), req.uri().path())? {
        Route::Token { appid } => get_token(svc, appid).await,
        Route::Send { appid } => {
            let key = idempotency_key(req)?;
            let outcome = svc
                .sender
                .send(appid, req.body().as_ref(), key, &caller, deadline(req))
                .await?;
            Ok(to_lambda(json_response(outcome.status, &outcome.body)))
        }
        Route::Message { appid, id } => ok(svc.sender.message(appid, id).await?),
        Route::Login { appid } => ok(svc.identity.login(appid, req.body().as_ref()).await?),
        Route::User { unionid } => ok(svc.identity.user(unionid).await?),
        Route::AppUser { appid } => {
            let unionid = query_param(req, "unionid");
            ok(svc.identity.app_user(appid, unionid.as_deref()).await?)
        }
        Route::SyncStart { appid } => {
            let body = svc.followers.start(appid, req.body().as_ref()).await?;
            Ok(to_lambda(json_response(StatusCode::ACCEPTED, &body)))
        }
        Route::SyncProgress { appid } => ok(svc.followers.progress(appid).await?),
        Route::BatchCreate { appid } => {
            let key = idempotency_key(req)?;
            let body = svc
                .batches
                .create(appid, req.body().as_ref(), key, &caller)
                .await?;
            Ok(to_lambda(json_response(StatusCode::ACCEPTED, &body)))
        }
        Route::BatchStatus { appid, id } => {
            let cursor = query_param(req, "cursor");
            ok(svc.batches.status(appid, id, cursor.as_deref()).await?)
        }
        Route::BatchCancel { appid, id } => ok(svc.batches.cancel(appid, id).await?),
        Route::Quota { appid } => {
            let path = query_param(req, "path");
            ok(quota(&svc.tokens, appid, path.as_deref()).await?)
        }
        Route::TemplateList { appid } => {
            let refresh = matches!(query_param(req, "refresh").as_deref(), Some("true" | "1"));
            ok(svc.sender.templates().list(appid, refresh).await?)
        }
        Route::TemplateAdd { appid } => {
            let (status, body) = svc
                .sender
                .templates()
                .add(appid, req.body().as_ref())
                .await?;
            Ok(to_lambda(json_response(status, &body)))
        }
        Route::TemplateDelete { appid, id } => {
            svc.sender.templates().delete(appid, id).await?;
            let mut resp = Response::new(Body::Empty);
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
    }
}

fn idempotency_key(req: &Request) -> Result<Option<&str>, ApiError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ApiError::Validation {
            field: "Idempotency-Key".into(),
            message: "must be printable ASCII".into(),
        }),
    }
}

/// A query parameter, decoded, from the URI (the same on API Gateway and in the local server).
fn query_param(req: &Request, name: &str) -> Option<String> {
    query_value(req.uri().query(), name)
}

fn ok(body: serde_json::Value) -> Result<Response<Body>, ApiError> {
    Ok(to_lambda(json_response(StatusCode::OK, &body)))
}

/// When the send must be done by: the Lambda's deadline, or [`LOCAL_BUDGET`] from now.
fn deadline(req: &Request) -> Instant {
    let now = Instant::now();
    match req.lambda_context_ref() {
        Some(ctx) if ctx.deadline > 0 => {
            let left = (ctx.deadline as i64 - now_unix_millis()).max(0) as u64;
            now + Duration::from_millis(left)
        }
        _ => now + LOCAL_BUDGET,
    }
}

/// `GET /v1/apps/{appid}/token`: the central control's token, for the company's services.
async fn get_token(svc: &SendService, appid: &str) -> Result<Response<Body>, ApiError> {
    let token = svc.tokens.get(appid).await?;
    let body = json!({
        "appid": appid,
        "access_token": token.token.expose(),
        "expires_at": token.expires_at,
        "expires_in": (token.expires_at - now_unix()).max(0),
    });
    Ok(to_lambda(json_response(StatusCode::OK, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef/token"),
            Ok(Route::Token {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(&Method::POST, "/v1/apps/wx0123456789abcdef/token"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::POST, "/v1/apps/wx0123456789abcdef/followers/sync"),
            Ok(Route::SyncStart {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef/followers/sync/"),
            Ok(Route::SyncProgress {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(
                &Method::DELETE,
                "/v1/apps/wx0123456789abcdef/followers/sync"
            ),
            Err(ApiError::MethodNotAllowed {
                allow: "GET, POST",
                ..
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/v2/apps/wx0123456789abcdef/token"),
            Err(ApiError::NotFound(_))
        ));
        // Path ids of the wrong shape never reach a store key.
        let long = format!("/v1/apps/{}/token", "a".repeat(5000));
        assert!(matches!(
            route(&Method::GET, &long),
            Err(ApiError::UnknownApp { .. })
        ));
        let app = "/v1/apps/wx0123456789abcdef";
        assert!(matches!(
            route(
                &Method::GET,
                &format!("{app}/messages/{}", "x".repeat(3000))
            ),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(
                &Method::GET,
                &format!("{app}/messages/msg_{}", "0a".repeat(16))
            ),
            Ok(Route::Message { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/quota")),
            Ok(Route::Quota { .. })
        ));
        assert!(matches!(
            route(&Method::POST, &format!("{app}/templates")),
            Ok(Route::TemplateAdd { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates")),
            Ok(Route::TemplateList { .. })
        ));
        assert!(matches!(
            route(&Method::DELETE, &format!("{app}/templates/Ab-c_1")),
            Ok(Route::TemplateDelete { id: "Ab-c_1", .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates/Ab-c_1")),
            Err(ApiError::MethodNotAllowed {
                allow: "DELETE",
                ..
            })
        ));
        assert!(matches!(
            route(&Method::DELETE, &format!("{app}/templates/bad%20id")),
            Err(ApiError::Missing { .. })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/users/o6_bmasdasdsad6_2sgVt7hMZOPfL"),
            Ok(Route::User { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("/v1/users/{}", "u".repeat(65))),
            Err(ApiError::NotFound(_))
        ));
    }
}
