//! The callback Lambda handler over real API Gateway v2 events (plain and base64 bodies), the
//! same routes through `wxpush serve`, and random or mutated input never answering 5xx.

use base64::Engine;
use proptest::prelude::*;
use serde_json::json;
use wxpush_callback::handle;
use wxpush_shared::AppKind;
use wxpush_shared::callback::crypto::MsgCrypt;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::callback::signature;
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile};
use wxpush_tests::{callback_service, local_server, signed_query};

const OA: &str = "wx00000000000000c1";
const MP: &str = "wx00000000000000c2";
const TOKEN: &str = "handler-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

use wxpush_tests::{apigw_callback_request as apigw, query_string};

async fn service() -> (CallbackService, wxpush_tests::EmulatorServer) {
    let (svc, _, emu) = callback_service(&[
        (OA, TOKEN, None, AppKind::OfficialAccount),
        (MP, TOKEN, Some(AES_KEY), AppKind::MiniProgram),
    ])
    .await;
    (svc, emu)
}

fn text_of(resp: &lambda_http::Response<lambda_http::Body>) -> String {
    String::from_utf8_lossy(resp.body().as_ref()).into_owned()
}

fn click(from: &str, now: i64) -> String {
    format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>{from}</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey></xml>"
    )
}

#[tokio::test]
async fn lambda_handler_verifies_receives_and_refuses() {
    let (svc, _emu) = service().await;
    let now = now_unix();
    url_verification_answers_the_echo_only_when_signed(&svc, now).await;
    plain_xml_is_received_as_text_and_base64(&svc, now).await;
    safe_mode_json_is_received_only_by_its_own_app(&svc, now).await;
    stale_pushes_wrong_methods_paths_and_oversize_bodies_are_refused(&svc, now).await;
}

