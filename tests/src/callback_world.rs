//! A callback service over the embedded store, and the signed query WeChat sends with a push.

use crate::embedded::memory_db;
use crate::emulator_server::{EmulatorServer, emulated};
use crate::faults;
use crate::logs::remember_secrets;
use std::sync::Arc;
use wxpush_shared::AppKind;
use wxpush_shared::secrets::SecretStore;

/// A callback service over an in-memory embedded store, for `apps` (appid, token, aes key,
/// kind), with the emulator at hand for the jobs it queues. Returns the store for inspection.
pub async fn callback_service(
    apps: &[(&str, &str, Option<&str>, AppKind)],
) -> (
    wxpush_shared::callback::service::CallbackService,
    Arc<dyn wxpush_shared::store::StateStore>,
    EmulatorServer,
) {
    let (svc, store, emulator, _) = callback_service_with_queue(apps).await;
    (svc, store, emulator)
}

/// [`callback_service`], also returning the queue its follow-up jobs go to.
pub async fn callback_service_with_queue(
    apps: &[(&str, &str, Option<&str>, AppKind)],
) -> (
    wxpush_shared::callback::service::CallbackService,
    Arc<dyn wxpush_shared::store::StateStore>,
    EmulatorServer,
    Arc<faults::RecordingQueue>,
) {
    use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};
    use wxpush_shared::store::{EmbeddedStateStore, StateStore};
    let emulator = EmulatorServer::start(
        apps.iter()
            .map(|(id, _, _, kind)| emulated(id, "cb-secret", *kind))
            .collect(),
    )
    .await;
    let file = AppsFile {
        apps: apps
            .iter()
            .map(|(appid, token, key, kind)| AppEntry {
                appid: appid.to_string(),
                kind: kind.as_str().into(),
                app_secret: "cb-secret".into(),
                callback_token: Some(token.to_string()),
                encoding_aes_key: key.map(str::to_string),
                ..AppEntry::default()
            })
            .collect(),
    };
    remember_secrets(apps.iter().flat_map(|(_, token, key, _)| {
        std::iter::once(token.to_string()).chain(key.map(str::to_string))
    }));
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecretStore::from_file(file).unwrap());
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(memory_db()));
    let queue = faults::RecordingQueue::new();
    (
        wxpush_shared::callback::service::CallbackService::new(
            secrets,
            store.clone(),
            queue.clone(),
        ),
        store,
        emulator,
        queue,
    )
}

/// A fresh `nonce` as WeChat would send with each push (plaintext mode refuses a
/// (timestamp, nonce) pair seen with another body).
pub fn nonce() -> String {
    rand::random::<u32>().to_string()
}

/// A query map as WeChat sends it: `signature` over (token, timestamp, nonce), plus `extra`.
pub fn signed_query(
    token: &str,
    timestamp: &str,
    nonce: &str,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut q: std::collections::HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    q.insert(
        "signature".into(),
        wxpush_shared::callback::signature::compute(&[token, timestamp, nonce]),
    );
    q.insert("timestamp".into(), timestamp.into());
    q.insert("nonce".into(), nonce.into());
    q
}
