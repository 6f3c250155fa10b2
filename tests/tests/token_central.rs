//! Token central control against real moto DynamoDB/SSM and the WeChat emulator.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::clock::{now_unix, now_unix_millis};
use wxpush_shared::secrets::ConfigError;
use wxpush_shared::token::{TokenError, TokenPolicy};
use wxpush_shared::{ApiError, Secret};
use wxpush_tests::{SsmApp, TokenWorld, concurrent_gets, put_app, random_appid};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn world_with_app(token_api: Option<&str>) -> (TokenWorld, String) {
    TokenWorld::with_app(SECRET, token_api).await
}

/// Writes app `appid` of `kind` with `app_secret` (none when `None`) to SSM.
async fn put(world: &TokenWorld, appid: &str, kind: &str, app_secret: Option<&str>) {
    let app = SsmApp {
        appid,
        kind: Some(kind),
        app_secret,
        token_api: None,
    };
    put_app(&world.ssm, &world.prefix, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_requests_over_twenty_instances_cost_one_wechat_call() {
    for (token_api, path) in [
        (None, "/cgi-bin/stable_token"),
        (Some("classic"), "/cgi-bin/token"),
    ] {
        let (world, appid) = world_with_app(token_api).await;
        let managers: Vec<_> = (0..20)
            .map(|_| world.manager(TokenPolicy::default(), 5000))
            .collect();
        let tokens = concurrent_gets(&managers, &appid, 50).await;
        assert!(
            tokens.windows(2).all(|w| w[0].token == w[1].token),
            "all callers share one token"
        );
        assert_eq!(
            world.emulator.emu.calls(path),
            1,
            "exactly one WeChat token call ({path})"
        );
        assert_eq!(tokens[0].version, 1);

        // A valid stored token: twenty fresh instances, fifty requests, zero calls.
        let fresh: Vec<_> = (0..20)
            .map(|_| world.manager(TokenPolicy::default(), 5000))
            .collect();
        for t in concurrent_gets(&fresh, &appid, 50).await {
            assert_eq!(t.token, tokens[0].token);
        }
        assert_eq!(
            world.emulator.emu.calls(path),
            1,
            "no further token call while the token is valid"
        );

        // The token works at WeChat.
        let stats = world.emulator.get("/sandbox/stats").await;
        assert_eq!(stats[path], 1);
    }
}

#[tokio::test]
async fn a_dead_refreshers_lease_is_taken_over_after_it_expires() {
    let (world, appid) = world_with_app(None).await;
    let store = world.store();
    // An instance took the lease and died: nobody releases it.
    let now_ms = now_unix_millis();
    let held = store
        .try_acquire_lease(&appid, "dead-instance", now_ms, now_ms + 1500)
        .await
        .unwrap();
    assert!(held.is_some());

    let policy = TokenPolicy {
        lease: Duration::from_secs(2),
        wait: Duration::from_secs(6),
        ..TokenPolicy::default()
    };
    let survivor = world.manager(policy.clone(), 5000);
    let started = std::time::Instant::now();
    let token = survivor
        .get(&appid)
        .await
        .expect("the survivor takes over once the lease expires");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "it waited for the dead lease"
    );
    assert_eq!(world.emulator.emu.calls("/cgi-bin/stable_token"), 1);
    let record = store.load(&appid).await.unwrap().unwrap();
    assert_eq!(record.access_token.as_ref(), Some(&token.token));
    assert!(
        record.lease_owner.is_none(),
        "the lease is released after storing"
    );

    // The dead instance, were it to come back, cannot overwrite the stored token.
    let late = store
        .store_token(
            &appid,
            "dead-instance",
            &Secret::new("stale"),
            now_unix() + 7200,
            9,
        )
        .await
        .unwrap();
    assert!(!late);
    assert_eq!(
        store.load(&appid).await.unwrap().unwrap().access_token,
        Some(token.token)
    );

    // A waiter with a short budget gets a clear error, not a hang, while a live lease is held.
    let now_ms = now_unix_millis();
    let other = random_appid();
    put(&world, &other, "official_account", Some(SECRET)).await;
    store
        .try_acquire_lease(&other, "busy-instance", now_ms, now_ms + 10_000)
        .await
        .unwrap()
        .unwrap();
    let impatient = world.manager(
        TokenPolicy {
            wait: Duration::from_millis(300),
            ..policy
        },
        5000,
    );
    let err = impatient.get(&other).await.unwrap_err();
    assert!(matches!(err, TokenError::RefreshInProgress { .. }), "{err}");
    assert_eq!(ApiError::from(err).status(), 503);
}

#[tokio::test]
async fn invalidating_an_old_version_keeps_the_newer_token() {
    let (world, appid) = world_with_app(None).await;
    let a = world.manager(TokenPolicy::default(), 5000);
    let b = world.manager(TokenPolicy::default(), 5000);
    let v1 = a.get(&appid).await.unwrap();
    assert_eq!(v1.version, 1);

    // WeChat rejects v1 (e.g. a force refresh elsewhere); instance B invalidates and refreshes.
    world
        .emulator
        .control("/tokens/invalidate", json!({"appid": appid}))
        .await;
    assert!(
        b.invalidate(&appid, &v1).await.unwrap(),
        "the current version is invalidated"
    );
    let v2 = b.get(&appid).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v2.token, v1.token);

    // Instance A learns late that v1 failed: its invalidation must not discard v2.
    assert!(!a.invalidate(&appid, &v1).await.unwrap());
    let stored = world.store().load(&appid).await.unwrap().unwrap();
    assert_eq!(stored.access_token, Some(v2.token.clone()));
    assert!(stored.expires_at > now_unix());
    assert_eq!(a.get(&appid).await.unwrap().token, v2.token);
    assert_eq!(world.emulator.emu.calls("/cgi-bin/stable_token"), 2);
}

