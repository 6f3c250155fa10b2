//! WeChat's callback signatures: `sha1_hex(sort(parts).concat())` (docs/wechat.md#url-verification, #message-signature).

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Lowercase hex SHA-1 of the byte-wise sorted, concatenated parts.
pub fn compute(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether `given` is the signature of `parts`, compared in constant time. WeChat sends
/// lowercase hex; anything else does not match.
pub fn verify(given: &str, parts: &[&str]) -> bool {
    let expected = compute(parts);
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_examples() {
        assert_eq!(
            compute(&["AAAAA", "1714036504", "1514711492"]),
            "f464b24fc39322e44b38aa78f5edd27bd1441696"
        );
        assert!(verify(
            "899cf89e464efb63f54ddac96b0a0a235f53aa78",
            &["AAAAA", "1714037059", "486452656"]
        ));
        assert!(!verify(
            "899CF89E464EFB63F54DDAC96B0A0A235F53AA78",
            &["AAAAA", "1714037059", "486452656"]
        ));
        assert!(!verify("", &["AAAAA", "1714037059", "486452656"]));
    }
}
