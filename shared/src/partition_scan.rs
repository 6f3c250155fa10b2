//! [`PartitionScan`]: what the scheduled sweeps (the outbox's, the follow-ups') share —
//! reading the rows under one partition key a bounded number at a time, each run going on
//! from where the last one stopped.

use crate::store::{Attrs, ItemKey, ItemRead, Op, StateStore, StoreError, attrs};

/// The rows of one partition, read over runs: at most `max_rows` a run, from the sort key
/// its cursor item holds (`after`), so a long partition is covered over a few runs.
pub(crate) struct PartitionScan<'a> {
    pub store: &'a dyn StateStore,
    /// The partition key of the rows.
    pub pk: String,
    /// The item that holds where the next run goes on.
    pub cursor: ItemKey,
    pub max_rows: usize,
}

impl PartitionScan<'_> {
    /// Where the last run stopped (`None`: at the start).
    pub async fn start(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&self.cursor)
            .await?
            .and_then(|c| c.string("after")))
    }

    /// Hands every row after `after` to `row`, at most `max_rows` of them (in pages of up
    /// to 1 000), and answers where the next run goes on (`None`: from the start).
    pub async fn read(
        &self,
        mut after: Option<String>,
        mut row: impl FnMut(String, Attrs),
    ) -> Result<Option<String>, StoreError> {
        let mut read = 0;
        // Bounded: `max_rows` rows at most; the next run goes on from `after`.
        loop {
            let limit = (self.max_rows - read.min(self.max_rows)).clamp(1, 1_000);
            // One row more than the run takes, so a run that ends the partition says so
            // (else the next run would start after the last row and find nothing).
            let page = self
                .store
                .query_page(&self.pk, after.as_deref(), limit + 1)
                .await?
                .at_most(limit);
            read += page.rows.len().max(1);
            for (sk, attrs) in page.rows {
                row(sk, attrs);
            }
            after = page.next_after;
            if after.is_none() || read >= self.max_rows {
                return Ok(after);
            }
        }
    }

    /// Stores where the next run goes on.
    pub async fn save(&self, after: Option<String>, now: i64) -> Result<(), StoreError> {
        let cursor = match after {
            Some(sk) => attrs([("after", sk.into())]),
            None => Attrs::new(),
        };
        let op = Op::Set {
            key: self.cursor.clone(),
            attrs: cursor,
        };
        self.store.record(&[op], now).await.map(|_| ())
    }
}
