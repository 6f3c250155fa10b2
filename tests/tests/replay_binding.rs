//! Plaintext mode's replay record binds a signature to one request: WeChat's signature covers
//! only (token, timestamp, nonce), so without it a signed URL verification could be replayed
//! as a push with any body, and a push's signature accepted by another app with the same
//! callback token. On moto's DynamoDB and on the embedded store.

use std::collections::HashMap;
use std::sync::Arc;
use wxpush_callback::handle as callback_handle;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{DynamoStateStore, EmbeddedStateStore, ItemKey, StateStore};
use wxpush_tests::faults::RecordingQueue;
use wxpush_tests::{apigw_callback_request, signed_query};

/// Two plaintext apps sharing one callback token, and a third with its own.
const P1: &str = "wx00000000000007b1";
const P2: &str = "wx00000000000007b2";
const P3: &str = "wx00000000000007b3";
const SHARED: &str = "replay-shared-token";
const OWN: &str = "replay-own-token";

/// The callback over moto's DynamoDB (`true`) or the embedded store.
async fn service(moto: bool) -> (CallbackService, Arc<dyn StateStore>) {
    let entry = |appid: &str, token: &str| AppEntry {
        appid: appid.into(),
        kind: "official_account".into(),
        app_secret: "replay-secret".into(),
        callback_token: Some(token.into()),
        ..AppEntry::default()
    };
    wxpush_tests::remember_secrets([SHARED.into(), OWN.into(), "replay-secret".into()]);
    let file = AppsFile {
        apps: vec![entry(P1, SHARED), entry(P2, SHARED), entry(P3, OWN)],
    };
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecretStore::from_file(file).unwrap());
    let store: Arc<dyn StateStore> = if moto {
        let sdk = wxpush_tests::sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = wxpush_tests::create_table(&dynamo).await;
        Arc::new(DynamoStateStore::new(dynamo, table))
    } else {
        Arc::new(EmbeddedStateStore::new(wxpush_tests::memory_db()))
    };
    (
        CallbackService::new(secrets, store.clone(), RecordingQueue::new()),
        store,
    )
}

fn event(from: &str, t: i64) -> String {
    format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>{from}</FromUserName><CreateTime>{t}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey></xml>"
    )
}

/// The status of `method` to `appid` with query `q` and `body`.
async fn status(
    svc: &CallbackService,
    method: &str,
    appid: &str,
    q: &HashMap<String, String>,
    body: &str,
) -> u16 {
    let req = apigw_callback_request(method, appid, q, body.as_bytes(), false);
    callback_handle(svc, req).await.status().as_u16()
}

/// A signed query of `token` with a fresh nonce at `now`, and `echostr` when given.
fn query(token: &str, now: i64, echostr: Option<&str>) -> HashMap<String, String> {
    let extra: Vec<(&str, &str)> = echostr.map(|e| ("echostr", e)).into_iter().collect();
    signed_query(token, &now.to_string(), &wxpush_tests::nonce(), &extra)
}

#[tokio::test]
async fn a_signed_url_verification_is_not_a_push_and_a_push_is_not_one() {
    for moto in [true, false] {
        let (svc, store) = service(moto).await;
        let now = now_unix();
        let forged = event("victim", now);
        // A verification URL someone saw (a proxy's log, a browser's history)...
        let q = query(SHARED, now, Some("e1"));
        assert_eq!(status(&svc, "GET", P1, &q, "").await, 200);
        // ...replayed as a push with a body of their own: refused, nothing recorded.
        assert_eq!(
            status(&svc, "POST", P1, &q, &forged).await,
            401,
            "moto {moto}"
        );
        let victim = parse_key(&forged);
        assert!(
            store
                .get(&ItemKey::event(P1, &victim))
                .await
                .unwrap()
                .is_none()
        );
        // WeChat repeating its verification passes; another echostr with it does not.
        assert_eq!(status(&svc, "GET", P1, &q, "").await, 200);
        let mut other = q.clone();
        other.insert("echostr".into(), "<script>".into());
        assert_eq!(status(&svc, "GET", P1, &other, "").await, 401);
        // And the other way round: a push's signature is not a verification's.
        let q = query(SHARED, now, None);
        assert_eq!(status(&svc, "POST", P1, &q, &event("u1", now)).await, 200);
        assert_eq!(status(&svc, "POST", P1, &q, &event("u1", now)).await, 200);
        let mut as_get = q.clone();
        as_get.insert("echostr".into(), "e2".into());
        assert_eq!(status(&svc, "GET", P1, &as_get, "").await, 401);
    }
}

#[tokio::test]
async fn a_signature_is_not_accepted_by_another_app_with_the_same_token() {
    for moto in [true, false] {
        let (svc, store) = service(moto).await;
        let now = now_unix();
        // A push to P1, seen on the way; its query and body posted to P2 (same token).
        let q = query(SHARED, now, None);
        let body = event("u2", now);
        assert_eq!(status(&svc, "POST", P1, &q, &body).await, 200);
        for replayed in [body.clone(), event("victim", now)] {
            assert_eq!(
                status(&svc, "POST", P2, &q, &replayed).await,
                401,
                "moto {moto}"
            );
            let key = parse_key(&replayed);
            assert!(
                store
                    .get(&ItemKey::event(P2, &key))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // A verification URL of P1 is not one of P2 either.
        let q = query(SHARED, now, Some("e3"));
        assert_eq!(status(&svc, "GET", P1, &q, "").await, 200);
        assert_eq!(status(&svc, "GET", P2, &q, "").await, 401);
        // Apps with their own tokens never meet: WeChat's same (timestamp, nonce) to two of
        // them is two signatures, both accepted.
        let nonce = wxpush_tests::nonce();
        for (appid, token) in [(P1, SHARED), (P3, OWN)] {
            let q = signed_query(token, &now.to_string(), &nonce, &[]);
            assert_eq!(
                status(&svc, "POST", appid, &q, &event("u3", now)).await,
                200
            );
        }
    }
}

/// The dedupe key of a push body.
fn parse_key(xml: &str) -> String {
    wxpush_shared::callback::message::parse_message(xml)
        .unwrap()
        .dedupe_key()
}
