//! An HTTPS server with a test-only certificate, and the HTTPS clients a function builds.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wxpush_shared::AppKind;
use wxpush_shared::wechat::{HttpWeChatClient, WeChatClientConfig};

/// An HTTPS server on 127.0.0.1:0 with the self-signed certificate of `tests/data/tls/`
/// (a test-only key): answers every request `200` with a body that fits both clients under
/// test — a WeChat `stable_token` answer, and an empty DynamoDB `ListTables`. Stopped when
/// dropped.
pub struct TlsServer {
    pub port: u16,
    handle: JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Both HTTPS clients of a function, as `wxpush_shared` builds them (the process's one root
/// store), pointed at `base`, with an app to ask a token for.
pub async fn https_clients(
    base: &str,
) -> (
    wxpush_shared::wechat::HttpWeChatClient,
    aws_sdk_dynamodb::Client,
    wxpush_shared::AppConfig,
) {
    let wechat = HttpWeChatClient::new(WeChatClientConfig {
        api_base: base.to_string(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    });
    let sdk = wxpush_shared::aws::load_sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(base)
            .build(),
    );
    let app = wxpush_shared::AppConfig {
        appid: "wx0123456789abcdef".into(),
        kind: AppKind::OfficialAccount,
        app_secret: wxpush_shared::Secret::new("tls-test-secret"),
        callback_token: None,
        encoding_aes_key: None,
        linked_official_account: None,
        token_api: wxpush_shared::TokenApi::Stable,
        callback_mode: wxpush_shared::CallbackMode::Plaintext,
        batch_rate: None,
        daily_caps: Default::default(),
    };
    (wechat, dynamo, app)
}

/// The certificate [`TlsServer`] presents, as PEM.
pub const TLS_TEST_CERT: &str = include_str!("../data/tls/test-server-cert.pem");

impl TlsServer {
    pub async fn start() -> TlsServer {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cert = CertificateDer::from_pem_slice(TLS_TEST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../data/tls/test-server-key.pem"))
            .unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            // Bounded by the test: it ends when the server is dropped.
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // the client refused our certificate
                    };
                    let mut request = vec![0u8; 16 * 1024];
                    let _ = tls.read(&mut request).await;
                    let body =
                        r#"{"access_token":"tls-test-token","expires_in":7200,"TableNames":[]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { port, handle }
    }
}