/// URL verification: the echo when signed; a bad signature, no echostr, an unknown app
/// refused.
async fn url_verification_answers_the_echo_only_when_signed(svc: &CallbackService, now: i64) {
    let ts = now.to_string();
    let q = signed_query(TOKEN, &ts, "n1", &[("echostr", "7304939123456")]);
    let resp = handle(svc, apigw("GET", OA, &q, b"", false)).await;
    assert_eq!(
        (resp.status().as_u16(), text_of(&resp)),
        (200, "7304939123456".to_string())
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let mut bad = q.clone();
    bad.insert("signature".into(), "f".repeat(40));
    assert_eq!(
        handle(svc, apigw("GET", OA, &bad, b"", false))
            .await
            .status(),
        401
    );
    let mut missing = q.clone();
    missing.remove("echostr");
    assert_eq!(
        handle(svc, apigw("GET", OA, &missing, b"", false))
            .await
            .status(),
        400
    );
    let resp = handle(svc, apigw("GET", "wx00000000000000ff", &q, b"", false)).await;
    assert_eq!(resp.status(), 404);
    assert!(text_of(&resp).contains("unknown_app"));
}

/// Plain-mode XML, as text and base64-encoded.
async fn plain_xml_is_received_as_text_and_base64(svc: &CallbackService, now: i64) {
    let ts = now.to_string();
    for (base64, from) in [(false, "o1"), (true, "o2")] {
        // Each push has its own nonce (plaintext mode refuses one seen with another body).
        let q = signed_query(TOKEN, &ts, &format!("n2{from}"), &[("openid", "o1")]);
        let resp = handle(
            svc,
            apigw("POST", OA, &q, click(from, now).as_bytes(), base64),
        )
        .await;
        assert_eq!(
            (resp.status().as_u16(), text_of(&resp)),
            (200, "success".to_string()),
            "base64={base64}"
        );
    }
}

/// Safe mode, JSON (a mini program), base64-encoded by API Gateway; the same ciphertext
/// for another app is refused.
async fn safe_mode_json_is_received_only_by_its_own_app(svc: &CallbackService, now: i64) {
    let ts = now.to_string();
    let inner = json!({"ToUserName": "gh_mp", "FromUserName": "mp-o1", "CreateTime": now, "MsgType": "event", "Event": "subscribe_msg_popup_event",
        "List": [{"TemplateId": "T9", "SubscribeStatusString": "accept", "PopupScene": "0"}]})
    .to_string();
    let encrypt = MsgCrypt::new(AES_KEY)
        .unwrap()
        .encrypt(&inner, MP, b"0123456789abcdef");
    let msg_signature = signature::compute(&[TOKEN, &ts, "n3", &encrypt]);
    let q = signed_query(
        TOKEN,
        &ts,
        "n3",
        &[("encrypt_type", "aes"), ("msg_signature", &msg_signature)],
    );
    let body = json!({"ToUserName": "gh_mp", "Encrypt": encrypt}).to_string();
    let resp = handle(svc, apigw("POST", MP, &q, body.as_bytes(), true)).await;
    assert_eq!(
        (resp.status().as_u16(), text_of(&resp)),
        (200, "success".to_string())
    );
    // The same ciphertext for the other app: the appid inside does not match (400).
    let (svc_oa_aes, _, _emu2) =
        callback_service(&[(OA, TOKEN, Some(AES_KEY), AppKind::OfficialAccount)]).await;
    let resp = handle(&svc_oa_aes, apigw("POST", OA, &q, body.as_bytes(), false)).await;
    assert_eq!(resp.status(), 400);
}

/// Stale timestamp, wrong method, unknown path, oversize body.
async fn stale_pushes_wrong_methods_paths_and_oversize_bodies_are_refused(
    svc: &CallbackService,
    now: i64,
) {
    let ts = now.to_string();
    let old = (now - 301).to_string();
    let q = signed_query(TOKEN, &old, "n4", &[]);
    assert_eq!(
        handle(
            svc,
            apigw("POST", OA, &q, click("o3", now - 301).as_bytes(), false)
        )
        .await
        .status(),
        401
    );
    let resp = handle(svc, apigw("PUT", OA, &q, b"", false)).await;
    assert_eq!(
        (
            resp.status().as_u16(),
            resp.headers()["allow"].to_str().unwrap()
        ),
        (405, "GET, POST")
    );
    let mut e = apigw("GET", OA, &q, b"", false);
    *e.uri_mut() = "https://x/wechat/a/b".parse().unwrap();
    assert_eq!(handle(svc, e).await.status(), 404);
    let q = signed_query(TOKEN, &ts, "n5", &[]);
    let huge = vec![b'<'; 64 * 1024 + 1];
    assert_eq!(
        handle(svc, apigw("POST", OA, &q, &huge, true))
            .await
            .status(),
        413
    );
}

#[tokio::test]
async fn wxpush_serve_mounts_the_callback() {
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: OA.into(),
            kind: "official_account".into(),
            app_secret: "s".into(),
            callback_token: Some(TOKEN.into()),
            ..AppEntry::default()
        }],
    };
    let server = local_server(apps, "k").await;
    let http = reqwest::Client::new();
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), "9", &[("echostr", "hello-echo")]);
    let url = format!("{}/wechat/{OA}?{}", server.url(), query_string(&q));
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap()),
        (200, "hello-echo".to_string())
    );
    // A push is signed with its own nonce: the verification's signature is not a push's.
    let q = signed_query(TOKEN, &now.to_string(), "10", &[]);
    let url = format!("{}/wechat/{OA}?{}", server.url(), query_string(&q));
    let resp = http.post(&url).body(click("o9", now)).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap()),
        (200, "success".to_string())
    );
    let resp = http
        .post(&url)
        .body(vec![b'x'; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // No bearer key is needed (or looked at) on the public route.
    let resp = http
        .get(format!("{}/wechat/{OA}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Mutations of a valid safe-mode body: base64 damage, byte flips, truncation, padding.
fn mutate(encrypt: &str, kind: u8, at: usize) -> String {
    let mut bytes = encrypt.as_bytes().to_vec();
    let at = at % bytes.len().max(1);
    match kind % 5 {
        0 => bytes.truncate(at),
        1 => bytes[at] = b'!',
        2 => bytes.insert(at, b'='),
        3 => {
            let mut raw = base64::engine::general_purpose::STANDARD
                .decode(encrypt)
                .unwrap();
            let i = at % raw.len();
            raw[i] ^= 0x80;
            return base64::engine::general_purpose::STANDARD.encode(raw);
        }
        _ => bytes.extend_from_slice(b"AAAA"),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn bad_input_never_gets_a_5xx(body in proptest::collection::vec(any::<u8>(), 0..2048), kind in any::<u8>(), at in any::<usize>(), xmlish in "[<>a-zA-Z/!\\[\\]&;\"' =]{0,200}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (svc, _emu) = service().await;
            let now = now_unix();
            let ts = now.to_string();
            let q = signed_query(TOKEN, &ts, "p", &[]);
            // Random bytes and XML-ish text with a valid signature (plain mode does not sign the body).
            for b in [&body[..], xmlish.as_bytes(), format!("<xml>{xmlish}</xml>").as_bytes()] {
                let resp = handle(&svc, apigw("POST", OA, &q, b, true)).await;
                prop_assert!(resp.status().is_client_error() || resp.status() == 200, "{}", resp.status());
            }
            // A mutated ciphertext whose msg_signature is recomputed, so it reaches the decryptor.
            let inner = click("o", now);
            let good = MsgCrypt::new(AES_KEY).unwrap().encrypt(&inner, MP, &[1; 16]);
            let bad = mutate(&good, kind, at);
            let msg_sig = signature::compute(&[TOKEN, &ts, "p", &bad]);
            let q = signed_query(TOKEN, &ts, "p", &[("encrypt_type", "aes"), ("msg_signature", &msg_sig)]);
            let body = format!("<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{bad}]]></Encrypt></xml>");
            let resp = handle(&svc, apigw("POST", MP, &q, body.as_bytes(), false)).await;
            prop_assert!(resp.status().is_client_error() || resp.status() == 200, "{}", resp.status());
            Ok(())
        })?;
    }
}
