//! Batch ids are not guessable. With an Idempotency-Key the id used to be
//! `sha1(principal, appid, key)`: role ARNs are not secret and keys are often order numbers,
//! so another service allowed `GET`/`DELETE` on the app could read a batch's failures or
//! cancel it. Ids are random; the key finds its batch through a separate item written with
//! the batch's first claim, and the retry rules hold: same body → same batch, another body →
//! 409, still writing → 409 `in_progress`, an abandoned write → taken over.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::ApiError;
use wxpush_shared::AppKind;
use wxpush_shared::batch::{BatchConfig, Batches, idempotency_item, is_batch_id};
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};
use wxpush_shared::send::service::{Sender, body_hash, principal};
use wxpush_shared::store::{Attr, EmbeddedStateStore, ItemKey, Op, StateStore, attrs};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};
use wxpush_tests::faults::{Call, Fault, Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{EmulatorServer, emulated, memory_db};

const A: &str = "wx00000000000b1d01";
const B: &str = "wx00000000000b1d02";
const ORDERS: &str = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-1";
const BILLING: &str = "arn:aws-cn:sts::123456789012:assumed-role/billing-service/i-2";

struct World {
    batches: Batches,
    store: Arc<dyn StateStore>,
    faults: Arc<Faults>,
    _emulator: EmulatorServer,
}

async fn world() -> World {
    let emulator = EmulatorServer::start(vec![
        emulated(A, "ids-secret", AppKind::OfficialAccount),
        emulated(B, "ids-secret", AppKind::OfficialAccount),
    ])
    .await;
    let apps = AppsFile {
        apps: [A, B]
            .iter()
            .map(|appid| AppEntry {
                appid: appid.to_string(),
                kind: "official_account".into(),
                app_secret: "ids-secret".into(),
                ..AppEntry::default()
            })
            .collect(),
    };
    let db = memory_db();
    let tokens = Arc::new(TokenManager::new(
        Arc::new(EmbeddedTokenStore::new(db.clone())),
        Arc::new(FileSecretStore::from_file(apps).unwrap()),
        emulator.client(5000),
        TokenPolicy::default(),
    ));
    let faults = Faults::new(7);
    let store: Arc<dyn StateStore> =
        FaultyStateStore::new(Arc::new(EmbeddedStateStore::new(db)), faults.clone());
    let sender = Arc::new(Sender::new(tokens, store.clone(), Duration::from_secs(2)));
    let batches = Batches::new(
        sender,
        store.clone(),
        RecordingQueue::new(),
        BatchConfig::default(),
    );
    World {
        batches,
        store,
        faults,
        _emulator: emulator,
    }
}

fn body(text: &str) -> Vec<u8> {
    json!({"message": {"type": "template", "template_id": "T",
                       "data": {"thing1": {"value": text}}},
           "recipients": [{"openid": "o1"}, {"openid": "o2"}]})
    .to_string()
    .into_bytes()
}

impl World {
    async fn create(
        &self,
        appid: &str,
        body: &[u8],
        key: &str,
        caller: &str,
    ) -> Result<Value, ApiError> {
        self.batches.create(appid, body, Some(key), caller).await
    }
    async fn id(&self, appid: &str, key: &str, caller: &str) -> String {
        let answer = self.create(appid, &body("hi"), key, caller).await.unwrap();
        answer["id"].as_str().unwrap().to_string()
    }
}

/// The id the key used to derive.
fn derived(caller: &str, appid: &str, key: &str) -> String {
    let seed = format!("{}\n{appid}\n{key}", principal(caller));
    format!("bat_{}", &body_hash(seed.as_bytes())[..32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ids_do_not_derive_from_the_idempotency_key() {
    let w = world().await;
    let a = w.id(A, "order-1001", ORDERS).await;
    // The same caller's retry (also from another instance of its role) finds its batch.
    assert_eq!(w.id(A, "order-1001", ORDERS).await, a);
    let elsewhere = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-9";
    assert_eq!(w.id(A, "order-1001", elsewhere).await, a);
    // Another principal, app or key: another batch.
    let ids = [
        a.clone(),
        w.id(A, "order-1001", BILLING).await,
        w.id(B, "order-1001", ORDERS).await,
        w.id(A, "order-1002", ORDERS).await,
    ];
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "{ids:?}");
    for id in &ids {
        assert!(is_batch_id(id), "{id}");
        for caller in [ORDERS, BILLING] {
            for app in [A, B] {
                for key in ["order-1001", "order-1002"] {
                    assert_ne!(*id, derived(caller, app, key), "derived from the key");
                }
            }
        }
    }
    // Unrelated: no two ids share more leading hex digits than chance would.
    for (i, x) in ids.iter().enumerate() {
        for y in &ids[i + 1..] {
            let common = x[4..]
                .bytes()
                .zip(y[4..].bytes())
                .take_while(|(p, q)| p == q)
                .count();
            assert!(common < 8, "{x} and {y}");
        }
    }
    // The same (principal, app, key) in another deployment: another id. Nothing outside
    // the store can work an id out.
    let other = world().await;
    assert_ne!(other.id(A, "order-1001", ORDERS).await, a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_with_one_key_make_one_batch() {
    let w = Arc::new(world().await);
    // Both claims are written at the same moment.
    w.faults
        .script(Call::Record, "bkey#", Fault::Barrier(2), 0, 2);
    let race = |w: Arc<World>| async move { w.create(A, &body("race"), "race-1", ORDERS).await };
    let (x, y) = tokio::join!(tokio::spawn(race(w.clone())), tokio::spawn(race(w.clone())));
    let mut ids = BTreeSet::new();
    for answer in [x.unwrap(), y.unwrap()] {
        match answer {
            Ok(v) => {
                ids.insert(v["id"].as_str().unwrap().to_string());
            }
            Err(ApiError::Conflict { code, .. }) => assert_eq!(code, "in_progress"),
            Err(other) => panic!("{other:?}"),
        }
    }
    let retried = w.create(A, &body("race"), "race-1", ORDERS).await.unwrap();
    ids.insert(retried["id"].as_str().unwrap().to_string());
    assert_eq!(ids.len(), 1, "one batch: {ids:?}");
    let listed = w.store.query("batches").await.unwrap();
    assert_eq!(listed.len(), 1, "one batch recorded: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_rules_hold_with_random_ids() {
    let w = world().await;
    // A write that stopped after the claim: still writing → 409 in_progress.
    w.faults.script(
        Call::Record,
        "brcpt#",
        Fault::Before("ThrottlingException"),
        0,
        1,
    );
    let err = w.create(A, &body("x"), "k-1", ORDERS).await.unwrap_err();
    assert!(matches!(err, ApiError::StoreUnavailable(_)), "{err:?}");
    let err = w.create(A, &body("x"), "k-1", ORDERS).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { code, .. } if *code == "in_progress"),
        "{err:?}"
    );
    // Another body with the key: 409 idempotency_key_reused.
    let err = w.create(A, &body("y"), "k-1", ORDERS).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { code, .. } if *code == "idempotency_key_reused"),
        "{err:?}"
    );
    // Abandoned (its writer died two minutes ago): the retry takes it over, same id.
    let key_item = w
        .store
        .get(&idempotency_item(A, ORDERS, "k-1"))
        .await
        .unwrap()
        .unwrap();
    let Some(Attr::S(id)) = key_item.get("id") else {
        panic!("{key_item:?}")
    };
    let old = Op::Update {
        key: ItemKey::batch(A, id),
        attrs: attrs([("created_at", Attr::N(now_unix() - 600))]),
    };
    w.store.record(&[old], now_unix()).await.unwrap();
    let taken = w.create(A, &body("x"), "k-1", ORDERS).await.unwrap();
    assert_eq!(taken["id"].as_str(), Some(id.as_str()));
    assert_eq!(taken["state"], "running");
    // The same body again: the same batch.
    let again = w.create(A, &body("x"), "k-1", ORDERS).await.unwrap();
    assert_eq!(again["id"], taken["id"]);
    // A key whose item expired (DynamoDB deletes by TTL lazily) counts as unused.
    let expire = Op::Update {
        key: idempotency_item(A, ORDERS, "k-1"),
        attrs: attrs([("ttl", Attr::N(now_unix() - 1))]),
    };
    w.store.record(&[expire], now_unix()).await.unwrap();
    let fresh = w.create(A, &body("z"), "k-1", ORDERS).await.unwrap();
    assert_ne!(fresh["id"], taken["id"]);
    assert!(is_batch_id(fresh["id"].as_str().unwrap()));
}
