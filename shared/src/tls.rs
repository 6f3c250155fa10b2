//! One TLS configuration for every HTTPS client of a process: Mozilla's root certificates
//! compiled in (`webpki-root-certs`, the rustls project's bundle), made into one rustls
//! `ClientConfig` on first use and shared by the AWS SDK's client ([`SdkHttpClient`]) and the
//! WeChat client. Nothing is read from the file system and nothing is built at start-up: the
//! system store (`/etc/ssl/certs`, read once per client before), then a PEM bundle the SDK's
//! own client parsed once per SDK client, were most of a cold start (BENCHMARKS.md).
//!
//! Those roots cover AWS's endpoints (global and China regions) and api.weixin.qq.com. A
//! deployment behind a TLS-inspecting proxy adds its CA with `SSL_CERT_FILE` (a PEM file),
//! read once and trusted by both clients too.

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// The process's one rustls configuration (aws-lc-rs, TLS 1.2 and 1.3, the compiled-in roots
/// and those of `SSL_CERT_FILE`), built on first use.
pub fn client_config() -> &'static rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        // Certificates trusted beyond the compiled-in roots: the PEM file `SSL_CERT_FILE`
        // names, if any (read here, once).
        if let Some(pem) = std::env::var_os("SSL_CERT_FILE").and_then(|f| std::fs::read(f).ok()) {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).flatten());
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
    })
}

/// `loader` with [`SdkHttpClient`] as the AWS SDK's HTTPS client.
pub fn with_roots(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader.http_client(SharedHttpClient::new(SdkHttpClient::default()))
}

/// The AWS SDK's HTTP client: hyper over [`client_config`], one connection pool per
/// connector settings (timeouts), each built on its first request.
///
/// The SDK's default client cannot take a prepared rustls configuration: it parses a PEM
/// bundle for every connector, and builds (and drops) one for each `Client::new` to load
/// its roots early, which made a cold start parse ~150 certificates four times.
#[derive(Debug, Default)]
pub struct SdkHttpClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

/// A connector's (connect, read) timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(SdkConnector::new(key.0, key.1)))
            .clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new(
            "hyper",
            Some(std::borrow::Cow::Borrowed("1.x")),
        ))
    }
}

/// One connection pool with its timeouts: `connect_timeout` bounds the whole connection (DNS,
/// TCP and the TLS handshake), `read_timeout` the wait for the response's head once the
/// request is sent.
#[derive(Clone, Debug)]
struct SdkConnector {
    client: HyperClient<TimedConnect, SdkBody>,
    read_timeout: Option<Duration>,
}

impl SdkConnector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> SdkConnector {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_config().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = HyperClient::builder(TokioExecutor::new())
            // Below the 60 s or so after which AWS's front ends close idle connections; the
            // timer is what evicts them.
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_timer(TokioTimer::new())
            .build(TimedConnect {
                inner: https,
                limit: connect_timeout,
            });
        SdkConnector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // As the SDK's own client: the SDK can close the connection a request used (after a
        // 5xx or a timeout) so its retry does not reuse it.
        let captured = capture_connection(&mut request);
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// The connection a request used, with the way to close it.
fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    captured.connection_metadata().as_ref()?;
    let captured = captured.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(false)
            .poison_fn(move || {
                if let Some(connection) = captured.connection_metadata().as_ref() {
                    connection.poison();
                }
            })
            .build(),
    )
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// The HTTPS connector with one deadline for the whole connection: DNS, TCP and the TLS
/// handshake (a TCP-only timeout would let a stalled handshake hang until Lambda's own).
#[derive(Clone, Debug)]
struct TimedConnect {
    inner: hyper_rustls::HttpsConnector<TcpConnector>,
    limit: Option<Duration>,
}

type Connection = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

impl tower_service::Service<http::Uri> for TimedConnect {
    type Response = Connection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            let Some(limit) = limit else {
                return connecting.await;
            };
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {limit:?}"),
                ))),
            }
        })
    }
}

/// The SDK's retry classes for a failed exchange, as its own client sorts them: a timeout,
/// an I/O failure (connect, reset, closed, cut short, a failed handshake: retried), a
/// certificate refused or a request the client could not send (not retried).
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let top: &(dyn StdError + 'static) = &error;
    let chain = || error_chain(top);
    let timed_out = chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_timeout())
    });
    if timed_out {
        return ConnectorError::timeout(error.into());
    }
    // Asking again gets the same certificate.
    if chain().any(refuses_certificate) {
        return ConnectorError::other(error.into(), None);
    }
    let hyper_error = chain().find_map(|e| e.downcast_ref::<hyper::Error>());
    if hyper_error.is_some_and(|h| h.is_user()) {
        return ConnectorError::user(error.into());
    }
    if error.is_connect() || chain().any(|e| e.is::<std::io::Error>()) {
        return ConnectorError::io(error.into());
    }
    match hyper_error {
        Some(h) if h.is_closed() || h.is_canceled() => ConnectorError::io(error.into()),
        Some(h) if h.is_incomplete_message() => {
            ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
        }
        _ => ConnectorError::other(error.into(), None),
    }
}