/// Puts a token into the store as a refresher would, expiring at `expires_at`.
async fn seed_token(world: &TokenWorld, appid: &str, token: &str, expires_at: i64) {
    let store = world.store();
    let now_ms = now_unix_millis();
    store
        .try_acquire_lease(appid, "seeder", now_ms, now_ms + 5000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .store_token(appid, "seeder", &Secret::new(token), expires_at, 1)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn wechat_down_or_out_of_quota_keeps_serving_a_valid_stored_token() {
    let (world, appid) = world_with_app(None).await;
    // Due for refresh (less than 5 minutes left) but still valid.
    seed_token(&world, &appid, "still-valid-token", now_unix() + 200).await;
    let faults = [
        json!({"errcode": -1}),
        json!({"http_status": 503}),
        json!({"delay_ms": 1500}),
        json!({"errcode": 45009}),
    ];
    for fault in faults {
        let mut f = fault.clone();
        f["path"] = json!("/cgi-bin/stable_token");
        world.emulator.control("/faults", f).await;
        // A fresh instance each time, with a short back-off so each one tries WeChat.
        let policy = TokenPolicy {
            failure_backoff: Duration::from_millis(1),
            ..TokenPolicy::default()
        };
        let m = world.manager(policy, 400);
        let got = m
            .get(&appid)
            .await
            .unwrap_or_else(|e| panic!("fault {fault}: {e}"));
        assert_eq!(got.token.expose(), "still-valid-token", "fault {fault}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        world.emulator.emu.calls("/cgi-bin/stable_token"),
        4,
        "each fault was met once"
    );
    let record = world.store().load(&appid).await.unwrap().unwrap();
    assert_eq!(
        record.last_failure.as_ref().and_then(|f| f.errcode),
        Some(45009)
    );
}

#[tokio::test]
async fn wechat_down_with_no_valid_token_is_a_clear_error() {
    let (world, appid) = world_with_app(None).await;
    seed_token(&world, &appid, "expired-token", now_unix() - 10).await;
    let cases = [
        (json!({"errcode": -1}), 503, "wechat_unavailable", Some(-1)),
        (json!({"http_status": 503}), 503, "wechat_unavailable", None),
        (json!({"delay_ms": 1500}), 504, "wechat_timeout", None),
        (
            json!({"errcode": 45009}),
            429,
            "wechat_quota_exceeded",
            Some(45009),
        ),
    ];
    for (fault, status, code, errcode) in cases {
        let mut f = fault.clone();
        f["path"] = json!("/cgi-bin/stable_token");
        world.emulator.control("/faults", f).await;
        let m = world.manager(
            TokenPolicy {
                failure_backoff: Duration::from_millis(1),
                ..TokenPolicy::default()
            },
            400,
        );
        let err = m
            .get(&appid)
            .await
            .expect_err("no valid token, WeChat failing");
        let message = err.to_string();
        assert!(message.contains(&appid), "names the app: {message}");
        let api = ApiError::from(err);
        assert_eq!(
            (api.status().as_u16(), api.code(), api.wechat_errcode()),
            (status, code, errcode),
            "{fault}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Within the back-off, other instances answer at once from the recorded failure.
    world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/stable_token", "errcode": -1}),
        )
        .await;
    let m = world.manager(
        TokenPolicy {
            failure_backoff: Duration::from_secs(30),
            ..TokenPolicy::default()
        },
        400,
    );
    assert!(m.get(&appid).await.is_err());
    let calls = world.emulator.emu.calls("/cgi-bin/stable_token");
    let other = world.manager(TokenPolicy::default(), 400);
    let err = other.get(&appid).await.unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::RecentlyFailed {
                errcode: Some(-1),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        world.emulator.emu.calls("/cgi-bin/stable_token"),
        calls,
        "no WeChat call during the back-off"
    );
}

#[tokio::test]
async fn configuration_errors_name_the_app_never_the_secret() {
    let (world, good) = world_with_app(None).await;
    let m = world.manager(TokenPolicy::default(), 2000);

    // Unknown appid (well-formed, and malformed).
    for unknown in [random_appid(), "wx../../etc".to_string()] {
        let err = m.get(&unknown).await.unwrap_err();
        assert!(
            matches!(err, TokenError::Config(ConfigError::UnknownApp { .. })),
            "{err}"
        );
        let api = ApiError::from(err);
        assert_eq!((api.status().as_u16(), api.code()), (404, "unknown_app"));
    }

    // Missing app_secret; blank app_secret (SSM refuses empty values, so a blank one).
    let missing = random_appid();
    put(&world, &missing, "mini_program", None).await;
    let blank = random_appid();
    put(&world, &blank, "mini_program", Some("   ")).await;
    // A new instance (its cached listing of apps is older than the new parameters).
    let m = world.manager(TokenPolicy::default(), 2000);
    for appid in [&missing, &blank] {
        let err = m.get(appid).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(appid.as_str()) && text.contains("app_secret"),
            "{text}"
        );
        let api = ApiError::from(err);
        assert_eq!(
            (api.status().as_u16(), api.code()),
            (500, "app_misconfigured")
        );
    }
    let bad_kind = random_appid();
    put(&world, &bad_kind, "weapp", Some(SECRET)).await;
    let m = world.manager(TokenPolicy::default(), 2000);
    assert!(
        m.get(&bad_kind)
            .await
            .unwrap_err()
            .to_string()
            .contains("kind")
    );

    // Wrong secret: WeChat's 40125, named for the app, the secret nowhere.
    let wrong = "ffffffffffffffffffffffffffffffff";
    put(&world, &good, "official_account", Some(wrong)).await;
    let fresh = world.manager(TokenPolicy::default(), 2000);
    let err = fresh.get(&good).await.unwrap_err();
    let debug = format!("{err:?} {err}");
    let api = ApiError::from(err);
    let body = api.body().to_string();
    for text in [&debug, &body] {
        assert!(text.contains(&good), "{text}");
        assert!(
            !text.contains(wrong) && !text.contains(SECRET),
            "no secret in: {text}"
        );
    }
    assert_eq!(
        (api.code(), api.wechat_errcode()),
        ("wechat_credentials_rejected", Some(40125))
    );
}

#[tokio::test]
async fn a_token_rejected_by_wechat_is_replaced_once() {
    let (world, appid) = world_with_app(Some("classic")).await;
    let m = world.manager(TokenPolicy::default(), 2000);
    let first = m.get(&appid).await.unwrap();
    world
        .emulator
        .control("/tokens/invalidate", json!({"appid": appid}))
        .await;
    // Our own in-memory copy is still "valid"; the send path learns otherwise from WeChat.
    assert_eq!(m.get(&appid).await.unwrap(), first);
    assert!(m.invalidate(&appid, &first).await.unwrap());
    let second = m.get(&appid).await.unwrap();
    assert_ne!(second.token, first.token);
    assert_eq!(world.emulator.emu.calls("/cgi-bin/token"), 2);
    // Concurrent invalidations of the same failed token by many instances: one refresh.
    world
        .emulator
        .control("/tokens/invalidate", json!({"appid": appid}))
        .await;
    let managers: Vec<Arc<_>> = (0..10)
        .map(|_| world.manager(TokenPolicy::default(), 2000))
        .collect();
    let mut tasks = Vec::new();
    for mgr in managers {
        let (appid, failed) = (appid.clone(), second.clone());
        tasks.push(tokio::spawn(async move {
            mgr.invalidate(&appid, &failed).await.unwrap();
            mgr.get(&appid).await.unwrap()
        }));
    }
    let mut thirds = Vec::new();
    for t in tasks {
        thirds.push(t.await.unwrap());
    }
    assert!(thirds.windows(2).all(|w| w[0].token == w[1].token));
    assert_eq!(
        world.emulator.emu.calls("/cgi-bin/token"),
        3,
        "one refresh for ten invalidations"
    );
}
