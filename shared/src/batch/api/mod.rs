//! The HTTP side of batches: `POST` ([`create`]), `GET` ([`status`]) and `DELETE`
//! ([`cancel`]) of `/v1/apps/{appid}/batches`, and the fan-out job they queue.

mod cancel;
pub(super) mod create;
mod status;

use super::Batches;
use super::items::{Audience, BatchState, Meta};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::queue::Job;
use crate::store::{ItemKey, Op, attrs};
use serde_json::{Value, json};
use tracing::warn;

/// What `POST` answers for a batch: its id, totals and state.
fn created_body(
    id: &str,
    audience: Audience,
    total: i64,
    duplicates: i64,
    state: BatchState,
) -> Value {
    json!({
        "id": id,
        "total": (audience == Audience::Recipients).then_some(total),
        "audience": audience.as_str(),
        "duplicates": duplicates,
        "state": state.as_str(),
    })
}

/// A failures cursor as `GET` gives them out: the sort key of a failure row, `#` as `-`.
fn is_cursor(c: &str) -> bool {
    c.len() == 12
        && c.bytes().enumerate().all(|(i, b)| {
            if i == 6 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

impl Batches {
    /// The batch's `meta`, for `GET` and `DELETE`: 404 when there is none, or while its
    /// request still writes it.
    async fn shown_meta(&self, appid: &str, id: &str) -> Result<Meta, ApiError> {
        self.meta(appid, id)
            .await?
            .filter(|m| m.state != BatchState::Writing)
            .ok_or_else(|| ApiError::NotFound(format!("batch {id} of app {appid}")))
    }

    /// Queues the fan-out of a batch that just became `running`; when the queue refuses, the
    /// batch is marked `failed` (never started; a retry with the same Idempotency-Key starts
    /// it) and the answer is 503.
    async fn start_fanout(&self, appid: &str, id: &str) -> Result<(), ApiError> {
        let Err(e) = self.queue_fanout(appid, id).await else {
            return Ok(());
        };
        let failed = Op::Update {
            key: ItemKey::batch(appid, id),
            attrs: attrs([
                ("state", BatchState::Failed.into()),
                ("error", e.to_string().into()),
            ]),
        };
        if let Err(store) = self.store.record(&[failed], now_unix()).await {
            warn!(appid, batch = %id, error = %store, "could not mark an unstarted batch failed");
        }
        Err(e)
    }

    async fn queue_fanout(&self, appid: &str, id: &str) -> Result<(), ApiError> {
        let job = Job::BatchFanout {
            appid: appid.to_string(),
            batch_id: id.to_string(),
        };
        self.queue
            .enqueue(&job)
            .await
            .map_err(|e| ApiError::QueueUnavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_failure_sort_keys() {
        assert!(is_cursor("000001-00042"));
        assert!(!is_cursor("000001-0004x"));
    }
}
