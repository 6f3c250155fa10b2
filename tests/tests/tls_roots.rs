//! Both HTTPS clients (the AWS SDK's and the WeChat client) verify servers against the
//! process's one root store: Mozilla's roots compiled in, not the system's. A server whose
//! certificate chains to none of them is refused by both; `tls_roots_extra.rs` shows the
//! same server accepted once its CA is added with `SSL_CERT_FILE`.

use wxpush_shared::wechat::WeChatApi;
use wxpush_tests::{TlsServer, https_clients};

#[test]
fn an_unknown_certificate_is_refused_by_both_clients() {
    // The compiled-in roots alone: a machine-wide SSL_CERT_FILE (this one's names the system
    // bundle) is not what is under test. SAFETY: removed before this binary starts a thread.
    unsafe { std::env::remove_var("SSL_CERT_FILE") };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(refused());
}

async fn refused() {
    let server = TlsServer::start().await;
    let base = format!("https://127.0.0.1:{}", server.port);
    let (wechat, dynamo, app) = https_clients(&base).await;
    let err = wechat.fetch_token(&app).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate")
            || matches!(err, wxpush_shared::wechat::WeChatCallError::Connect(_)),
        "{err}"
    );
    let err = dynamo.list_tables().send().await.unwrap_err();
    let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}
