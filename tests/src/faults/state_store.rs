//! The state store (the table's items, its transactions, the pacer's counter) under a fault
//! plan.

use super::{Call, Faults, with_fault};
use async_trait::async_trait;
use std::sync::Arc;
use wxpush_shared::store::{Attrs, ItemKey, Op, QueryPage, Recorded, StateStore};
use wxpush_shared::token::StoreError;

/// A [`StateStore`] that injects the faults of a [`Faults`] plan.
pub struct FaultyStateStore {
    pub inner: Arc<dyn StateStore>,
    pub faults: Arc<Faults>,
}

impl FaultyStateStore {
    pub fn new(inner: Arc<dyn StateStore>, faults: Arc<Faults>) -> Arc<FaultyStateStore> {
        Arc::new(FaultyStateStore { inner, faults })
    }
}

#[async_trait]
impl StateStore for FaultyStateStore {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        let pks: Vec<&str> = ops.iter().map(|o| o.key().pk.as_str()).collect();
        let has_insert = ops.iter().any(|o| matches!(o, Op::Insert { .. }));
        with_fault(
            &self.faults,
            Call::Record,
            "TransactWriteItems",
            &pks,
            || {
                Some(if has_insert {
                    Recorded::Duplicate
                } else {
                    Recorded::Conflict
                })
            },
            self.inner.record(ops, now),
        )
        .await
    }

    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        with_fault(
            &self.faults,
            Call::Get,
            "GetItem",
            &[key.pk.as_str()],
            || None,
            self.inner.get(key),
        )
        .await
    }

    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        with_fault(
            &self.faults,
            Call::Query,
            "Query",
            &[pk],
            || None,
            self.inner.query(pk),
        )
        .await
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        with_fault(
            &self.faults,
            Call::Query,
            "Query",
            &[pk],
            || None,
            self.inner.query_page(pk, after, limit),
        )
        .await
    }

    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        with_fault(
            &self.faults,
            Call::Take,
            "UpdateItem",
            &[key.pk.as_str()],
            || Some(0),
            self.inner.take(key, want, limit, expires_at),
        )
        .await
    }
}
