//! `DELETE /v1/apps/{appid}/batches/{id}`: the batch marked `cancelled`; chunks no worker
//! started are cancelled here, started ones by their workers.

use crate::batch::Batches;
use crate::batch::items::{BatchState, CANCELLED, Progress, QUEUED, progress_op};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, ItemKey, Recorded, StoreError, attrs};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use tracing::info;

impl Batches {
    /// `DELETE /v1/apps/{appid}/batches/{id}`: no new sends start; chunks nobody started are
    /// cancelled here, started ones by their workers within a few seconds (sends already in
    /// flight finish and count as what they became). Answers the status.
    pub async fn cancel(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.app(appid).await?;
        let chunks = self.mark_cancelled(appid, id).await?;
        self.cancel_unstarted(appid, id, chunks).await?;
        self.status(appid, id, None).await
    }

    /// Moves a running batch to `cancelled` (a batch in another state stays as it is), by
    /// compare-and-swap, retried a few times against concurrent changes. Answers the
    /// batch's chunk count.
    async fn mark_cancelled(&self, appid: &str, id: &str) -> Result<u32, ApiError> {
        for _ in 0..10 {
            let meta = self.shown_meta(appid, id).await?;
            if meta.state != BatchState::Running {
                return Ok(meta.chunks);
            }
            let op = meta.change_op(
                appid,
                id,
                attrs([
                    ("state", BatchState::Cancelled.into()),
                    ("cancelled_at", Attr::N(now_unix())),
                ]),
            );
            if self.store.record(&[op], now_unix()).await? == Recorded::New {
                info!(appid, batch = %id, "batch cancelled");
                return Ok(meta.chunks);
            }
        }
        Err(ApiError::Conflict {
            code: "in_progress",
            message: format!("batch {id} kept changing while it was being cancelled; retry"),
        })
    }

    /// Chunks no worker has started: every recipient cancelled at once.
    async fn cancel_unstarted(&self, appid: &str, id: &str, chunks: u32) -> Result<(), StoreError> {
        let store = self.store.clone();
        stream::iter(0..chunks)
            .map(|chunk| {
                let store = store.clone();
                async move {
                    let key = ItemKey::batch_progress(appid, id, chunk);
                    let Some(p) = store.get(&key).await?.map(|a| Progress::read(&a)) else {
                        return Ok(());
                    };
                    if p.started || !p.results.contains(&QUEUED) {
                        return Ok(());
                    }
                    let results: Vec<u8> = p
                        .results
                        .iter()
                        .map(|&c| if c == QUEUED { CANCELLED } else { c })
                        .collect();
                    // A worker that started it meanwhile wins; it cancels the rest itself.
                    store
                        .record(
                            &[progress_op(&key, &results, p.version, false, now_unix())],
                            now_unix(),
                        )
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<Result<(), StoreError>>>()
            .await
            .into_iter()
            .collect::<Result<(), StoreError>>()
    }
}
