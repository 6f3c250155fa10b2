//! WeChat's safe-mode message crypto (the WXBizMsgCrypt protocol, docs/wechat.md#safe-mode-encryption):
//! AES-256-CBC with IV = key[0..16], PKCS#7 padding to 32-byte blocks, and the plaintext
//! `random(16) || msg_len (u32 BE) || msg || appid`.

//!
//! AES-CBC is aws-lc-rs's (already in every binary as rustls's crypto provider; its assembly
//! decrypts a 2 KB message about 3x faster than the `aes` + `cbc` crates here), base64 of the
//! ciphertext is `base64-simd` (4x the `base64` crate on a 2.7 KB `Encrypt`): the callback's
//! CPU time per message (BENCHMARKS.md).

use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use thiserror::Error;

/// WeChat pads to 32 bytes, not to the AES block of 16.
const PAD_BLOCK: usize = 32;

/// EncodingAESKey + "=" carries 2 unused low bits that WeChat's own decoders ignore; a strict
/// decoder would refuse most real keys (docs/wechat.md#the-aes-key).
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The errors of Tencent's WXBizMsgCrypt library, with its codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("the EncodingAESKey is not 43 characters of [A-Za-z0-9]")]
    IllegalAesKey,
    #[error("the message was encrypted for another appid")]
    ValidateAppid,
    #[error("the ciphertext is not valid base64")]
    DecodeBase64,
    #[error("the ciphertext does not decrypt (length is not a whole number of blocks)")]
    DecryptAes,
    #[error("the decrypted message is malformed (padding, length field or encoding)")]
    IllegalBuffer,
}

impl CryptoError {
    /// The WXBizMsgCrypt error code.
    pub fn code(self) -> i32 {
        match self {
            CryptoError::IllegalAesKey => -40004,
            CryptoError::ValidateAppid => -40005,
            CryptoError::DecryptAes => -40007,
            CryptoError::IllegalBuffer => -40008,
            CryptoError::DecodeBase64 => -40010,
        }
    }
}

/// One app's message crypto, built from its EncodingAESKey.
#[derive(Clone)]
pub struct MsgCrypt {
    key: [u8; 32],
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsgCrypt(***)")
    }
}

