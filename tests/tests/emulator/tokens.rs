//! Access tokens: rotation, the stable token, credentials, quotas and invalidation.

use crate::client::*;
use serde_json::json;

#[tokio::test]
async fn classic_token_rotates_and_the_old_one_lives_five_minutes() {
    let emu = emulator().await;
    let first = token(&classic(&emu, OA, "oa-secret").await);
    let second = token(&classic(&emu, OA, "oa-secret").await);
    assert_ne!(first, second);
    let user = json!({"appid": OA, "openid": "o1", "subscribed": true});
    emu.control("/users", user).await;
    let msg = json!({"touser": "o1", "template_id": "T1", "data": {"thing1": {"value": "hi"}}});
    assert_eq!(
        errcode(&template(&emu, &first, msg.clone()).await),
        0,
        "old token still works"
    );
    emu.control("/clock", json!({"advance_secs": 301})).await;
    assert_eq!(
        errcode(&template(&emu, &first, msg.clone()).await),
        42001,
        "old token expired after the overlap"
    );
    assert_eq!(errcode(&template(&emu, &second, msg.clone()).await), 0);
    let third = token(&classic(&emu, OA, "oa-secret").await);
    let _fourth = token(&classic(&emu, OA, "oa-secret").await);
    assert_eq!(
        errcode(&template(&emu, &second, msg.clone()).await),
        40001,
        "two rotations ago: dead"
    );
    assert_eq!(errcode(&template(&emu, &third, msg.clone()).await), 0);
    emu.control("/clock", json!({"advance_secs": 7200})).await;
    assert_eq!(errcode(&template(&emu, &third, msg).await), 42001);
}

#[tokio::test]
async fn stable_token_keeps_its_token_and_rotates_in_the_last_five_minutes() {
    let emu = emulator().await;
    let a = stable(&emu, OA, "oa-secret", false).await;
    let b = stable(&emu, OA, "oa-secret", false).await;
    assert_eq!(token(&a), token(&b));
    assert!(b["expires_in"].as_i64().unwrap() <= 7200);
    emu.control("/clock", json!({"advance_secs": 6950})).await;
    let c = stable(&emu, OA, "oa-secret", false).await;
    assert_ne!(token(&c), token(&a), "rotated inside the last 300 s");
    assert!(c["expires_in"].as_i64().unwrap() >= 300);
    // Isolated from /cgi-bin/token.
    let classic_tok = token(&classic(&emu, OA, "oa-secret").await);
    assert_eq!(
        token(&stable(&emu, OA, "oa-secret", false).await),
        token(&c)
    );
    assert_ne!(classic_tok, token(&c));
    // force_refresh rotates, but not twice within 30 s.
    let f1 = token(&stable(&emu, OA, "oa-secret", true).await);
    assert_ne!(f1, token(&c));
    let f2 = token(&stable(&emu, OA, "oa-secret", true).await);
    assert_eq!(f1, f2, "second force within 30 s does not refresh");
    emu.control("/clock", json!({"advance_secs": 31})).await;
    assert_ne!(token(&stable(&emu, OA, "oa-secret", true).await), f1);
}

#[tokio::test]
async fn credentials_quota_and_invalidation() {
    let emu = emulator().await;
    assert_eq!(errcode(&stable(&emu, OA, "wrong", false).await), 40125);
    assert_eq!(errcode(&classic(&emu, OA, "wrong").await), 40125);
    assert_eq!(
        errcode(&stable(&emu, "wx0000000000000000", "x", false).await),
        40013
    );
    assert_eq!(
        errcode(
            &emu.post(
                "/cgi-bin/stable_token",
                json!({"grant_type": "x", "appid": OA, "secret": "oa-secret"})
            )
            .await
        ),
        40002
    );
    emu.control(
        "/quotas",
        json!({"path": "/cgi-bin/token", "daily_limit": 3}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(errcode(&classic(&emu, OA, "oa-secret").await), 0);
    }
    assert_eq!(errcode(&classic(&emu, OA, "oa-secret").await), 45009);
    emu.control("/clock", json!({"advance_secs": 86_400})).await;
    let tok = token(&classic(&emu, OA, "oa-secret").await);
    emu.control("/users", json!({"appid": OA, "openid": "o1"}))
        .await;
    emu.control("/tokens/invalidate", json!({"appid": OA}))
        .await;
    let msg = json!({"touser": "o1", "template_id": "T1", "data": {"thing1": {"value": "hi"}}});
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), 40001);
    assert_eq!(errcode(&template(&emu, "", msg).await), 41001);
    let stats = emu.get("/sandbox/stats").await;
    assert_eq!(
        stats["/cgi-bin/token"], 6,
        "every call counts, refused ones too"
    );
    assert_eq!(stats["/cgi-bin/message/template/send"], 2);
}
