//! Batches: one message to many recipients (`POST/GET/DELETE /v1/apps/{appid}/batches`),
//! sent by the queue's workers with the code of single sends.
//!
//! `POST` validates and records the batch and its chunks, queues one
//! [`Job::BatchFanout`](crate::queue::Job::BatchFanout) and answers `202`. The fan-out queues a
//! [`Job::BatchChunk`](crate::queue::Job::BatchChunk) per chunk (`SendMessageBatch`, ten a
//! call); for `"audience": "followers"` it first writes the chunks page by page from the
//! follower directory. Chunk jobs send with a shared per-app pace ([`pace::Pacer`]);
//! 45009/45011 pause the whole batch (the jobs are put back with a delay, burning no
//! retries); `DELETE` cancels what is not sent yet.
//!
//! The steps, a module each:
//! - `request/` — the body of `POST`, read and checked;
//! - `api/` — `POST` (`create.rs`), `GET` (`status.rs`), `DELETE` (`cancel.rs`);
//! - `fanout.rs` — the chunk jobs queued (and the followers' chunks written);
//! - `chunk/` — one chunk's run: its sends, flushes, pauses, put-backs and settling;
//! - `recipient.rs` — one recipient's send under its claim, and its outcome;
//! - `items/` — what is stored for a batch, and its [`BatchState`];
//! - `config.rs`, `pace.rs`, `sweep.rs` — settings, the shared send rate, the repair sweep;
//! - `error.rs` — [`BatchJobError`], why a batch job failed.

mod api;
mod chunk;
mod config;
mod error;
mod fanout;
mod items;
pub mod pace;
mod recipient;
mod request;
pub mod sweep;

pub use api::create::idempotency_item;
pub use config::{BatchConfig, BatchConfigError};
pub use error::BatchJobError;
pub use items::BatchState;

use crate::app::AppConfig;
use crate::error::ApiError;
use crate::queue::JobQueue;
use crate::send::service::Sender;
use crate::store::{ItemKey, StateStore, StoreError};
use items::Meta;
use pace::Pacer;
use request::parse_batch_request;
use std::sync::Arc;

/// Recipients one batch may list.
pub const MAX_RECIPIENTS: usize = 100_000;
/// Invalid recipients listed in a `422` at most (the count says how many there were).
pub const MAX_LISTED_INVALID: usize = 100;
/// A batch's message at most, as JSON (it is stored in one item; DynamoDB's limit is 400 KB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Failures per `GET` page.
pub const FAILURES_PER_PAGE: usize = 100;

/// Batches: the API side (`create`, `status`, `cancel`) and the worker side (`fanout`,
/// `run_chunk`, `sweep`).
pub struct Batches {
    sender: Arc<Sender>,
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    pacer: Pacer,
    config: BatchConfig,
}

impl Batches {
    pub fn new(
        sender: Arc<Sender>,
        store: Arc<dyn StateStore>,
        queue: Arc<dyn JobQueue>,
        config: BatchConfig,
    ) -> Batches {
        Batches {
            sender,
            pacer: Pacer::new(store.clone()),
            store,
            queue,
            config,
        }
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ApiError> {
        Ok(self.sender.tokens().secrets().app(appid).await?)
    }

    /// The batch's `meta` item, read (`None`: no such batch).
    async fn meta(&self, appid: &str, id: &str) -> Result<Option<Meta>, StoreError> {
        Ok(self
            .store
            .get(&ItemKey::batch(appid, id))
            .await?
            .and_then(|a| Meta::read(&a)))
    }
}

/// A batch id as wxpush issues them: `bat_` and 32 lowercase hex digits.
pub fn is_batch_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("bat_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// What [`Batches::create`] reads from a body before anything is recorded: the request
/// checked (the message as a single send, every recipient), as (recipients, duplicates).
/// Public for the body-memory benchmark (`tests/src/bin/bench_batch_body.rs`).
pub fn read_batch_body(body: &[u8]) -> Result<(usize, usize), ApiError> {
    parse_batch_request(body).map(|r| (r.recipients.len(), r.duplicates))
}