/// `error`, then each error after it. After an `io::Error` comes its payload (`source()`
/// would skip it: hyper-rustls nests rustls's error two `io::Error`s deep).
fn error_chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|p| p as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// The server's certificate was refused (unknown issuer, expired, wrong name...).
fn refuses_certificate(error: &(dyn StdError + 'static)) -> bool {
    matches!(
        error.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn get(url: &str) -> HttpRequest {
        HttpRequest::try_from(
            http::Request::builder()
                .uri(url)
                .body(SdkBody::empty())
                .unwrap(),
        )
        .unwrap()
    }

    /// What the test server does with its one connection.
    enum Peer {
        /// Reads the request, writes these bytes.
        Answer(&'static [u8]),
        /// Reads the request, closes.
        Close,
        /// Says nothing for 5 s (the task is aborted by the test).
        Silent,
    }

    /// A server on 127.0.0.1 that takes one connection and treats it as `peer` says: its
    /// port and its task.
    async fn one_connection(peer: Peer) -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            if let Peer::Silent = peer {
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            if let Peer::Answer(bytes) = peer {
                let _ = s.write_all(bytes).await;
            }
        });
        (port, task)
    }

    /// One request through a connector with these (connect, read) timeouts.
    async fn call(
        url: String,
        connect: Option<Duration>,
        read: Option<Duration>,
    ) -> Result<HttpResponse, ConnectorError> {
        SdkConnector::new(connect, read).call(get(&url)).await
    }

    #[tokio::test]
    async fn an_answer_is_relayed() {
        let (port, _) = one_connection(Peer::Answer(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ))
        .await;
        let r = call(
            format!("http://127.0.0.1:{port}/"),
            None,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_io() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = call(
            format!("http://127.0.0.1:{port}/"),
            Some(Duration::from_secs(2)),
            None,
        )
        .await
        .unwrap_err();
        assert!(e.is_io(), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let (port, held) = one_connection(Peer::Silent).await;
        let e = call(
            format!("http://127.0.0.1:{port}/"),
            None,
            Some(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        held.abort();
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_retryable_io() {
        let (port, _) = one_connection(Peer::Close).await;
        let e = call(
            format!("http://127.0.0.1:{port}/"),
            None,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
        assert!(
            e.is_io() || e.is_other() && e.as_other() == Some(ErrorKind::TransientError),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_handshake_is_retryable_io() {
        // Not a TLS server: rustls cannot read its answer (a proxy or an overloaded front
        // end can do the same; another connection may succeed).
        let (port, _) = one_connection(Peer::Answer(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
        let e = call(
            format!("https://127.0.0.1:{port}/"),
            None,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
        assert!(e.is_io(), "{e:?}");
    }

    #[tokio::test]
    async fn a_stalled_handshake_is_a_connect_timeout() {
        // Accepts TCP, never answers the ClientHello: the connect timeout covers TLS too.
        let (port, held) = one_connection(Peer::Silent).await;
        let e = call(
            format!("https://127.0.0.1:{port}/"),
            Some(Duration::from_millis(100)),
            None,
        )
        .await
        .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        held.abort();
    }

    #[test]
    fn only_a_refused_certificate_is_final() {
        use rustls::{CertificateError, Error as Tls};
        // As hyper-rustls reports it: rustls's error two io::Errors deep.
        let nested = |tls: Tls| {
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls))
        };
        let refused = nested(Tls::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(error_chain(&refused).any(refuses_certificate));
        let alert = nested(Tls::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert!(!error_chain(&alert).any(refuses_certificate));
    }

    #[test]
    fn every_compiled_in_root_is_trusted() {
        let config = super::client_config();
        // The verifier holds the store; what matters is that no root was dropped as
        // unparsable.
        let mut roots = rustls::RootCertStore::empty();
        let (added, skipped) = roots
            .add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        assert_eq!(skipped, 0);
        assert!(added > 100, "{added}");
        // No ALPN: both clients speak HTTP/1.1, which is all the four AWS services and
        // WeChat need.
        assert!(config.alpn_protocols.is_empty());
    }
}
