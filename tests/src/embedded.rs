//! The embedded (redb) side as `wxpush serve` builds it: an in-memory database and a token
//! manager over it.

use crate::emulator_server::EmulatorServer;
use std::sync::Arc;
use wxpush_shared::token::{TokenManager, TokenPolicy};

/// A token manager as `wxpush serve` builds one: the embedded store in `db`, one official
/// account from an apps file (secret `secret`), the emulator's WeChat client.
pub fn embedded_token_manager(
    emulator: &EmulatorServer,
    appid: &str,
    secret: &str,
    db: Arc<redb::Database>,
) -> Arc<TokenManager> {
    use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};
    let file = AppsFile {
        apps: vec![AppEntry {
            appid: appid.into(),
            kind: "official_account".into(),
            app_secret: secret.into(),
            ..AppEntry::default()
        }],
    };
    Arc::new(TokenManager::new(
        Arc::new(wxpush_shared::token::EmbeddedTokenStore::new(db)),
        Arc::new(FileSecretStore::from_file(file).expect("a valid apps file")),
        emulator.client(5000),
        TokenPolicy::default(),
    ))
}

/// A fresh in-memory redb database.
pub fn memory_db() -> Arc<redb::Database> {
    Arc::new(
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database"),
    )
}
