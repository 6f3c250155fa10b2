//! DynamoDB's key size limits, enforced on every call: moto checks them only when it puts an
//! item (not on `GetItem`, `UpdateItem` or a transaction's updates), DynamoDB on every
//! request. [`KeyLimitStore`] refuses a call naming a key over a limit as DynamoDB would (a
//! `ValidationException`) and keeps the longest keys it saw.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use wxpush_shared::store::{Attrs, ItemKey, Op, QueryPage, Recorded, StateStore};
use wxpush_shared::token::StoreError;

/// DynamoDB's largest partition key value, in bytes.
pub const MAX_PARTITION_KEY: usize = 2048;
/// DynamoDB's largest sort key value, in bytes.
pub const MAX_SORT_KEY: usize = 1024;

/// A [`StateStore`] that refuses keys DynamoDB would refuse, before the inner store sees them.
pub struct KeyLimitStore {
    pub inner: Arc<dyn StateStore>,
    /// Every key written (`record`), in order.
    written: Mutex<Vec<ItemKey>>,
    /// How many calls were refused.
    refused: Mutex<Vec<String>>,
}

impl KeyLimitStore {
    pub fn new(inner: Arc<dyn StateStore>) -> Arc<KeyLimitStore> {
        Arc::new(KeyLimitStore {
            inner,
            written: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    /// Every key written so far.
    pub fn written(&self) -> Vec<ItemKey> {
        self.written.lock().unwrap().clone()
    }

    /// What was refused so far (the operation and the key's sizes).
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    fn check(&self, op: &'static str, pk: &str, sk: Option<&str>) -> Result<(), StoreError> {
        let sk_len = sk.map_or(0, str::len);
        if pk.len() <= MAX_PARTITION_KEY && sk_len <= MAX_SORT_KEY {
            return Ok(());
        }
        let message = format!(
            "ValidationException: key too large (partition key {} bytes, sort key {sk_len})",
            pk.len()
        );
        self.refused
            .lock()
            .unwrap()
            .push(format!("{op}: {message}"));
        Err(StoreError::Backend { op, message })
    }
}

#[async_trait]
impl StateStore for KeyLimitStore {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        for op in ops {
            let key = op.key();
            self.check("TransactWriteItems", &key.pk, Some(&key.sk))?;
        }
        let recorded = self.inner.record(ops, now).await?;
        self.written
            .lock()
            .unwrap()
            .extend(ops.iter().map(|o| o.key().clone()));
        Ok(recorded)
    }

    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        self.check("GetItem", &key.pk, Some(&key.sk))?;
        self.inner.get(key).await
    }

    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        self.check("Query", pk, None)?;
        self.inner.query(pk).await
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        self.check("Query", pk, after)?;
        self.inner.query_page(pk, after, limit).await
    }

    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        self.check("UpdateItem", &key.pk, Some(&key.sk))?;
        self.inner.take(key, want, limit, expires_at).await
    }
}
