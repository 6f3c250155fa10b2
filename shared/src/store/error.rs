//! [`StoreError`]: a failed read or write of a store (the state table or the token table).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend refused or failed the operation (DynamoDB, redb).
    #[error("store {op} failed: {message}")]
    Backend { op: &'static str, message: String },
    /// An item is there but cannot be read back (`item` names it: an appid, a key).
    #[error("store holds an unreadable item {item}: {message}")]
    Corrupt { item: String, message: String },
}

/// A [`StoreError::Backend`] for `op`.
pub(crate) fn backend(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        op,
        message: e.to_string(),
    }
}
