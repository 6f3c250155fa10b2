//! Every vector in tests/data/wechat-vectors.json (WeChat's callback signatures and safe-mode
//! crypto, docs/wechat.md#worked-example) through the callback service, as WeChat would
//! deliver it, with "now" at the vector's timestamp.

use serde_json::Value;
use wxpush_shared::AppKind;
use wxpush_shared::callback::crypto::{CryptoError, MsgCrypt};
use wxpush_shared::callback::message::parse_message;
use wxpush_shared::callback::signature;
use wxpush_shared::store::Recorded;
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_tests::{callback_service, signed_query};

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/wechat-vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn xml_envelope(encrypt: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
}

#[tokio::test]
async fn url_verification_vectors() {
    for v in vectors()["url_verify"].as_array().unwrap() {
        let appid = "wx00000000000000f1";
        let (svc, _, _emu) =
            callback_service(&[(appid, s(v, "token"), None, AppKind::OfficialAccount)]).await;
        let mut q = signed_query(
            s(v, "token"),
            s(v, "timestamp"),
            s(v, "nonce"),
            &[("echostr", s(v, "echostr"))],
        );
        q.insert("signature".into(), s(v, "signature").into());
        let now: i64 = s(v, "timestamp").parse().unwrap_or(0);
        let result = svc.verify_url(appid, &q, now).await;
        if v["valid"].as_bool().unwrap() {
            assert_eq!(
                result.unwrap(),
                s(v, "expected_response_body"),
                "{}",
                s(v, "name")
            );
        } else {
            assert_eq!(result.unwrap_err().status(), 401, "{}", s(v, "name"));
        }
    }
}

#[tokio::test]
async fn plain_post_vector() {
    let v = &vectors()["plain_post"][0];
    let appid = "wx00000000000000f2";
    let (svc, store, _emu) =
        callback_service(&[(appid, s(v, "token"), None, AppKind::MiniProgram)]).await;
    let mut q = signed_query(s(v, "token"), s(v, "timestamp"), s(v, "nonce"), &[]);
    assert_eq!(q["signature"], s(v, "signature"));
    let body = v["body_json"].to_string();
    let now = s(v, "timestamp").parse().unwrap();
    assert_eq!(
        svc.receive(appid, &q, body.as_bytes(), now).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        svc.receive(appid, &q, body.as_bytes(), now).await.unwrap(),
        Recorded::Duplicate
    );
    let msg = parse_message(&body).unwrap();
    let event = store
        .get(&ItemKey::event(appid, &msg.dedupe_key()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event["event"], Attr::S("debug_demo".into()));
    q.insert("signature".into(), "0".repeat(40));
    assert_eq!(
        svc.receive(appid, &q, body.as_bytes(), now)
            .await
            .unwrap_err()
            .status(),
        401
    );
}

#[tokio::test]
async fn safe_mode_vectors_decrypt_to_their_plaintext() {
    for v in vectors()["aes"].as_array().unwrap() {
        let name = s(v, "name");
        let appid = s(v, "appid");
        let kind = if s(v, "format") == "json" {
            AppKind::MiniProgram
        } else {
            AppKind::OfficialAccount
        };
        let (svc, store, _emu) =
            callback_service(&[(appid, s(v, "token"), Some(s(v, "encoding_aes_key")), kind)]).await;
        let crypt = MsgCrypt::new(s(v, "encoding_aes_key")).unwrap();
        let Some(query) = v["query"].as_object() else {
            // A passive reply (wxpush always answers `success`, but the crypto must still agree).
            assert_eq!(
                crypt.decrypt(s(v, "encrypt"), appid).unwrap(),
                s(v, "plaintext"),
                "{name}"
            );
            assert_eq!(
                signature::compute(&[
                    s(v, "token"),
                    s(v, "timestamp"),
                    s(v, "nonce"),
                    s(v, "encrypt")
                ]),
                s(v, "msg_signature"),
                "{name}"
            );
            continue;
        };
        let q: std::collections::HashMap<String, String> = query
            .iter()
            .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
            .collect();
        let body = s(v, "full_encrypted_post_body");
        let now = s(v, "timestamp").parse().unwrap();
        assert_eq!(
            crypt.decrypt(s(v, "encrypt"), appid).unwrap(),
            s(v, "plaintext"),
            "{name}"
        );
        match parse_message(s(v, "plaintext")) {
            Ok(msg) => {
                assert_eq!(
                    svc.receive(appid, &q, body.as_bytes(), now).await.unwrap(),
                    Recorded::New,
                    "{name}"
                );
                let stored = store
                    .get(&ItemKey::event(appid, &msg.dedupe_key()))
                    .await
                    .unwrap()
                    .expect(name);
                assert_eq!(stored["body"], Attr::S(s(v, "plaintext").into()), "{name}");
            }
            // A crypto-only vector (padding_full_block_32): it decrypts, but it is no WeChat push.
            Err(_) => {
                let err = svc
                    .receive(appid, &q, body.as_bytes(), now)
                    .await
                    .unwrap_err();
                assert_eq!(err.status(), 400, "{name}: {err}");
            }
        }
        // Our encryption reproduces the vector byte for byte.
        let random: [u8; 16] = hex::decode(s(v, "random16_hex"))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            crypt.encrypt(s(v, "plaintext"), appid, &random),
            s(v, "encrypt"),
            "{name}"
        );
        // Outside the ±300 s window the same delivery is refused.
        assert_eq!(
            svc.receive(appid, &q, body.as_bytes(), now + 301)
                .await
                .unwrap_err()
                .status(),
            401,
            "{name}"
        );
    }
}

