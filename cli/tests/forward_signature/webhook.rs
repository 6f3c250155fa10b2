//! The webhook side: signing and checking `Wxpush-Signature` as docs/webhook-signatures.md says, and a
//! receiver on 127.0.0.1 that keeps every delivery.

use crate::TOLERANCE;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The receiver's check, written from docs/webhook-signatures.md (not from wxpush's code).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|e| e.to_string())?),
            _ => {}
        }
    }
    let t = t.ok_or("no t")?;
    if (now - t).abs() > TOLERANCE {
        return Err(format!("t is {} s off", now - t));
    }
    let ok = v1.iter().any(|sig| {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    });
    ok.then_some(()).ok_or_else(|| "no v1 matches".to_string())
}

/// One delivery as the webhook got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    headers: HeaderMap,
    pub body: Bytes,
}

impl Delivery {
    pub fn signature(&self) -> String {
        self.headers
            .get("wxpush-signature")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    _server: tokio::task::JoinHandle<()>,
}

/// A webhook on 127.0.0.1 that keeps every delivery and answers 204.
pub async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(Delivery { headers, body });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url,
        got,
        _server: server,
    }
}

impl Receiver {
    /// The first delivery whose body's detail has `openid`, within 20 s.
    pub async fn delivery_for(&self, openid: &str) -> Delivery {
        for _ in 0..400 {
            let found = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|d| {
                    serde_json::from_slice::<Value>(&d.body).is_ok_and(|v| v["openid"] == openid)
                })
                .cloned();
            if let Some(d) = found {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no delivery for {openid}");
    }
}
