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

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1` (also written as
/// the IPv4-mapped `::ffff:127.x.y.z`); IPv6 may be in brackets, as URLs write it. A plain
/// `http://` request to such a host never leaves the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "[2001:db8::1]",
            "[::ffff:10.0.0.1]",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
