//! A token lease that belongs to one refresh.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::token::{TokenManager, TokenPolicy};
use wxpush_tests::TokenWorld;
use wxpush_tests::faults::{Call, Fault, Faults, FaultyTokenStore};

#[tokio::test]
async fn a_stale_refresh_cannot_store_into_a_newer_lease_of_its_own_process() {
    let (world, appid) = TokenWorld::with_app("lease-secret", Some("classic")).await;
    // An old configuration: a lease shorter than the WeChat call (what for_wechat_timeout
    // prevents); each /cgi-bin/token answer comes 3 s after WeChat issued the token, so the
    // first refresh answers while the second (same process, newer lease) still waits. (The
    // second starts once WeChat has the first call and the first lease is over: a fixed sleep
    // instead lost the race on a loaded machine, when the first had already stored.)
    let policy = TokenPolicy {
        lease: Duration::from_millis(300),
        ..TokenPolicy::default()
    };
    let manager = world.manager(policy, 5000);
    world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/token", "delay_ms": 3000, "after_delivery": true, "times": 2}),
        )
        .await;
    let m = manager.clone();
    let a = appid.clone();
    let slow = tokio::spawn(async move { m.get(&a).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut asked = false;
    for _ in 0..100 {
        let stats = world.emulator.get("/sandbox/stats").await;
        asked = stats["/cgi-bin/token"].as_i64().unwrap_or(0) >= 1;
        if asked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(asked, "WeChat received the first refresh's call");
    assert!(
        !slow.is_finished(),
        "the first refresh still waits for WeChat"
    );
    // The same process's scheduled refresh takes the expired lease and fetches a newer token;
    // the first refresh's answer arrives while it waits.
    let newer = manager
        .refresh_if_due(&appid, Duration::from_secs(900))
        .await
        .unwrap();
    let stale = slow.await.unwrap().unwrap();
    assert!(
        matches!(newer, wxpush_shared::token::RefreshOutcome::Refreshed { version, .. } if version > 0),
        "the newer refresh stored its token: {newer:?}"
    );
    let stored = world.store().load(&appid).await.unwrap().unwrap();
    assert_ne!(
        stored.access_token.as_ref(),
        Some(&stale.token),
        "the older token did not overwrite the newer one"
    );
    assert_eq!(stale.version, 0, "used unstored");
    assert!(stored.lease_owner.is_none());
}

#[tokio::test]
async fn a_failed_token_write_frees_the_lease() {
    let (world, appid) = TokenWorld::with_app("lease-secret", None).await;
    let faults = Faults::new(3);
    let store = FaultyTokenStore::new(world.store(), faults.clone());
    let manager = |store: Arc<dyn wxpush_shared::token::TokenStore>| {
        Arc::new(TokenManager::new(
            store,
            world.secrets(),
            world.emulator.client(2000),
            TokenPolicy::default(),
        ))
    };
    faults.script(
        Call::TokenStore,
        "",
        Fault::Before("ThrottlingException"),
        0,
        1,
    );
    let first = manager(store.clone()).get(&appid).await.unwrap();
    assert_eq!(first.version, 0, "served unstored");
    let record = world.store().load(&appid).await.unwrap().unwrap();
    assert!(record.lease_owner.is_none(), "the lease was released");
    // Another instance refreshes at once instead of waiting out a 10 s lease.
    let second = tokio::time::timeout(Duration::from_secs(3), manager(world.store()).get(&appid))
        .await
        .expect("no wait for a dead lease")
        .unwrap();
    assert!(second.version > 0);
}

#[test]
fn the_lease_outlives_the_wechat_timeout() {
    for ms in [500, 5_000, 30_000] {
        let policy = TokenPolicy::for_wechat_timeout(Duration::from_millis(ms));
        assert!(policy.lease >= Duration::from_millis(ms) + Duration::from_secs(5));
        assert!(
            policy.wait > policy.lease,
            "waiters outlive a dead holder's lease"
        );
    }
}
