//! The access_token central control (中控): one refresher at a time across every Lambda
//! instance, everyone else reads.
//!
//! - [`TokenStore`]: the durable record per app (token, `expires_at`, version, the refresh
//!   lease, the last refresh failure). [`DynamoTokenStore`] on AWS, [`EmbeddedTokenStore`]
//!   (redb) locally. Every write is conditional.
//! - [`TokenManager`]: what callers use. In-memory cache per instance, the lease protocol,
//!   compare-and-invalidate, and the scheduled refresh.

mod dynamo;
mod embedded;
mod manager;

pub use dynamo::DynamoTokenStore;
pub use embedded::EmbeddedTokenStore;
pub use manager::{AccessToken, RefreshOutcome, TokenManager, TokenPolicy};

pub use crate::store::StoreError;

use crate::app::Secret;
use crate::secrets::ConfigError;
use crate::wechat::WeChatCallError;
use async_trait::async_trait;
use thiserror::Error;

/// The stored state of one app's token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRecord {
    pub access_token: Option<Secret>,
    /// Unix seconds; 0 when there is no usable token (never fetched, or invalidated).
    pub expires_at: i64,
    /// Incremented by every stored token; compare-and-invalidate names the version that failed.
    pub version: u64,
    pub lease_owner: Option<String>,
    /// Unix milliseconds until which `lease_owner` alone may refresh.
    pub lease_until_ms: i64,
    pub last_failure: Option<RefreshFailure>,
}

/// Why the last refresh failed (never a secret: WeChat's errcode and our message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFailure {
    pub errcode: Option<i64>,
    pub message: String,
    pub at_ms: i64,
}

impl TokenRecord {
    /// The token if it is still accepted by WeChat at `now` (unix seconds).
    pub fn valid_token(&self, now: i64) -> Option<&Secret> {
        self.access_token.as_ref().filter(|_| self.expires_at > now)
    }
    pub fn lease_held_at(&self, now_ms: i64) -> bool {
        self.lease_owner.is_some() && self.lease_until_ms >= now_ms
    }
}

/// Durable token state. Implementations make each method one atomic, conditional operation.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// A strongly consistent read.
    async fn load(&self, appid: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Takes the refresh lease if nobody holds an unexpired one, clearing the last failure.
    /// `Some(record)` (as it is now) when taken, `None` when someone else holds it.
    async fn try_acquire_lease(
        &self,
        appid: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Stores a token as `version`, clears the lease and the last failure — only while
    /// `owner` still holds the lease. `false` when the lease was lost (nothing written).
    async fn store_token(
        &self,
        appid: &str,
        owner: &str,
        token: &Secret,
        expires_at: i64,
        version: u64,
    ) -> Result<bool, StoreError>;
    /// Gives the lease up. With a failure, records it and keeps the lease until `hold_until_ms`
    /// so that other instances back off instead of calling WeChat again at once.
    async fn release_lease(
        &self,
        appid: &str,
        owner: &str,
        failure: Option<&RefreshFailure>,
        hold_until_ms: i64,
    ) -> Result<(), StoreError>;
    /// Compare-and-invalidate: marks the token unusable only if the stored version is still
    /// `version`. Returns whether it did.
    async fn invalidate(&self, appid: &str, version: u64) -> Result<bool, StoreError>;
}

#[derive(Debug, Error)]
pub enum TokenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not get an access_token for app {appid} from WeChat: {source}")]
    WeChat {
        appid: String,
        source: WeChatCallError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the access_token of app {appid} is being refreshed by another instance and no valid token is stored yet"
    )]
    RefreshInProgress { appid: String },
    #[error(
        "no valid access_token for app {appid}: the last refresh failed ({message}); retrying after a short back-off"
    )]
    RecentlyFailed {
        appid: String,
        errcode: Option<i64>,
        message: String,
    },
}
