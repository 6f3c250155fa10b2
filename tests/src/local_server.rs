//! `wxpush serve --sandbox` in-process, with an in-memory store.

use crate::logs::{capture_suite_logs, remember_secrets};
use std::time::Duration;
use wxpush_shared::wechat::WeChatClientConfig;

/// `wxpush serve --sandbox` in-process on 127.0.0.1:0 with an in-memory store; stops when dropped.
pub async fn local_server(
    apps: wxpush_shared::secrets::AppsFile,
    api_key: &str,
) -> wxpush_cli::local_server::RunningServer {
    local_server_forwarding(apps, api_key, None, Duration::from_secs(3600)).await
}

/// The secret [`local_server_forwarding`] signs forwarded events with.
pub const FORWARD_SECRET: &str = "test-forward-secret-0123456789abcdef";

/// [`local_server`] forwarding recorded events to the webhook `forward` (`--forward URL`,
/// signed with [`FORWARD_SECRET`]), sweeping the outbox every `sweep_every`.
pub async fn local_server_forwarding(
    apps: wxpush_shared::secrets::AppsFile,
    api_key: &str,
    forward: Option<String>,
    sweep_every: Duration,
) -> wxpush_cli::local_server::RunningServer {
    use wxpush_cli::local_server::{DataLocation, ServeConfig, start};
    capture_suite_logs();
    remember_secrets(apps.apps.iter().flat_map(|a| {
        [
            Some(a.app_secret.clone()),
            a.callback_token.clone(),
            a.encoding_aes_key.clone(),
        ]
        .into_iter()
        .flatten()
    }));
    remember_secrets([api_key.to_string(), FORWARD_SECRET.to_string()]);
    let forward = forward.map(|url| wxpush_shared::forward::WebhookTarget {
        url,
        secret: wxpush_shared::Secret::new(FORWARD_SECRET),
    });
    start(ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        apps,
        sandbox: true,
        data: DataLocation::Memory,
        api_key: api_key.into(),
        wechat: WeChatClientConfig::default(),
        refresh_every: Duration::from_secs(3600),
        refresh_window: Duration::from_secs(900),
        sync: wxpush_shared::followers::SyncConfig {
            backoff: Duration::from_millis(10),
            ..Default::default()
        },
        batches: wxpush_shared::batch::BatchConfig {
            retry_backoff: Duration::from_millis(200),
            flush_interval: Duration::from_millis(300),
            check_interval: Duration::from_millis(300),
            ..Default::default()
        },
        forward,
        sweep_every,
        callback_guard: Default::default(),
    })
    .await
    .expect("the local server starts")
}
