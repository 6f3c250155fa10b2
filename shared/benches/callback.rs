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

criterion_group!(benches, bench);
criterion_main!(benches);