#[tokio::test]
async fn negative_safe_mode_vectors_are_refused() {
    for v in vectors()["aes_negative"].as_array().unwrap() {
        let name = s(v, "name");
        if name == "illegal_aes_key" {
            assert_eq!(
                MsgCrypt::new(s(v, "encoding_aes_key")).unwrap_err(),
                CryptoError::IllegalAesKey
            );
            assert_eq!(
                CryptoError::IllegalAesKey.code(),
                v["expected_code"].as_i64().unwrap() as i32
            );
            continue;
        }
        let appid = v["appid"]
            .as_str()
            .or(v["appid_expected_by_receiver"].as_str())
            .unwrap();
        let token = s(v, "token");
        let (svc, _, _emu) = callback_service(&[(
            appid,
            token,
            Some(s(v, "encoding_aes_key")),
            AppKind::OfficialAccount,
        )])
        .await;
        let q = signed_query(
            token,
            s(v, "timestamp"),
            s(v, "nonce"),
            &[
                ("encrypt_type", "aes"),
                ("msg_signature", s(v, "msg_signature")),
            ],
        );
        let body = v["full_encrypted_post_body"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| xml_envelope(s(v, "encrypt")));
        let now = s(v, "timestamp").parse().unwrap();
        let err = svc
            .receive(appid, &q, body.as_bytes(), now)
            .await
            .expect_err(name);
        let expected = match v["expected_code"].as_i64() {
            Some(-40001) => 401,
            _ => 400,
        };
        assert_eq!(err.status(), expected, "{name}: {err}");
        if let Some(code) = v["expected_code"].as_i64().filter(|c| *c != -40001) {
            assert!(err.to_string().contains(&code.to_string()), "{name}: {err}");
        }
    }
}

#[tokio::test]
async fn official_samples() {
    let all = vectors();
    let official = all["official"].as_array().unwrap();
    // The MP doc's JSON worked example, as delivered.
    let v = &official[0];
    let appid = s(v, "appid");
    let (svc, _, _emu) = callback_service(&[(
        appid,
        s(v, "token"),
        Some(s(v, "encoding_aes_key")),
        AppKind::MiniProgram,
    )])
    .await;
    let inc = &v["incoming"];
    let q: std::collections::HashMap<String, String> = inc["query"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
        .collect();
    let now = q["timestamp"].parse().unwrap();
    assert_eq!(
        svc.receive(appid, &q, inc["body_json"].to_string().as_bytes(), now)
            .await
            .unwrap(),
        Recorded::New
    );
    // The reply example's signature.
    let reply = &v["reply"];
    assert_eq!(
        signature::compute(&[
            s(v, "token"),
            s(reply, "timestamp"),
            s(reply, "nonce"),
            s(reply, "encrypt")
        ]),
        s(reply, "msg_signature")
    );

    // Tencent's OA sample, Tencent's WeCom sample and wechatpy's vector: receiver ids that look like appids.
    for v in &official[1..] {
        let name = s(v, "name");
        let receiver = v["appid"].as_str().or(v["receive_id"].as_str()).unwrap();
        let (svc, _, _emu) = callback_service(&[(
            receiver,
            s(v, "token"),
            Some(s(v, "encoding_aes_key")),
            AppKind::OfficialAccount,
        )])
        .await;
        let q = signed_query(
            s(v, "token"),
            s(v, "timestamp"),
            s(v, "nonce"),
            &[
                ("encrypt_type", "aes"),
                ("msg_signature", s(v, "msg_signature")),
            ],
        );
        let body = v["full_post_body_xml"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| xml_envelope(s(v, "encrypt")));
        let now = s(v, "timestamp").parse().unwrap();
        assert_eq!(
            svc.receive(receiver, &q, body.as_bytes(), now)
                .await
                .unwrap(),
            Recorded::New,
            "{name}"
        );
        let plain = v["decrypted_plaintext"]
            .as_str()
            .or(v["plaintext"].as_str())
            .unwrap();
        let crypt = MsgCrypt::new(s(v, "encoding_aes_key")).unwrap();
        assert_eq!(
            crypt.decrypt(s(v, "encrypt"), receiver).unwrap(),
            plain,
            "{name}"
        );
    }
}
