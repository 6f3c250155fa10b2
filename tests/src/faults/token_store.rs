//! The token store (tokens and their refresh leases) under a fault plan.

use super::{Call, Faults, with_fault};
use async_trait::async_trait;
use std::sync::Arc;
use wxpush_shared::token::{RefreshFailure, StoreError, TokenRecord, TokenStore};

/// A [`TokenStore`] that injects the faults of a [`Faults`] plan (pk prefix: the appid).
pub struct FaultyTokenStore {
    pub inner: Arc<dyn TokenStore>,
    pub faults: Arc<Faults>,
}

impl FaultyTokenStore {
    pub fn new(inner: Arc<dyn TokenStore>, faults: Arc<Faults>) -> Arc<FaultyTokenStore> {
        Arc::new(FaultyTokenStore { inner, faults })
    }
}

#[async_trait]
impl TokenStore for FaultyTokenStore {
    async fn load(&self, appid: &str) -> Result<Option<TokenRecord>, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenLoad,
            "GetItem",
            &[appid],
            || None,
            self.inner.load(appid),
        )
        .await
    }

    async fn try_acquire_lease(
        &self,
        appid: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenLease,
            "UpdateItem (lease)",
            &[appid],
            || Some(None),
            self.inner.try_acquire_lease(appid, owner, now_ms, until_ms),
        )
        .await
    }

    async fn store_token(
        &self,
        appid: &str,
        owner: &str,
        token: &wxpush_shared::Secret,
        expires_at: i64,
        version: u64,
    ) -> Result<bool, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenStore,
            "UpdateItem (store token)",
            &[appid],
            || Some(false),
            self.inner
                .store_token(appid, owner, token, expires_at, version),
        )
        .await
    }

    async fn release_lease(
        &self,
        appid: &str,
        owner: &str,
        failure: Option<&RefreshFailure>,
        hold_until_ms: i64,
    ) -> Result<(), StoreError> {
        with_fault(
            &self.faults,
            Call::TokenRelease,
            "UpdateItem (release lease)",
            &[appid],
            || Some(()),
            self.inner
                .release_lease(appid, owner, failure, hold_until_ms),
        )
        .await
    }

    async fn invalidate(&self, appid: &str, version: u64) -> Result<bool, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenInvalidate,
            "UpdateItem (invalidate)",
            &[appid],
            || Some(false),
            self.inner.invalidate(appid, version),
        )
        .await
    }
}
