//! Storms: 10 000 sends and 10 000 callbacks through everything that can go wrong at once,
//! checked recipient by recipient and event by event.
//!
//! Sends: template and customer-service messages, each recipient with its own
//! Idempotency-Key, a client that retries 5xx, 429 and `409 in_progress` with the same key;
//! WeChat answering -1, 503, 45009, late (timeouts, before or after delivering), 502 or an
//! unreadable 200 after delivering, and revoking the token mid-way; the state and token
//! stores throttled, conflicting, or losing answers after committing. Then: no recipient
//! with two messages, no `sent` without a delivery, every outcome readable by id.
//!
//! Callbacks: WeChat's own behaviour (3 attempts, the same body), with each event's writes
//! failing before or after they commit, reads failing, and the follow-up queue refusing.
//! Then: every event recorded, its effects applied exactly once.
//!
//! Both run on the embedded store behind the fault-injecting wrapper: the faults, not the
//! backend, are what is under test here (the same paths run on moto in `guarantees.rs`).
//! `WXPUSH_STORM` sets the size (default 10 000). The summary lines are what BENCHMARKS.md
//! quotes.

mod callbacks;
mod sends;

use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};
use wxpush_tests::faults::{Faults, FaultyStateStore, FaultyTokenStore};
use wxpush_tests::{EmulatorServer, emulated, memory_db};

/// How many sends and callbacks: `WXPUSH_STORM`, else 10 000.
fn size() -> usize {
    std::env::var("WXPUSH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

const OA: &str = "wx5707a0000000000a";
const SECRET: &str = "storm-secret";
const TIMEOUT_MS: u64 = 250;

struct Stack {
    emulator: EmulatorServer,
    store: Arc<dyn StateStore>,
    state_faults: Arc<Faults>,
    token_faults: Arc<Faults>,
    tokens: Arc<TokenManager>,
    secrets: Arc<dyn SecretStore>,
}

async fn stack() -> Stack {
    let emulator =
        EmulatorServer::start(vec![emulated(OA, SECRET, AppKind::OfficialAccount)]).await;
    let secrets: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::from_file(AppsFile {
            apps: vec![AppEntry {
                appid: OA.into(),
                kind: "official_account".into(),
                app_secret: SECRET.into(),
                callback_token: Some("cbtoken".into()),
                ..AppEntry::default()
            }],
        })
        .unwrap(),
    );
    let db = memory_db();
    let state_faults = Faults::new(1);
    let token_faults = Faults::new(2);
    let store: Arc<dyn StateStore> = FaultyStateStore::new(
        Arc::new(EmbeddedStateStore::new(db.clone())),
        state_faults.clone(),
    );
    let tokens = Arc::new(TokenManager::new(
        FaultyTokenStore::new(Arc::new(EmbeddedTokenStore::new(db)), token_faults.clone()),
        secrets.clone(),
        emulator.client(TIMEOUT_MS),
        TokenPolicy::for_wechat_timeout(Duration::from_millis(TIMEOUT_MS)),
    ));
    Stack {
        emulator,
        store,
        state_faults,
        token_faults,
        tokens,
        secrets,
    }
}
