//! The private `/v1` API: IAM-authorised behind API Gateway on AWS, bearer-key protected
//! in `wxpush serve`. Both call [`handle`] with the same `lambda_http::Request` (the Lambda
//! through [`handle_lambda`], which refuses events that are not API Gateway requests).
//!
//! Routes so far: `GET /v1/apps/{appid}/token`, `POST /v1/apps/{appid}/messages`,
//! `GET /v1/apps/{appid}/messages` (the app's messages, newest first),
//! `GET /v1/apps/{appid}/messages/{id}`, `POST /v1/apps/{appid}/sessions`,
//! `GET /v1/apps/{appid}/users`, `GET /v1/apps/{appid}/users/{openid}`,
//! `GET /v1/users/{unionid}`,
//! `POST`/`GET /v1/apps/{appid}/followers/sync`,
//! `POST`/`GET /v1/apps/{appid}/batches`, `GET`/`DELETE /v1/apps/{appid}/batches/{id}`,
//! `GET /v1/apps/{appid}/events`,
//! `GET /v1/apps/{appid}/quota`, `GET`/`POST /v1/apps/{appid}/templates`,
//! `DELETE /v1/apps/{appid}/templates/{id}`, `GET /v1/apps/{appid}/templates/{id}/blocked`.
//! The handler
//! is thin: it routes, parses and maps errors; the logic lives in `wxpush_shared`.

mod routes;

use http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use routes::{Route, route};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::ApiError;
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::callback::events::RecordedEvents;
use wxpush_shared::clock::{now_unix, now_unix_millis};
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::http::{error_response, json_response, query_value};
use wxpush_shared::identity::Identity;
use wxpush_shared::listing::ListQuery;
use wxpush_shared::queue::JobQueue;
use wxpush_shared::quota::quota;
use wxpush_shared::runtime::UnconfiguredQueue;
use wxpush_shared::send::service::Sender;
use wxpush_shared::store::StateStore;
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
    /// The recorded callback events, listed (`GET /v1/apps/{appid}/events`).
    pub events: Arc<RecordedEvents>,
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
        let events = Arc::new(RecordedEvents::new(store.clone(), tokens.secrets().clone()));
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
            events,
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

/// The Lambda's handler: an API Gateway HTTP API request is handled; any other event (a
/// direct invoke with some other payload) is an invocation error, never served.
pub async fn handle_lambda(
    svc: &SendService,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    if !matches!(
        req.request_context_ref(),
        Some(RequestContext::ApiGatewayV2(_))
    ) {
        tracing::error!(
            method = %req.method(),
            path = req.uri().path(),
            "an invocation that is not an API Gateway HTTP API request: refused"
        );
        return Err("not an API Gateway HTTP API request: refused".into());
    }
    Ok(handle(svc, req).await)
}

/// Handles one `/v1` request (the Lambda's and the local server's).
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

/// The principal the local server vouches for after checking the bearer key, passed to
/// [`handle`] as a request extension. Requests from API Gateway never carry it: their
/// principal is the IAM one in their request context.
#[derive(Clone, Debug)]
pub struct LocalPrincipal(pub String);

/// The caller of every request the local server let through (it checked the bearer key).
pub const LOCAL_CALLER: &str = "local:bearer-key";

/// Who is calling: the IAM principal API Gateway verified (its ARN), or the local server's
/// [`LocalPrincipal`]. Without either, nobody: 401 `unauthenticated`.
pub fn caller(req: &Request) -> Result<String, ApiError> {
    let principal = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone()),
        Some(_) => None,
        None => req
            .extensions()
            .get::<LocalPrincipal>()
            .map(|p| p.0.clone()),
    };
    principal.filter(|p| !p.is_empty()).ok_or_else(|| {
        ApiError::Unauthenticated(
            "the request has no IAM principal; /v1 requests are signed (SigV4) and authorised by IAM"
                .into(),
        )
    })
}

/// The path as the caller sent it: API Gateway's `rawPath` (the URI lambda_http builds from
/// it resolves `.` and `..` segments and backslashes), else the URI's path (the local server).
fn raw_path(req: &Request) -> &str {
    match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
}

/// Who may make this request, logged: its principal (else 401), its body within
/// [`MAX_BODY_BYTES`] (else 413).
fn admit(req: &Request) -> Result<String, ApiError> {
    let path = raw_path(req);
    let caller = match caller(req) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(method = %req.method(), path, "a /v1 request without an IAM principal: refused");
            return Err(e);
        }
    };
    tracing::info!(caller = %caller, method = %req.method(), path, "v1 request");
    if req.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(caller)
}

async fn dispatch(svc: &SendService, req: &Request) -> Result<Response<Body>, ApiError> {
    let caller = admit(req)?;
    match route(req.method(), raw_path(req))? {
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
        Route::MessageList { appid } => {
            let query = list_query(req)?;
            ok(svc.sender.messages(appid, &query).await?)
        }
        Route::Login { appid } => ok(svc.identity.login(appid, req.body().as_ref()).await?),
        Route::User { unionid } => ok(svc.identity.user(unionid).await?),
        Route::AppUser { appid } => {
            let unionid = query_param(req, "unionid");
            ok(svc.identity.app_user(appid, unionid.as_deref()).await?)
        }
        Route::UserView { appid, openid } => {
            svc.tokens.secrets().app(appid).await?;
            let templates = svc.sender.templates();
            ok(svc.sender.users().view(appid, openid, templates).await?)
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
        Route::BatchList { appid } => ok(svc.batches.list(appid, &list_query(req)?).await?),
        Route::EventList { appid } => ok(svc.events.list(appid, &list_query(req)?).await?),
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
        Route::TemplateBlocked { appid, id } => {
            let (cursor, limit) = (query_param(req, "cursor"), query_param(req, "limit"));
            let templates = svc.sender.templates();
            ok(templates
                .blocked(appid, id, cursor.as_deref(), limit.as_deref())
                .await?)
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

/// A list route's `?cursor=` and `?limit=`, checked.
fn list_query(req: &Request) -> Result<ListQuery, ApiError> {
    ListQuery::parse(
        query_param(req, "cursor").as_deref(),
        query_param(req, "limit").as_deref(),
    )
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
