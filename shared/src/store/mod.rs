//! [`StateStore`]: wxpush's state in one table — DynamoDB (`TransactWriteItems` for a set of
//! operations that must succeed together) or redb locally (one write transaction).

mod dynamo;
mod dynamo_writes;
mod embedded;
mod error;
mod item;
mod types;

pub use dynamo::DynamoStateStore;
pub use embedded::EmbeddedStateStore;
pub use error::StoreError;
pub use item::ItemRead;
pub use types::*;

pub(crate) use error::backend;

use async_trait::async_trait;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Everything was written (an event and all its effects, say).
    New,
    /// An `Insert` found its item: a retry of something already recorded; nothing changed.
    Duplicate,
    /// A `PutIfVersion` found another version: someone else changed the item; nothing changed.
    Conflict,
}

/// One page of a [`StateStore::query_page`].
#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    pub rows: Vec<(String, Attrs)>,
    /// The sort key to continue after, when there may be more.
    pub next_after: Option<String>,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// Applies `ops` all together. If an `Insert` finds its item already there, nothing is
    /// written and the result is `Duplicate`; a `SetIfNewer` that finds a newer item is left
    /// out and the rest still applies.
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError>;
    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError>;
    /// Every item under `pk`, by sort key.
    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError>;
    /// At most `limit` items under `pk` whose sort key comes after `after`, by sort key.
    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError>;
    /// Adds up to `want` to the number attribute `used` of `key` without passing `limit`,
    /// atomically across every caller, and answers how much was added (0 when `limit` is
    /// reached). Not a transaction: a hot counter (the batch pacer's) must not conflict
    /// with itself. `expires_at` is the item's TTL.
    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError>;
}
