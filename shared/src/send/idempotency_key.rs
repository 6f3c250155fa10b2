//! The `Idempotency-Key` as the API takes it, and the claim item it names: a key belongs to
//! its caller's principal, and the body's hash tells a retry from another request.

use crate::error::ApiError;
use crate::store::ItemKey;
use sha1::{Digest, Sha1};

/// An `Idempotency-Key` as the API takes them (messages and batches): 1-128 printable ASCII
/// characters without spaces.
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Validation {
            field: "Idempotency-Key".into(),
            message: "must be 1-128 printable ASCII characters without spaces".into(),
        });
    }
    Ok(())
}

/// The claim item of `key` sent by `caller`: a key belongs to its caller's principal, so the
/// same key from another service is another request — but the same service's retry from
/// another instance or after a credential refresh is the same request (see [`principal`]).
pub fn claim_key(appid: &str, caller: &str, key: &str) -> ItemKey {
    ItemKey::idempotency(
        appid,
        &format!("{}#{key}", &body_hash(principal(caller).as_bytes())[..16]),
    )
}

/// The stable principal of a caller ARN: an assumed role's session name (an instance or
/// task id, a timestamp, anything the caller's SDK chose) is dropped, so
/// `arn:aws:sts::1:assumed-role/order-service/i-1` and `.../order-service/i-2` are one
/// principal; every other ARN is its own.
pub fn principal(caller: &str) -> &str {
    match caller.split_once(":assumed-role/") {
        Some((_, rest)) => match rest.find('/') {
            Some(slash) => &caller[..caller.len() - rest.len() + slash],
            None => caller,
        },
        None => caller,
    }
}

pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha1::digest(body))
}

#[cfg(test)]
mod tests {
    use super::principal;

    #[test]
    fn sessions_of_one_role_are_one_principal() {
        let a = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-0abc";
        let b = "arn:aws-cn:sts::123456789012:assumed-role/order-service/1732550000";
        assert_eq!(
            principal(a),
            "arn:aws-cn:sts::123456789012:assumed-role/order-service"
        );
        assert_eq!(principal(a), principal(b));
        let user = "arn:aws:iam::123456789012:user/ops";
        assert_eq!(principal(user), user);
        assert_eq!(principal("local:bearer-key"), "local:bearer-key");
        assert_ne!(
            principal("arn:aws:sts::1:assumed-role/billing/i-1"),
            principal("arn:aws:sts::1:assumed-role/order/i-1")
        );
    }
}
