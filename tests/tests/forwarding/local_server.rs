//! `wxpush serve --forward URL` forwarding to a webhook.

use crate::webhook::webhook;
use crate::world::{TOKEN, text_message};
use std::sync::atomic::Ordering;
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile};
use wxpush_tests::{random_appid, signed_query};

/// `wxpush serve --forward URL`: the webhook is down for the first delivery; the event is
/// acknowledged at once and reaches the webhook on the retry, once.
#[tokio::test]
async fn the_local_server_forwards_to_a_webhook_that_is_down_at_first() {
    let hook = webhook(1).await;
    let appid = random_appid();
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: appid.clone(),
            kind: AppKind::OfficialAccount.as_str().into(),
            app_secret: "serve-secret".into(),
            callback_token: Some(TOKEN.into()),
            ..AppEntry::default()
        }],
    };
    let server = wxpush_tests::local_server_forwarding(
        apps,
        "fwd-api-key",
        Some(hook.url.clone()),
        Duration::from_secs(3600),
    )
    .await;
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/wechat/{appid}?{}",
            server.url(),
            wxpush_tests::query_string(&q)
        ))
        .body(text_message("o-hook", 60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "success");
    // The first attempt is refused; the retry comes 5 s later. Bounded wait.
    for _ in 0..200 {
        if !hook.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(hook.calls.load(Ordering::SeqCst), 2);
    // Both deliveries signed, the retry again with its own (later) t.
    let signed_at = hook.signed_at.lock().unwrap().clone();
    match signed_at.as_slice() {
        [Ok(first), Ok(retry)] => assert!(retry >= &(first + 4), "{signed_at:?}"),
        other => panic!("two signed deliveries: {other:?}"),
    }
    assert_eq!(got[0].0, "wechat.text");
    assert_eq!(got[0].1["appid"], appid.as_str());
    assert_eq!(got[0].1["openid"], "o-hook");
    assert_eq!(got[0].1["message"]["Content"], "你好 <wxpush>");
}
