//! Real API Gateway v2 (HTTP API) events, from the fixtures in `tests/data/`: the private
//! `/v1` API and the public `/wechat/{appid}` route.

/// A real API Gateway v2 (HTTP API) event for the private `/v1` API, from the fixture, with
/// `method`, `path`, an optional JSON body and extra headers; signed by the fixture's caller.
pub fn apigw_v1_request(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    headers: &[(&str, &str)],
) -> lambda_http::Request {
    apigw_v1_request_as(
        "arn:aws-cn:sts::123456789012:assumed-role/order-service/order-service",
        method,
        path,
        body,
        headers,
    )
}

/// [`apigw_v1_request`] from the IAM principal `caller` (the `userArn` API Gateway verified).
pub fn apigw_v1_request_as(
    caller: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    headers: &[(&str, &str)],
) -> lambda_http::Request {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/apigw-v2-get-token.json"
    ))
    .unwrap();
    let mut e: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    e["rawQueryString"] = serde_json::json!(query);
    e["rawPath"] = serde_json::json!(path);
    e["requestContext"]["http"]["path"] = serde_json::json!(path);
    e["requestContext"]["http"]["method"] = serde_json::json!(method);
    e["requestContext"]["authorizer"]["iam"]["userArn"] = serde_json::json!(caller);
    e["routeKey"] = serde_json::json!("ANY /v1/{proxy+}");
    if let Some(b) = body {
        e["body"] = serde_json::json!(b.to_string());
        e["headers"]["content-type"] = serde_json::json!("application/json");
    }
    for (name, value) in headers {
        e["headers"][*name] = serde_json::json!(value);
    }
    lambda_http::request::from_str(&e.to_string()).expect("a real API Gateway v2 event parses")
}

/// A query map as a query string.
pub fn query_string(q: &std::collections::HashMap<String, String>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A real API Gateway v2 event for the public `/wechat/{appid}` route, from the fixture.
pub fn apigw_callback_request(
    method: &str,
    appid: &str,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    use base64::Engine;
    use serde_json::json;
    let mut e: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/apigw-v2-wechat-post.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let path = format!("/wechat/{appid}");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["routeKey"] = json!(format!("{method} /wechat/{{appid}}"));
    e["pathParameters"]["appid"] = json!(appid);
    e["rawQueryString"] = json!(query_string(q));
    e["queryStringParameters"] = json!(q);
    if base64 {
        e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        e["isBase64Encoded"] = json!(true);
    } else {
        e["body"] = json!(String::from_utf8_lossy(body));
    }
    lambda_http::request::from_str(&e.to_string()).expect("a real API Gateway v2 event parses")
}
