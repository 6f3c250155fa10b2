//! `wxpush serve` in the test process with one official account (AppSecret `local-secret`)
//! behind the bearer key `test-key` (lambda_handlers, templates).

use wxpush_shared::secrets::{AppEntry, AppsFile};

/// The local server with the official account `appid` only.
pub async fn one_app_server(appid: &str) -> wxpush_cli::local_server::RunningServer {
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: appid.into(),
            kind: "official_account".into(),
            app_secret: "local-secret".into(),
            ..AppEntry::default()
        }],
    };
    wxpush_tests::local_server(apps, "test-key").await
}