impl MsgCrypt {
    pub fn new(encoding_aes_key: &str) -> Result<MsgCrypt, CryptoError> {
        if encoding_aes_key.len() != 43
            || !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(CryptoError::IllegalAesKey);
        }
        let bytes = KEY_ENGINE
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::IllegalAesKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::IllegalAesKey)?;
        Ok(MsgCrypt { key })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// The message inside `encrypt` (the base64 `Encrypt` field), checked to be for `appid`.
    pub fn decrypt(&self, encrypt: &str, appid: &str) -> Result<String, CryptoError> {
        let mut buf = base64_simd::STANDARD
            .decode_to_vec(encrypt.trim())
            .map_err(|_| CryptoError::DecodeBase64)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::DecryptAes);
        }
        let key = UnboundCipherKey::new(&AES_256, &self.key)
            .and_then(DecryptingKey::cbc)
            .map_err(|_| CryptoError::DecryptAes)?;
        // No padding mode here: WeChat pads to 32 bytes (PKCS#7 with a 32-byte block), which is
        // checked below, not by the cipher.
        let plain = key
            .decrypt(&mut buf, DecryptionContext::Iv128(self.iv().into()))
            .map_err(|_| CryptoError::DecryptAes)?;
        let pad = *plain.last().ok_or(CryptoError::IllegalBuffer)? as usize;
        if pad == 0
            || pad > PAD_BLOCK
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| b as usize != pad)
        {
            return Err(CryptoError::IllegalBuffer);
        }
        let full = &plain[..plain.len() - pad];
        if full.len() < 20 {
            return Err(CryptoError::IllegalBuffer);
        }
        let msg_len = u32::from_be_bytes([full[16], full[17], full[18], full[19]]) as usize;
        let rest = &full[20..];
        if msg_len > rest.len() {
            return Err(CryptoError::IllegalBuffer);
        }
        if rest[msg_len..] != *appid.as_bytes() {
            return Err(CryptoError::ValidateAppid);
        }
        // The message in place: no second buffer (aws-lc decrypts `buf` in place and `plain`
        // is all of it, so the message is `buf[20..20 + msg_len]`).
        buf.truncate(20 + msg_len);
        buf.drain(..20);
        // simdutf8: the standard library's check was a third of the callback's CPU on a
        // Chinese-text message (BENCHMARKS.md).
        if simdutf8::basic::from_utf8(&buf).is_err() {
            return Err(CryptoError::IllegalBuffer);
        }
        // SAFETY: `buf` is exactly the bytes simdutf8 validated as UTF-8 just above.
        Ok(unsafe { String::from_utf8_unchecked(buf) })
    }

    /// Encrypts `msg` for `appid` with the given 16-byte random prefix (base64 `Encrypt`).
    pub fn encrypt(&self, msg: &str, appid: &str, random16: &[u8; 16]) -> String {
        let mut full = Vec::with_capacity(20 + msg.len() + appid.len() + PAD_BLOCK);
        full.extend_from_slice(random16);
        full.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        full.extend_from_slice(msg.as_bytes());
        full.extend_from_slice(appid.as_bytes());
        let pad = PAD_BLOCK - full.len() % PAD_BLOCK;
        full.extend(std::iter::repeat_n(pad as u8, pad));
        self.encrypt_padded(full)
    }

    /// AES-256-CBC of an already padded plaintext, as base64.
    fn encrypt_padded(&self, mut full: Vec<u8>) -> String {
        // A 32-byte key and a whole number of blocks: the cipher cannot refuse them.
        let encrypted = UnboundCipherKey::new(&AES_256, &self.key)
            .and_then(EncryptingKey::cbc)
            .and_then(|key| {
                key.less_safe_encrypt(&mut full, EncryptionContext::Iv128(self.iv().into()))
            });
        match encrypted {
            Ok(_) => base64_simd::STANDARD.encode_to_string(&full),
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    #[test]
    fn official_mp_reply_example() {
        // docs/wechat.md#worked-example: the MP doc's worked reply.
        let crypt = MsgCrypt::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let encrypt = crypt.encrypt(
            r#"{"demo_resp":"good luck"}"#,
            "wxba5fad812f8e6fb9",
            b"707722b803182950",
        );
        assert_eq!(
            encrypt,
            "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
        );
        assert_eq!(
            crypt.decrypt(&encrypt, "wxba5fad812f8e6fb9").unwrap(),
            r#"{"demo_resp":"good luck"}"#
        );
        assert_eq!(
            crypt.decrypt(&encrypt, "wx0000000000000000"),
            Err(CryptoError::ValidateAppid)
        );
    }

    #[test]
    fn keys_with_trailing_bits_are_accepted() {
        for key in [
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        ] {
            assert!(MsgCrypt::new(key).is_ok(), "{key}");
        }
        assert_eq!(
            MsgCrypt::new("short").unwrap_err(),
            CryptoError::IllegalAesKey
        );
        assert_eq!(
            MsgCrypt::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+").unwrap_err(),
            CryptoError::IllegalAesKey
        );
    }

    /// Encrypts a hand-built plaintext (random, a chosen length field, the rest), padded right.
    fn encrypt_raw(crypt: &MsgCrypt, msg_len: u32, rest: &[u8]) -> String {
        let mut full = vec![b'r'; 16];
        full.extend_from_slice(&msg_len.to_be_bytes());
        full.extend_from_slice(rest);
        let pad = PAD_BLOCK - full.len() % PAD_BLOCK;
        full.extend(std::iter::repeat_n(pad as u8, pad));
        crypt.encrypt_padded(full)
    }

    #[test]
    fn wrong_length_fields_are_illegal_buffers() {
        let crypt = MsgCrypt::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let rest = b"<xml>hi</xml>wx0123456789abcdef";
        assert_eq!(
            crypt
                .decrypt(&encrypt_raw(&crypt, 13, rest), "wx0123456789abcdef")
                .unwrap(),
            "<xml>hi</xml>"
        );
        for bad_len in [14, rest.len() as u32 + 1, u32::MAX] {
            assert_eq!(
                crypt.decrypt(&encrypt_raw(&crypt, bad_len, rest), "wx0123456789abcdef"),
                Err(if bad_len == 14 {
                    CryptoError::ValidateAppid
                } else {
                    CryptoError::IllegalBuffer
                }),
                "{bad_len}"
            );
        }
        // Invalid UTF-8 inside a well-formed envelope.
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend_from_slice(b"wx0123456789abcdef");
        assert_eq!(
            crypt.decrypt(&encrypt_raw(&crypt, 2, &bytes), "wx0123456789abcdef"),
            Err(CryptoError::IllegalBuffer)
        );
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".to_vec(),
            ),
            43,
        )
        .prop_map(|v| String::from_utf8(v).unwrap())
    }

    proptest! {
        #[test]
        fn encrypt_then_decrypt_round_trips(key in key_strategy(), msg in ".{0,600}", random in any::<[u8; 16]>()) {
            let crypt = MsgCrypt::new(&key).unwrap();
            let encrypt = crypt.encrypt(&msg, "wx0123456789abcdef", &random);
            prop_assert_eq!(crypt.decrypt(&encrypt, "wx0123456789abcdef").unwrap(), msg);
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400), flip in any::<usize>()) {
            let crypt = MsgCrypt::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
            let b64 = STANDARD.encode(&input);
            // Random bytes never pass as a message for this appid (it would take a matching pad, length and appid).
            prop_assert!(crypt.decrypt(&b64, "wx0123456789abcdef").is_err());
            // A real ciphertext with one byte changed: an error or (rarely) a different message, never a panic.
            let good = crypt.encrypt("hello", "wx0123456789abcdef", &[7; 16]);
            let mut bytes = STANDARD.decode(&good).unwrap();
            let at = flip % bytes.len();
            bytes[at] ^= 0x5a;
            let _ = crypt.decrypt(&STANDARD.encode(&bytes), "wx0123456789abcdef");
            let _ = crypt.decrypt(&String::from_utf8_lossy(&input), "wx0123456789abcdef");
        }
    }
}
