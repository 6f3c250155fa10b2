//! A webhook receiver as a user would run one, and a bounded wait on what it got.

use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wxpush_shared::clock::now_unix;

/// A webhook that answers 503 to its first `down_for` requests, then keeps what it gets. It
/// checks `Wxpush-Signature` on every request as a receiver would (with the local server's
/// secret): an unsigned or forged one is refused with 401, and every `t` it saw is kept.
pub struct Webhook {
    pub url: String,
    pub got: Arc<Mutex<Vec<(String, Value)>>>,
    pub calls: Arc<AtomicU32>,
    pub signed_at: Arc<Mutex<Vec<Result<i64, String>>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self._server.abort();
    }
}

pub async fn webhook(down_for: u32) -> Webhook {
    use axum::http::{HeaderMap, StatusCode};
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let calls = Arc::new(AtomicU32::new(0));
    let signed_at: Arc<Mutex<Vec<Result<i64, String>>>> = Arc::default();
    let (g, c, sig) = (got.clone(), calls.clone(), signed_at.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (g, c, sig) = (g.clone(), c.clone(), sig.clone());
            async move {
                let header = headers
                    .get("wxpush-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let checked = wxpush_tests::signature::verify(
                    wxpush_tests::FORWARD_SECRET,
                    header,
                    body.as_bytes(),
                    now_unix(),
                );
                sig.lock().unwrap().push(checked.clone());
                if checked.is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                if c.fetch_add(1, Ordering::SeqCst) < down_for {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let kind = headers
                    .get("x-wxpush-detail-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                g.lock()
                    .unwrap()
                    .push((kind, serde_json::from_str(&body).unwrap_or(Value::Null)));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Webhook {
        url: format!("http://{addr}/events"),
        got,
        calls,
        signed_at,
        _server: server,
    }
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..secs * 20 {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

impl Webhook {
    /// The events of `kind` the webhook got, once there is one (10 s at most).
    pub async fn forwarded(&self, kind: &str) -> Option<Vec<Value>> {
        eventually(10, || {
            let found = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>();
            async move { (!found.is_empty()).then_some(found) }
        })
        .await
    }
}
