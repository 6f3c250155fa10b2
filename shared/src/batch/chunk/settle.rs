//! Ending a chunk for good ([`Settle`]): each queued recipient becomes what its claim says
//! (sent, or unknown when a send may have gone out), else cancelled or failed (`not_sent`).

use super::run::ChunkRun;
use crate::batch::items::{CANCELLED, NOT_SENT, Progress, QUEUED};
use crate::batch::recipient::Done;
use crate::batch::{BatchJobError, Batches};
use crate::error::ApiError;
use crate::store::ItemKey;
use http::StatusCode;
use tracing::info;

/// What the unsent recipients of a chunk become when it stops for good.
#[derive(Clone, Debug)]
pub(in crate::batch) enum Settle {
    Cancel,
    GiveUp(String),
}

impl Settle {
    /// A recipient no send started for.
    fn unsent(&self) -> Done {
        match self {
            Settle::Cancel => Done {
                outcome: CANCELLED,
                message_id: None,
                detail: None,
            },
            Settle::GiveUp(why) => Done {
                outcome: NOT_SENT,
                message_id: None,
                detail: Some(
                    ApiError::WeChat {
                        code: "not_sent",
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        message: why.clone(),
                        errcode: None,
                    }
                    .body(),
                ),
            },
        }
    }
}

impl Batches {
    /// Ends a chunk for good: each queued recipient becomes what its claim says (sent, or
    /// unknown when a send may have gone out), else cancelled or failed.
    pub(in crate::batch) async fn settle(
        &self,
        appid: &str,
        id: &str,
        chunk: u32,
        recipients: &[String],
        mode: Settle,
    ) -> Result<(), BatchJobError> {
        let key = ItemKey::batch_progress(appid, id, chunk);
        let stored = self
            .with_retries(|| self.store.get(&key))
            .await?
            .map(|a| Progress::read(&a))
            .ok_or_else(|| BatchJobError::ChunkGone {
                id: id.to_string(),
                chunk,
            })?;
        let mut run = ChunkRun::new(key, appid, id, chunk, &stored);
        for (i, recipient) in recipients.iter().enumerate() {
            if run.local[i] != QUEUED {
                continue;
            }
            // A started chunk may have claims: what they say wins.
            let claim = if stored.started {
                let claim_key = ItemKey::batch_claim(appid, id, recipient);
                self.with_retries(|| self.store.get(&claim_key)).await?
            } else {
                None
            };
            let done = claim
                .as_ref()
                .and_then(Done::of_claim)
                .unwrap_or_else(|| mode.unsent());
            run.record(i, recipient, done);
        }
        self.flush(&mut run).await?;
        info!(appid, batch = %id, chunk, mode = ?mode, "chunk settled");
        Ok(())
    }
}
