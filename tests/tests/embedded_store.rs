//! The embedded (redb) token store behind `wxpush serve` keeps the same guarantees as DynamoDB.

use redb::Database;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_shared::clock::now_unix_millis;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy, TokenStore};
use wxpush_tests::{EmulatorServer, concurrent_gets, emulated};

const APPID: &str = "wx00000000000000e1";

fn secrets() -> Arc<dyn SecretStore> {
    let file = AppsFile {
        apps: vec![AppEntry {
            appid: APPID.into(),
            kind: "mini_program".into(),
            app_secret: "emb".into(),
            ..AppEntry::default()
        }],
    };
    Arc::new(FileSecretStore::from_file(file).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_one_call_lease_takeover_and_compare_and_invalidate() {
    let emu = EmulatorServer::start(vec![emulated(APPID, "emb", AppKind::MiniProgram)]).await;
    let dir = std::env::temp_dir().join(format!("wxpush-test-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Arc::new(Database::create(dir.join("state.redb")).unwrap());
    let store: Arc<dyn TokenStore> = Arc::new(EmbeddedTokenStore::new(db.clone()));

    // A dead holder's lease first.
    let now = now_unix_millis();
    assert!(
        store
            .try_acquire_lease(APPID, "dead", now, now + 800)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .try_acquire_lease(APPID, "other", now, now + 800)
            .await
            .unwrap()
            .is_none()
    );

    let policy = TokenPolicy {
        wait: Duration::from_secs(5),
        ..TokenPolicy::default()
    };
    let managers: Vec<_> = (0..20)
        .map(|_| {
            Arc::new(TokenManager::new(
                store.clone(),
                secrets(),
                emu.client(2000),
                policy.clone(),
            ))
        })
        .collect();
    let tokens = concurrent_gets(&managers, APPID, 50).await;
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(emu.emu.calls("/cgi-bin/stable_token"), 1);

    // Compare-and-invalidate: the current version goes, an old version changes nothing.
    let v1 = tokens[0].clone();
    emu.control("/tokens/invalidate", serde_json::json!({"appid": APPID}))
        .await;
    assert!(managers[0].invalidate(APPID, &v1).await.unwrap());
    // The invalidating instance dropped its copy; the others keep theirs until WeChat refuses it.
    assert_eq!(managers[1].get(APPID).await.unwrap(), v1);
    let v2 = managers[0].get(APPID).await.unwrap();
    assert_eq!(v2.version, v1.version + 1);
    assert!(!managers[2].invalidate(APPID, &v1).await.unwrap());
    assert_eq!(
        store.load(APPID).await.unwrap().unwrap().access_token,
        Some(v2.token.clone())
    );

    // The state survives a restart of the process (a new handle on the same file).
    drop(managers);
    drop(store);
    drop(db);
    let reopened: Arc<dyn TokenStore> = Arc::new(EmbeddedTokenStore::new(Arc::new(
        Database::create(dir.join("state.redb")).unwrap(),
    )));
    let m = TokenManager::new(
        reopened,
        secrets(),
        emu.client(2000),
        TokenPolicy::default(),
    );
    assert_eq!(m.get(APPID).await.unwrap().token, v2.token);
    assert_eq!(emu.emu.calls("/cgi-bin/stable_token"), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
