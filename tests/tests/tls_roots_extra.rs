//! `SSL_CERT_FILE` adds a CA (a TLS-inspecting proxy's, here the test server's own
//! certificate) to the compiled-in roots, for both HTTPS clients. Its own test binary: the
//! variable is read once per process.

use wxpush_shared::wechat::WeChatApi;
use wxpush_tests::{TLS_TEST_CERT, TlsServer, https_clients};

#[test]
fn a_ca_in_ssl_cert_file_is_trusted_by_both_clients() {
    let file = std::env::temp_dir().join(format!("wxpush-test-ca-{}.pem", std::process::id()));
    std::fs::write(&file, TLS_TEST_CERT).unwrap();
    // SAFETY: set before any thread of this test binary's own exists (the runtime is built
    // below) and never changed again.
    unsafe { std::env::set_var("SSL_CERT_FILE", &file) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = TlsServer::start().await;
        let base = format!("https://127.0.0.1:{}", server.port);
        let (wechat, dynamo, app) = https_clients(&base).await;
        let token = wechat.fetch_token(&app).await.unwrap();
        assert_eq!(token.access_token.expose(), "tls-test-token");
        let tables = dynamo.list_tables().send().await.unwrap();
        assert!(tables.table_names().is_empty());
    });
    let _ = std::fs::remove_file(file);
}
