//! The public WeChat callback `/wechat/{appid}`: API Gateway (no auth) on AWS, mounted as is
//! in `wxpush serve`. Thin: routing and HTTP; the logic is `wxpush_shared::callback`.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use wxpush_shared::ApiError;
use wxpush_shared::callback::service::{CallbackService, MAX_CALLBACK_BODY};
use wxpush_shared::clock::now_unix;
use wxpush_shared::http::{public_error_response as public_error, query_map, text_response};

pub use wxpush_shared::callback::service::CallbackService as Service;

pub async fn handle(svc: &CallbackService, req: Request) -> Response<Body> {
    let mut resp = match dispatch(svc, &req).await {
        Ok(resp) => resp,
        Err(err) => public_error(&err),
    };
    // The echo is the caller's own text: never let a browser sniff it into something else.
    resp.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    wxpush_shared::metrics::count(
        "ApiResponses",
        1.0,
        &[
            ("Function", "callback"),
            (
                "StatusClass",
                wxpush_shared::metrics::status_class(resp.status().as_u16()),
            ),
        ],
    );
    resp.map(Body::from)
}

/// The request's path as routed: a REST API's event (the callback's own API, `CallbackFirewall`
/// on) carries its stage, which `lambda_http` puts in front of the path (`/live/wechat/...`);
/// the HTTP API's `$default` stage adds nothing.
fn route_path(req: &Request) -> &str {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let path = req.uri().path();
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx
            .stage
            .as_deref()
            .and_then(|stage| path.strip_prefix('/')?.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    }
}

async fn dispatch(
    svc: &CallbackService,
    req: &Request,
) -> Result<http::Response<String>, ApiError> {
    let path = route_path(req);
    let appid = match path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["wechat", appid] => appid.to_string(),
        _ => return Err(ApiError::NotFound(path.to_string())),
    };
    let query = query_map(req.uri());
    match *req.method() {
        Method::GET => Ok(text_response(
            StatusCode::OK,
            svc.verify_url(&appid, &query, now_unix()).await?,
        )),
        Method::POST => {
            if req.body().len() > MAX_CALLBACK_BODY {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_CALLBACK_BODY,
                });
            }
            svc.receive(&appid, &query, req.body().as_ref(), now_unix())
                .await?;
            Ok(text_response(StatusCode::OK, "success".into()))
        }
        _ => Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: path.to_string(),
            allow: "GET, POST",
        }),
    }
}
