//! What a sink receives ([`ForwardedEvent`]) and the sinks' trait ([`EventSink`]).

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a sink receives: EventBridge's `detail` (with `detail_type` as its `DetailType`), or
/// the webhook's JSON body (with `detail_type` in the `X-Wxpush-Detail-Type` header).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForwardedEvent {
    #[serde(skip)]
    pub detail_type: String,
    /// Stable for one event across every delivery: what consumers dedupe by.
    pub event_id: String,
    pub appid: String,
    pub openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub create_time: i64,
    /// Every field of the push, decrypted ([`super::fields::message_fields`]).
    pub message: Map<String, Value>,
}

impl ForwardedEvent {
    pub fn detail_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The event's id: the SHA-1 of its appid and dedupe key, hex.
pub fn event_id(appid: &str, dedupe_key: &str) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(appid.as_bytes());
    h.update([0u8]);
    h.update(dedupe_key.as_bytes());
    hex::encode(h.finalize())
}

/// Where forwarded events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// `Ok` once the sink has the event; `Err` says why not (no secret in it).
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String>;
}
