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

impl QueryPage {
    /// A page of at most `limit` rows from one read of `limit + 1`, whose `next_after` is set
    /// only when rows follow. (DynamoDB answers a `LastEvaluatedKey` whenever it reaches its
    /// `Limit`, even with nothing after, so the key alone would offer an empty next page. With
    /// fewer rows than asked for, a key means the store stopped at its size limit: kept.)
    pub fn at_most(mut self, limit: usize) -> QueryPage {
        if self.rows.len() > limit {
            self.rows.truncate(limit);
            self.next_after = self.rows.last().map(|(sk, _)| sk.clone());
        }
        self
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize, key: bool) -> QueryPage {
        let rows: Vec<(String, Attrs)> = (0..n).map(|i| (format!("k{i}"), Attrs::new())).collect();
        let next_after = key.then(|| rows.last().map(|r| r.0.clone())).flatten();
        QueryPage { rows, next_after }
    }

    #[test]
    fn a_page_offers_a_next_one_only_when_rows_follow() {
        // DynamoDB reached the Limit (3 + 1): a row follows the page of 3.
        let more = page(4, true).at_most(3);
        assert_eq!(
            (more.rows.len(), more.next_after.as_deref()),
            (3, Some("k2"))
        );
        // Exactly the page: nothing follows, whatever key DynamoDB gave.
        assert_eq!(page(3, false).at_most(3).next_after, None);
        // Fewer rows and a key: the store stopped at its size limit; more may follow.
        assert_eq!(page(2, true).at_most(3).next_after.as_deref(), Some("k1"));
        assert_eq!(page(0, false).at_most(3).rows.len(), 0);
    }
}
