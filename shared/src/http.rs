//! The one place an [`ApiError`] (or a JSON value) becomes an HTTP response, shared by every
//! Lambda and the local server. Bodies are `String`; each entry point wraps them in its own
//! body type.

use crate::ApiError;
use http::{HeaderValue, Response, StatusCode, header};
use tracing::{error, info, warn};

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<String> {
    let mut resp = Response::new(body.to_string());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A query parameter's value (percent- and `+`-decoded), the first if it is repeated.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn text_response(status: StatusCode, body: String) -> Response<String> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub fn error_response(err: &ApiError) -> Response<String> {
    let status = err.status();
    if status.is_server_error() {
        warn!(code = err.code(), status = status.as_u16(), error = %err, "request failed");
    } else {
        info!(
            code = err.code(),
            status = status.as_u16(),
            "request refused"
        );
    }
    let mut resp = json_response(status, &err.body());
    if let ApiError::MethodNotAllowed { allow, .. } = err {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

/// [`error_response`] for a public route: a refusal says what was wrong with the request,
/// but a 5xx says nothing about the inside (no AWS error text, no table, role or parameter
/// names). The detail goes to the log only.
pub fn public_error_response(err: &ApiError) -> Response<String> {
    let status = err.status();
    if !status.is_server_error() {
        return error_response(err);
    }
    error!(code = err.code(), status = status.as_u16(), error = %err, "public request failed");
    let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
        (
            "service_unavailable",
            "the request could not be handled now; try again",
        )
    } else {
        ("internal_error", "the request could not be handled")
    };
    json_response(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

/// The query string as a map (first value wins), percent-decoded.
pub fn query_map(uri: &http::Uri) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}
