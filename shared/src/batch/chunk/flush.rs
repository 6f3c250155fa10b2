//! Writing a chunk run's outcomes: merged with what another run of the chunk may have
//! written, each progress change by compare-and-swap in one transaction with the failure
//! rows it adds or removes, so the counts and the failures always agree.

use super::run::{ChunkRun, ROWS_PER_FLUSH};
use crate::batch::items::{Progress, count_settled, merge, progress_op};
use crate::batch::{BatchJobError, Batches};
use crate::clock::now_unix;
use crate::store::{Recorded, StoreError};
use std::time::Duration;
use tracing::warn;

impl Batches {
    /// Writes the chunk's outcomes so far, merged with what another run of the chunk may
    /// have written: each progress change by compare-and-swap, in one transaction with the
    /// failure rows it adds or removes, so the counts and the failures always agree.
    pub(in crate::batch) async fn flush(&self, run: &mut ChunkRun) -> Result<(), BatchJobError> {
        let mut failures = 0u32;
        // Bounded: each turn commits up to ROWS_PER_FLUSH changes, loses a race (another
        // writer moved forward), or fails (8 failures end it).
        for _ in 0..(run.local.len() / ROWS_PER_FLUSH + 64) {
            let stored = self
                .with_retries(|| self.store.get(&run.key))
                .await?
                .map(|a| Progress::read(&a))
                .ok_or_else(|| BatchJobError::ChunkGone {
                    id: run.id.clone(),
                    chunk: run.chunk,
                })?;
            let merged = merge(&stored.results, &run.local);
            let (next, mut ops, all) = run.step(&stored, &merged);
            ops.push(progress_op(
                &run.key,
                &next,
                stored.version,
                true,
                run.active_until,
            ));
            match self.store.record(&ops, now_unix()).await {
                Ok(Recorded::New) => {
                    count_settled(&stored.results, &next);
                    run.started = true;
                    if all {
                        run.local = merged;
                        run.rows.clear();
                        run.unflushed = 0;
                        return Ok(());
                    }
                }
                Ok(_) => continue,
                Err(e) => {
                    failures += 1;
                    warn!(appid = %run.appid, batch = %run.id, chunk = run.chunk, failures, error = %e, "recording chunk progress failed; retrying");
                    if failures >= 8 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50 << failures.min(5))).await;
                }
            }
        }
        Err(BatchJobError::ProgressNotRecorded {
            id: run.id.clone(),
            chunk: run.chunk,
        })
    }

    /// A store read, tried up to four times, waiting 50, 100, 200 and 400 ms after each
    /// failure; the last error when every try failed.
    pub(in crate::batch) async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0u32;
        loop {
            let result = call().await;
            if result.is_ok() {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            attempt += 1;
            if attempt == 4 {
                return result;
            }
        }
    }
}
