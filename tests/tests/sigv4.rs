//! The operator CLI's SigV4 (`--auth sigv4`) against a local server that checks the
//! signature itself, the way API Gateway's IAM authorisation does, with its own SigV4
//! implementation (HMAC-SHA256 from aws-lc-rs, not the signer under test).

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_lc_rs::{digest, hmac};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wxpush_cli::auth::{Auth, SigV4Signer};
use wxpush_cli::client::ApiClient;

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "cn-north-1";

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The canonical request SigV4 signs: method, path, sorted query, the signed headers and the
/// body's hash.
fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &str,
    body: &[u8],
) -> String {
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|h| {
            let v = headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim();
            format!("{h}:{v}\n")
        })
        .collect();
    let mut query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (encode(&k), encode(&v)))
                .collect()
        })
        .unwrap_or_default();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_path: String = uri
        .path()
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/");
    format!(
        "{method}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        hex_sha256(body)
    )
}

/// Checks a request's SigV4 `Authorization` for `execute-api` in [`REGION`] with the one
/// known secret. `Err` says why it is refused.
fn verify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let parts: BTreeMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    let credential: Vec<&str> = parts
        .get("Credential")
        .ok_or("no Credential")?
        .split('/')
        .collect();
    let [key_id, date, region, service, "aws4_request"] = credential[..] else {
        return Err("bad Credential scope".into());
    };
    if key_id != ACCESS_KEY || region != REGION || service != "execute-api" {
        return Err(format!(
            "wrong key, region or service: {key_id} {region} {service}"
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("X-Amz-Date is not the scope's date".into());
    }
    let signed_headers = *parts.get("SignedHeaders").ok_or("no SignedHeaders")?;
    if !signed_headers.split(';').any(|h| h == "host") {
        return Err("host is not signed".into());
    }
    let canonical = canonical_request(method, uri, headers, signed_headers, body);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let expected = hex::encode(hmac_sha256(&key, &to_sign));
    let given = *parts.get("Signature").ok_or("no Signature")?;
    if given != expected {
        return Err("the signature does not match".into());
    }
    Ok(())
}

async fn checking_server() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                match verify(&method, &uri, &headers, &body) {
                    Ok(()) => {
                        s.lock().unwrap().push(format!("{method} {uri}"));
                        (
                            StatusCode::OK,
                            axum::Json(json!({"ok": true, "path": uri.path()})),
                        )
                    }
                    Err(why) => (
                        StatusCode::FORBIDDEN,
                        axum::Json(json!({"error": {"code": "forbidden", "message": why}})),
                    ),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, handle)
}

fn signer(secret: &str, session_token: Option<&str>) -> Auth {
    let creds = Credentials::new(
        ACCESS_KEY,
        secret,
        session_token.map(str::to_string),
        None,
        "test",
    );
    Auth::SigV4(SigV4Signer::new(
        SharedCredentialsProvider::new(creds),
        REGION,
    ))
}

#[tokio::test]
async fn signed_requests_pass_an_independent_check_and_wrong_ones_do_not() {
    let (url, seen, server) = checking_server().await;
    let api = ApiClient::with_auth(&url, signer(SECRET_KEY, None)).unwrap();
    // GET with a query, POST with a JSON body and an Idempotency-Key header, DELETE.
    let got = api
        .get("/v1/apps/wx0123456789abcdef/batches/bat_1?cursor=000001-00002&x=a%20b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["ok"], true);
    let body = json!({"type": "template", "to": {"unionid": "u 1/é"}, "data": {"thing1": {"value": "你好"}}});
    api.post_keyed("/v1/apps/wx0123456789abcdef/messages", &body, Some("key-1"))
        .await
        .unwrap()
        .unwrap();
    api.delete("/v1/apps/wx0123456789abcdef/batches/bat_1")
        .await
        .unwrap()
        .unwrap();
    // Temporary credentials carry their session token, signed too.
    let session =
        ApiClient::with_auth(&url, signer(SECRET_KEY, Some("FwoGZXIvYXdzEXAMPLE"))).unwrap();
    session.get("/v1/users/u1").await.unwrap().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4);

    // The wrong secret is refused by the server's own check.
    let wrong = ApiClient::with_auth(&url, signer("not-the-secret", None)).unwrap();
    let refused = wrong.get("/v1/users/u1").await.unwrap().unwrap_err();
    assert_eq!(refused.status, 403);
    assert_eq!(refused.message, "the signature does not match");
    assert_eq!(seen.lock().unwrap().len(), 4);
    server.abort();
}

#[tokio::test]
async fn a_bearer_client_sends_no_signature() {
    let (url, _seen, server) = checking_server().await;
    let api = ApiClient::new(&url, "local-key").unwrap();
    let refused: Value = match api.get("/v1/users/u1").await.unwrap() {
        Err(f) => json!(f.message),
        Ok(v) => panic!("{v}"),
    };
    assert_eq!(refused, "not AWS4-HMAC-SHA256");
    server.abort();
}
