//! Replay protection for plaintext mode ([`check_replay`]): the first request seen with a
//! signature is remembered, and the same signature with anything else is refused.

use super::service::TIMESTAMP_WINDOW_SECS;
use crate::error::ApiError;
use crate::store::{ItemKey, ItemRead, Op, Recorded, StateStore, attrs};
use tracing::warn;

/// A plaintext-mode request as its replay record knows it ([`check_replay`]).
#[derive(Clone, Copy)]
pub(super) enum Seen<'a> {
    /// A URL verification and the `echostr` it asks to echo.
    Get { echostr: &'a str },
    /// A push and its body.
    Post { body: &'a str },
}

impl Seen<'_> {
    fn method(&self) -> &'static str {
        match self {
            Seen::Get { .. } => "GET",
            Seen::Post { .. } => "POST",
        }
    }

    /// The SHA-1 (hex) of the app, the method and the body or `echostr`.
    fn hash(&self, appid: &str) -> String {
        use sha1::Digest;
        let text = match self {
            Seen::Get { echostr } => echostr,
            Seen::Post { body } => body,
        };
        let mut h = sha1::Sha1::new();
        for part in [appid, self.method(), text] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(h.finalize())
    }
}

/// Plaintext mode: the signature covers (token, timestamp, nonce) but neither the body, nor
/// the method, nor the app, so a signed query string seen once could carry any body for the
/// rest of the window — as a push, after a URL verification, or to another app with the same
/// callback token. The first request seen with a signature is remembered
/// (`nonce#{signature}`: one item per token, timestamp and nonce, whatever the app), holding
/// the hash of its app, method and body (or `echostr`) for twice the window; the same
/// signature with anything else is refused. WeChat's retries repeat all of it and pass.
pub(super) async fn check_replay(
    store: &dyn StateStore,
    appid: &str,
    seen: Seen<'_>,
    signature: &str,
    now: i64,
) -> Result<(), ApiError> {
    let hash = seen.hash(appid);
    let key = ItemKey::nonce(signature);
    let first = attrs([
        ("hash", hash.as_str().into()),
        ("ttl", (now + 2 * TIMESTAMP_WINDOW_SECS).into()),
    ]);
    let op = Op::Insert {
        key: key.clone(),
        attrs: first,
    };
    if store.record(&[op], now).await? == Recorded::New {
        return Ok(());
    }
    let first = store.get(&key).await?;
    if first.as_ref().and_then(|a| a.text("hash")) == Some(hash.as_str()) {
        return Ok(());
    }
    warn!(
        appid,
        method = seen.method(),
        "plaintext callback replayed a signature seen with another app, method or body"
    );
    Err(ApiError::SignatureRejected(
        "this signature was already used with another request".into(),
    ))
}
