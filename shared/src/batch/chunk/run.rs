//! [`ChunkRun`]: a chunk being worked on, its outcomes so far and the failure rows not
//! written yet.

use crate::batch::items::{Progress, failure_row, has_failure_row};
use crate::batch::recipient::Done;
use crate::clock::now_unix;
use crate::store::{Attrs, ItemKey, Op};
use std::collections::HashMap;

/// Failure rows written with one progress change at most (a transaction holds 100 items).
pub(super) const ROWS_PER_FLUSH: usize = 90;

/// A chunk being worked on: its outcomes so far and the failure rows not written yet.
pub(in crate::batch) struct ChunkRun {
    pub key: ItemKey,
    pub appid: String,
    pub id: String,
    pub chunk: u32,
    pub local: Vec<u8>,
    /// The failure row of each recipient this run failed (or found unknown, or gave up),
    /// written in the same transaction as the progress that counts it.
    pub rows: HashMap<usize, Attrs>,
    pub started: bool,
    pub unflushed: usize,
    /// Unix seconds until which this run may still be working (written with each flush).
    pub active_until: i64,
}

impl ChunkRun {
    pub fn new(key: ItemKey, appid: &str, id: &str, chunk: u32, progress: &Progress) -> ChunkRun {
        ChunkRun {
            key,
            appid: appid.to_string(),
            id: id.to_string(),
            chunk,
            local: progress.results.clone(),
            rows: Default::default(),
            started: progress.started,
            unflushed: 0,
            active_until: now_unix(),
        }
    }

    pub fn record(&mut self, index: usize, recipient: &str, done: Done) {
        self.local[index] = done.outcome;
        self.unflushed += 1;
        if has_failure_row(done.outcome) {
            self.rows.insert(index, failure_row(recipient, done));
        }
    }

    /// The writes that move the stored progress `stored` towards `merged` by at most
    /// [`ROWS_PER_FLUSH`] positions: the new results, the failure rows that go with them (a
    /// real outcome's row replaces a give-up's; a give-up replaced by a send loses its row),
    /// and whether that was every change.
    pub fn step(&self, stored: &Progress, merged: &[u8]) -> (Vec<u8>, Vec<Op>, bool) {
        let mut next = stored.results.clone();
        let mut ops = Vec::new();
        let mut changed = 0;
        for i in 0..merged.len() {
            if merged[i] == stored.results[i] {
                continue;
            }
            if changed == ROWS_PER_FLUSH {
                return (next, ops, false);
            }
            changed += 1;
            next[i] = merged[i];
            let key = ItemKey::batch_failure(&self.appid, &self.id, self.chunk, i);
            if has_failure_row(merged[i])
                && let Some(row) = self.rows.get(&i).filter(|_| merged[i] == self.local[i])
            {
                ops.push(Op::Set {
                    key,
                    attrs: row.clone(),
                });
            } else if has_failure_row(stored.results[i]) && !has_failure_row(merged[i]) {
                ops.push(Op::Delete { key });
            }
        }
        (next, ops, true)
    }

    /// Recipients still queued.
    pub fn left(&self) -> usize {
        self.local
            .iter()
            .filter(|&&c| c == crate::batch::items::QUEUED)
            .count()
    }
}
