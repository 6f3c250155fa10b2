//! A webhook receiver's check of `Wxpush-Signature`, written from docs/webhook-signatures.md (not from
//! wxpush's code): `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, `t`
//! within 300 s of the receiver's clock.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// `Ok(t)` when `header` signs `body` with `secret` and `t` is within 300 s of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<i64, String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|e| format!("v1: {e}"))?),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| format!("no t in {header:?}"))?;
    if (now - t).abs() > 300 {
        return Err(format!("t is {} s off", now - t));
    }
    let signed = |sig: &Vec<u8>| {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    };
    if v1.iter().any(signed) {
        Ok(t)
    } else {
        Err(format!("no v1 of {header:?} matches"))
    }
}
