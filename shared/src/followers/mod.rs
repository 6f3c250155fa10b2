//! The official account follower sync (`POST/GET /v1/apps/{appid}/followers/sync`).
//!
//! A run walks `user/get` (10 000 openids a page, `next_openid`) and looks every follower up
//! with `user/info/batchget` (100 a call), storing each account and its unionid mapping. It
//! then sweeps the stored accounts the pages did not list and asks WeChat about them: those
//! who left are marked unsubscribed.
//!
//! It survives any Lambda limit: the run's cursor and counters live in one store item written
//! only with `PutIfVersion`, and a worker checkpoints after every
//! [`SyncConfig::checkpoint_every`] followers. A worker holds the run with a lease; near its
//! deadline it releases it and queues a continuation ([`Job::FollowerSync`]). A crashed worker
//! loses nothing but the followers since its last checkpoint (written again, idempotently).
//! One run per app at a time: a second start while one runs answers 409.
//!
//! The API side starts a run and shows its progress (`start.rs`); the worker runs it
//! (`run.rs`), through the pages phase (`pages.rs`), then the sweep phase (`sweep.rs`), each
//! looking followers up and storing them (`lookup.rs`) with the sync's rules for WeChat
//! calls (`wechat_call.rs`). The run's stored record is a [`SyncState`] (`sync_state.rs`).
//!
//! [`Job::FollowerSync`]: crate::queue::Job::FollowerSync

mod config;
mod lookup;
mod pages;
mod run;
mod start;
mod sweep;
mod sync_state;
mod wechat_call;

pub use config::SyncConfig;
pub use run::{RunEnd, RunError};
pub use sync_state::{Phase, RunState, SyncState};

use crate::clock::now_unix;
use crate::queue::JobQueue;
use crate::store::{ItemKey, Op, Recorded, StateStore, StoreError};
use crate::token::TokenManager;
use std::sync::Arc;

/// Openids per `user/get` page (docs/wechat.md#follower-list).
pub const FOLLOWERS_PER_PAGE: usize = 10_000;
/// Openids per `user/info/batchget` call (docs/wechat.md#batch-user-info).
pub const BATCHGET_MAX: usize = 100;

/// Runs follower syncs: [`FollowerSync::start`] and [`FollowerSync::progress`] for the API,
/// [`FollowerSync::run`] for the worker.
pub struct FollowerSync {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    config: SyncConfig,
}

impl FollowerSync {
    pub fn new(
        tokens: Arc<TokenManager>,
        store: Arc<dyn StateStore>,
        queue: Arc<dyn JobQueue>,
        config: SyncConfig,
    ) -> FollowerSync {
        FollowerSync {
            tokens,
            store,
            queue,
            config,
        }
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub async fn load(&self, appid: &str) -> Result<Option<SyncState>, StoreError> {
        let item = self.store.get(&ItemKey::follower_sync(appid)).await?;
        Ok(item.as_ref().and_then(SyncState::from_attrs))
    }

    /// Writes `st` as the next version; `false` when someone else wrote it first.
    async fn save(&self, appid: &str, st: &mut SyncState) -> Result<bool, StoreError> {
        let expected = (st.version > 0).then_some(st.version);
        let mut next = st.clone();
        next.version += 1;
        next.updated_at = now_unix();
        let op = Op::PutIfVersion {
            key: ItemKey::follower_sync(appid),
            attrs: next.to_attrs(appid),
            expected,
        };
        match self.store.record(&[op], next.updated_at).await? {
            Recorded::New => {
                *st = next;
                Ok(true)
            }
            Recorded::Duplicate | Recorded::Conflict => Ok(false),
        }
    }
}
