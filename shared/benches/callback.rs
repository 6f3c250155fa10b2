//! criterion: verify + decrypt + parse of a 2 KB safe-mode message — the CPU work of one
//! callback before the store is touched. `cargo bench -p wxpush-shared --bench callback`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wxpush_shared::callback::crypto::MsgCrypt;
use wxpush_shared::callback::message::{parse_fields, parse_message};
use wxpush_shared::callback::signature;

const APPID: &str = "wx1234567890abcdef";
const TOKEN: &str = "wxcallbacktoken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn two_kb_message() -> String {
    let content = "消息内容 message content ".repeat(70);
    let msg = format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oABCD1234efgh5678ijkl90mnop]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>24012345678901234</MsgId></xml>"
    );
    assert!((1900..2300).contains(&msg.len()), "{}", msg.len());
    msg
}

fn bench(c: &mut Criterion) {
    let crypt = MsgCrypt::new(KEY).unwrap();
    let encrypt = crypt.encrypt(&two_kb_message(), APPID, b"0123456789abcdef");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let (ts, nonce) = ("1700000000", "1320562132");
    let url_sig = signature::compute(&[TOKEN, ts, nonce]);
    let msg_sig = signature::compute(&[TOKEN, ts, nonce, &encrypt]);
    // The same inputs for the Python peer (bench/wechatpy_callback.py), measured in the
    // same run by scripts/bench.
    let input = serde_json::json!({
        "token": TOKEN, "encoding_aes_key": KEY, "appid": APPID, "timestamp": ts,
        "nonce": nonce, "signature": url_sig, "msg_signature": msg_sig, "body": body,
    });
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/bench-callback-input.json"
    );
    std::fs::write(path, input.to_string()).expect("write the peer's input");
    c.bench_function("safe_mode_2kb_verify_decrypt_parse", |b| {
        b.iter(|| {
            assert!(signature::verify(black_box(&url_sig), &[TOKEN, ts, nonce]));
            let enc = parse_fields(black_box(&body)).unwrap().encrypt.unwrap();
            assert!(signature::verify(&msg_sig, &[TOKEN, ts, nonce, &enc]));
            let plain = crypt.decrypt(&enc, APPID).unwrap();
            black_box(parse_message(&plain).unwrap())
        })
    });
}

/// Where the time goes: each stage of the path above alone, on the same message.
fn stages(c: &mut Criterion) {
    use base64::Engine;
    let crypt = MsgCrypt::new(KEY).unwrap();
    let plain = two_kb_message();
    let encrypt = crypt.encrypt(&plain, APPID, b"0123456789abcdef");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let (ts, nonce) = ("1700000000", "1320562132");
    let mut g = c.benchmark_group("stage");
    g.bench_function("msg_signature_sha1", |b| {
        b.iter(|| signature::compute(black_box(&[TOKEN, ts, nonce, &encrypt])))
    });
    g.bench_function("outer_xml_read", |b| {
        b.iter(|| parse_fields(black_box(&body)).unwrap())
    });
    g.bench_function("base64_crate_decode_not_used", |b| {
        b.iter(|| {
            base64::engine::general_purpose::STANDARD
                .decode(black_box(&encrypt))
                .unwrap()
        })
    });
    g.bench_function("decrypt_whole_base64_aes_checks", |b| {
        b.iter(|| crypt.decrypt(black_box(&encrypt), APPID).unwrap())
    });
    g.bench_function("msg_signature_sha1_aws_lc_not_used", |b| {
        b.iter(|| {
            let mut parts = [TOKEN, ts, nonce, encrypt.as_str()];
            parts.sort_unstable();
            let mut ctx =
                aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
            for p in parts {
                ctx.update(black_box(p.as_bytes()));
            }
            ctx.finish()
        })
    });
    g.bench_function("base64_simd_decode", |b| {
        b.iter(|| {
            base64_simd::STANDARD
                .decode_to_vec(black_box(&encrypt))
                .unwrap()
        })
    });
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&encrypt)
        .unwrap();
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key = lenient.decode(format!("{KEY}=")).unwrap();
    g.bench_function("aes_256_cbc_aws_lc", |b| {
        b.iter(|| {
            let mut buf = raw.clone();
            let k = aws_lc_rs::cipher::DecryptingKey::cbc(
                aws_lc_rs::cipher::UnboundCipherKey::new(&aws_lc_rs::cipher::AES_256, &key)
                    .unwrap(),
            )
            .unwrap();
            let iv: [u8; 16] = key[..16].try_into().unwrap();
            k.decrypt(
                &mut buf,
                aws_lc_rs::cipher::DecryptionContext::Iv128(iv.into()),
            )
            .unwrap()
            .len()
        })
    });
    g.bench_function("utf8_check_simdutf8", |b| {
        b.iter(|| simdutf8::basic::from_utf8(black_box(plain.as_bytes())).is_ok())
    });
    g.bench_function("utf8_check_std_not_used", |b| {
        b.iter(|| std::str::from_utf8(black_box(plain.as_bytes())).is_ok())
    });
    g.bench_function("inner_xml_read", |b| {
        b.iter(|| parse_message(black_box(&plain)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench, stages);
criterion_main!(benches);
