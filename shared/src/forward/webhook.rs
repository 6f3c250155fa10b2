//! The webhook sink of `wxpush serve --forward URL`: a `POST` of the event as JSON, signed so
//! the receiver can tell wxpush from a forger, as Stripe and GitHub sign theirs.
//!
//! Every delivery carries `Wxpush-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<raw body>")>`. `t` is the time of that delivery (a retry is signed again), so a
//! receiver that refuses a `t` more than [`SIGNATURE_TOLERANCE_SECS`] off its clock also
//! refuses a recorded delivery replayed later. docs/webhook-signatures.md shows the check in
//! Python and Node.js. The URL must be `https://` unless it names this machine: a plain
//! `http://` request elsewhere would show every event to the network.

use super::{EventSink, ForwardedEvent};
use crate::app::Secret;
use async_trait::async_trait;
use hmac::{KeyInit, Mac};
use std::time::Duration;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "wxpush-signature";
/// How far from its clock a receiver should accept `t` (both ways).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// A configured secret shorter than this is refused (a generated one is 64 hex digits).
pub const MIN_SECRET_LEN: usize = 16;
/// How long a webhook has to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature_header(secret: &Secret, t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where `wxpush serve --forward` delivers, and the secret it signs with.
#[derive(Clone, Debug)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret,
}

/// The URL as it may be shown: without credentials or query (either may hold a secret).
fn shown(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

/// Checks a webhook URL: `https://`, or `http://` to a loopback host (127.0.0.0/8, ::1,
/// `localhost`) only. The error names the URL without its credentials or query.
pub fn check_webhook_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("--forward: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if crate::http::is_loopback_host(host) => Ok(parsed),
        "http" => Err(format!(
            "--forward {}: a plain http:// webhook would carry every event (WeChat users' messages) in clear across the network; use an https:// URL (http:// only to a loopback host: 127.0.0.1, ::1, localhost)",
            shown(&parsed)
        )),
        _ => Err(format!(
            "--forward {}: only https:// URLs (or http:// to a loopback host)",
            shown(&parsed)
        )),
    }
}

/// A webhook: `POST` of the event as JSON, signed; any 2xx is delivered. No redirects are
/// followed.
pub struct WebhookSink {
    http: reqwest::Client,
    url: reqwest::Url,
    secret: Secret,
}

impl WebhookSink {
    /// Refuses a plain `http://` URL beyond loopback, and a secret shorter than
    /// [`MIN_SECRET_LEN`].
    pub fn new(target: WebhookTarget) -> Result<WebhookSink, String> {
        let url = check_webhook_url(&target.url)?;
        if target.secret.expose().trim().len() < MIN_SECRET_LEN {
            return Err(format!(
                "the webhook signing secret must be at least {MIN_SECRET_LEN} characters"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(crate::tls::client_config().clone())
            .user_agent(concat!("wxpush/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(WebhookSink {
            http,
            url,
            secret: target.secret,
        })
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        let body = event.detail_json();
        let signature = signature_header(&self.secret, crate::clock::now_unix(), body.as_bytes());
        let resp = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-wxpush-detail-type", &event.detail_type)
            .header("x-wxpush-event-id", &event.event_id)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", resp.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let secret = Secret::new("Jefe");
        let header = signature_header(&secret, 0, b"what do ya want for nothing?");
        // The signed string is "0." + body, so compare against HMAC of exactly that.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=0,v1={expected}"));
        let mut rfc = HmacSha256::new_from_slice(b"Jefe").unwrap();
        rfc.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(rfc.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The example of docs/webhook-signatures.md.
        assert_eq!(
            signature_header(
                &Secret::new("whsec-example-0123456789"),
                1_700_000_000,
                br#"{"hello":"wxpush"}"#
            ),
            "t=1700000000,v1=9da87672f8f546cb62175c614c7d8d063930209aa9b068894cb2584173a95a85"
        );
        assert_ne!(
            signature_header(&secret, 1, b"x"),
            signature_header(&secret, 2, b"x")
        );
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.3.4.5/x",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(check_webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/x",
            "http://10.0.0.1/x",
            "http://[2001:db8::1]/x",
            "http://localhost.example.com/x",
            "ftp://127.0.0.1/x",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        let err = check_webhook_url("http://user:pw@hooks.example.com/x?token=s3").unwrap_err();
        assert!(!err.contains("pw") && !err.contains("s3"), "{err}");
        assert!(
            err.contains("https://") && err.contains("loopback"),
            "{err}"
        );
        let short = WebhookTarget {
            url: "https://hooks.example.com/x".into(),
            secret: Secret::new("short"),
        };
        assert!(WebhookSink::new(short).is_err());
    }
}
