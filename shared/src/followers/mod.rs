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

mod state;

pub use state::{Phase, RunState, SyncState};

use crate::app::AppKind;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::queue::{Job, JobQueue, QueueError};
use crate::store::StoreError;
use crate::store::{Attr, ItemKey, Op, QueryPage, Recorded, StateStore, attrs};
use crate::token::TokenManager;
use crate::wechat::{ErrorClass, UserInfo, WeChatCallError};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{info, warn};

/// Openids per `user/get` page (facts.md §5.1).
pub const FOLLOWERS_PER_PAGE: usize = 10_000;
/// Openids per `user/info/batchget` call (facts.md §5.3).
pub const BATCHGET_MAX: usize = 100;
/// Operations per store transaction (DynamoDB's `TransactWriteItems` limit).
const OPS_PER_WRITE: usize = 100;
/// Chunks one invocation works through at most (a bound; the deadline usually ends it first).
const MAX_CHUNKS_PER_RUN: usize = 10_000;

#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// `batchget` calls in flight at once.
    pub lookup_concurrency: usize,
    /// Followers looked up and stored between two checkpoints.
    pub checkpoint_every: usize,
    /// Stored accounts checked per sweep step.
    pub sweep_page: usize,
    /// Attempts per WeChat call when it fails with -1, 5xx or a timeout.
    pub attempts: u32,
    /// First backoff between attempts (doubled each time, plus jitter).
    pub backoff: Duration,
    /// How long a worker holds the run without checkpointing.
    pub lease: Duration,
    /// A running sync not written for this long (its worker died) may be resumed by a start.
    pub stale_after: Duration,
    /// A worker stops, checkpoints and queues a continuation when less than this is left.
    pub reserve: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            lookup_concurrency: 5,
            checkpoint_every: 2_000,
            sweep_page: 5_000,
            attempts: 4,
            backoff: Duration::from_millis(200),
            lease: Duration::from_secs(300),
            stale_after: Duration::from_secs(1_200),
            reserve: Duration::from_secs(90),
        }
    }
}

/// How one worker invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The run finished.
    Done,
    /// Out of time: checkpointed and queued a continuation.
    Continued,
    /// WeChat refused (quota, permissions...) or kept failing: the run is `failed`, resumable.
    Failed,
    /// Another worker holds the run (a duplicate delivery); nothing done.
    Busy,
    /// The job is for a run that is over or was replaced; nothing done.
    Stale,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Why a chunk stopped short.
enum Stop {
    Store(StoreError),
    /// Someone else wrote the run (a restart, or a worker that took over an expired lease).
    LostLease,
    /// WeChat (or the token behind it) failed for good: the run fails with this message.
    Fail(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

pub struct FollowerSync {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    config: SyncConfig,
}

fn new_run_id() -> String {
    format!("fs-{}-{:08x}", now_unix(), rand::random::<u32>())
}

/// What one lookup step found.
#[derive(Default)]
struct Counts {
    followers: i64,
    mapped: i64,
    without_unionid: i64,
    unsubscribed: i64,
    skipped: i64,
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

    fn is_stale(&self, st: &SyncState, now: i64) -> bool {
        now - st.updated_at >= self.config.stale_after.as_secs() as i64 && st.lease_until <= now
    }

    fn in_progress(appid: &str, st: &SyncState) -> ApiError {
        ApiError::Conflict {
            code: "sync_in_progress",
            message: format!(
                "a follower sync of app {appid} is already running (run {}, {} followers so far); \
                 GET /v1/apps/{appid}/followers/sync shows its progress",
                st.run_id, st.followers
            ),
        }
    }

    /// `POST .../followers/sync`: starts a run, or resumes a failed (or abandoned) one from its
    /// cursor; `{"restart": true}` starts over instead. Answers the run's progress.
    pub async fn start(&self, appid: &str, body: &[u8]) -> Result<Value, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        if app.kind != AppKind::OfficialAccount {
            return Err(ApiError::Validation {
                field: "appid".into(),
                message: format!(
                    "app {appid} is not an official account; only those have followers"
                ),
            });
        }
        let restart = parse_start(body)?;
        let now = now_unix();
        let existing = self.load(appid).await?;
        let (mut st, resumed) = match &existing {
            Some(s) if s.state == RunState::Running && !self.is_stale(s, now) => {
                return Err(Self::in_progress(appid, s));
            }
            Some(s) if !restart && s.state != RunState::Done => {
                let mut s = s.clone();
                s.state = RunState::Running;
                s.resumes += 1;
                s.lease_until = 0;
                s.last_error.clear();
                (s, true)
            }
            _ => {
                let mut s = SyncState::new(new_run_id(), now);
                s.version = existing.as_ref().map_or(0, |e| e.version);
                (s, false)
            }
        };
        if !self.save(appid, &mut st).await? {
            let current = self.load(appid).await?;
            return Err(Self::in_progress(appid, current.as_ref().unwrap_or(&st)));
        }
        let job = Job::FollowerSync {
            appid: appid.to_string(),
            run_id: st.run_id.clone(),
        };
        if let Err(e) = self.queue.enqueue(&job).await {
            warn!(appid, error = %e, "could not queue the follower sync");
            st.state = RunState::Failed;
            st.last_error = format!("{e}; start the sync again to resume it");
            let _ = self.save(appid, &mut st).await;
            return Err(ApiError::QueueUnavailable(e.to_string()));
        }
        info!(appid, run_id = %st.run_id, resumed, "follower sync started");
        let mut body = st.progress(appid);
        body["resumed"] = Value::Bool(resumed);
        Ok(body)
    }

    /// `GET .../followers/sync`.
    pub async fn progress(&self, appid: &str) -> Result<Value, ApiError> {
        match self.load(appid).await? {
            Some(st) => Ok(st.progress(appid)),
            None => {
                self.tokens.secrets().app(appid).await?;
                Err(ApiError::Missing {
                    code: "no_sync",
                    message: format!("no follower sync has been started for app {appid}"),
                })
            }
        }
    }

    /// Works on run `run_id` of `appid` until it ends or `deadline` comes near (then it
    /// checkpoints and queues a continuation). Always does at least one chunk when it holds
    /// the run, so every invocation makes progress.
    pub async fn run(
        &self,
        appid: &str,
        run_id: &str,
        deadline: Instant,
    ) -> Result<RunEnd, RunError> {
        let Some(mut st) = self.load(appid).await? else {
            return Ok(RunEnd::Stale);
        };
        if st.run_id != run_id || st.state != RunState::Running {
            return Ok(RunEnd::Stale);
        }
        let now = now_unix();
        if st.lease_until > now {
            return Ok(RunEnd::Busy);
        }
        st.lease_until = now + self.config.lease.as_secs() as i64;
        if !self.save(appid, &mut st).await? {
            return Ok(RunEnd::Busy);
        }
        for _ in 0..MAX_CHUNKS_PER_RUN {
            let step = match st.phase {
                Phase::Pages => self.pages_chunk(appid, &mut st).await,
                Phase::Sweep => self.sweep_chunk(appid, &mut st).await,
            };
            match step {
                Ok(false) => {}
                Ok(true) => {
                    st.state = RunState::Done;
                    st.finished_at = now_unix();
                    st.lease_until = 0;
                    if !self.save(appid, &mut st).await? {
                        return Ok(RunEnd::Busy);
                    }
                    info!(
                        appid,
                        run_id,
                        followers = st.followers,
                        mapped = st.mapped,
                        without_unionid = st.without_unionid,
                        unsubscribed = st.unsubscribed,
                        errors = st.errors,
                        "follower sync done"
                    );
                    return Ok(RunEnd::Done);
                }
                Err(Stop::LostLease) => return Ok(RunEnd::Busy),
                Err(Stop::Store(e)) => {
                    // Free the run for the retry if the store lets us; the lease expires anyway.
                    let mut fresh = self.load(appid).await.ok().flatten().unwrap_or(st.clone());
                    if fresh.run_id == st.run_id && fresh.version == st.version {
                        fresh.lease_until = 0;
                        let _ = self.save(appid, &mut fresh).await;
                    }
                    return Err(e.into());
                }
                Err(Stop::Fail(message)) => {
                    warn!(appid, run_id, error = %message, "follower sync failed");
                    st.state = RunState::Failed;
                    st.last_error = message;
                    st.lease_until = 0;
                    self.save(appid, &mut st).await?;
                    return Ok(RunEnd::Failed);
                }
            }
            if Instant::now() + self.config.reserve >= deadline {
                break;
            }
        }
        // Out of time (or at the bound of chunks): free the run and queue its continuation.
        st.lease_until = 0;
        if !self.save(appid, &mut st).await? {
            return Ok(RunEnd::Busy);
        }
        let job = Job::FollowerSync {
            appid: appid.to_string(),
            run_id: run_id.to_string(),
        };
        self.queue.enqueue(&job).await?;
        Ok(RunEnd::Continued)
    }

    /// Checkpoints `st` with `counts` and `errors` added, renewing the lease.
    async fn checkpoint(
        &self,
        appid: &str,
        st: &mut SyncState,
        counts: &Counts,
        errors: &AtomicI64,
    ) -> Result<(), Stop> {
        st.followers += counts.followers;
        st.mapped += counts.mapped;
        st.without_unionid += counts.without_unionid;
        st.unsubscribed += counts.unsubscribed;
        st.skipped += counts.skipped;
        st.errors += errors.swap(0, Ordering::Relaxed);
        st.lease_until = now_unix() + self.config.lease.as_secs() as i64;
        if self.save(appid, st).await? {
            Ok(())
        } else {
            Err(Stop::LostLease)
        }
    }

    /// One `user/get` page: its followers looked up and stored, in checkpointed steps.
    /// `Ok(true)` once the last page is done (the sweep comes next, so not finished yet).
    async fn pages_chunk(&self, appid: &str, st: &mut SyncState) -> Result<bool, Stop> {
        let errors = AtomicI64::new(0);
        let cursor = st.cursor.clone();
        let page = self
            .call(appid, "user/get", &errors, |token| {
                let (wechat, cursor) = (self.tokens.wechat().clone(), cursor.clone());
                async move {
                    let next = (!cursor.is_empty()).then_some(cursor.as_str());
                    wechat.get_followers(&token, next).await
                }
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(stop) => {
                st.errors += errors.swap(0, Ordering::Relaxed);
                return Err(stop);
            }
        };
        let openids = page.openids();
        st.total = page.total as i64;
        let start = resume_position(openids, st.page_done, &st.page_last);
        let observed_at = now_unix();
        for group in openids[start..].chunks(self.config.checkpoint_every.max(1)) {
            let counts = match self
                .lookup_and_store(appid, st, group, observed_at, &errors)
                .await
            {
                Ok(c) => c,
                Err(stop) => {
                    st.errors += errors.swap(0, Ordering::Relaxed);
                    return Err(stop);
                }
            };
            st.page_done += group.len() as i64;
            st.page_last = group.last().cloned().unwrap_or_default();
            self.checkpoint(appid, st, &counts, &errors).await?;
        }
        let next = page.next_openid.clone().unwrap_or_default();
        let last = openids.is_empty()
            || next.is_empty()
            || (openids.len() < FOLLOWERS_PER_PAGE && st.followers >= st.total);
        st.pages += 1;
        st.page_done = 0;
        st.page_last.clear();
        if last {
            st.phase = Phase::Sweep;
            st.sweep_after.clear();
        } else {
            st.cursor = next;
        }
        self.checkpoint(appid, st, &Counts::default(), &errors)
            .await?;
        Ok(false)
    }

    /// One step of the sweep: stored accounts the pages did not list this run, asked about
    /// again; `Ok(true)` when every stored account was checked.
    async fn sweep_chunk(&self, appid: &str, st: &mut SyncState) -> Result<bool, Stop> {
        let errors = AtomicI64::new(0);
        let after = (!st.sweep_after.is_empty()).then_some(st.sweep_after.as_str());
        let QueryPage { rows, next_after } = self
            .store
            .query_page(&format!("acct#{appid}"), after, self.config.sweep_page)
            .await?;
        let unseen: Vec<String> = rows
            .iter()
            .filter(|(_, a)| {
                a.get("subscribed") == Some(&Attr::Bool(true))
                    && a.get("sync_run") != Some(&Attr::S(st.run_id.clone()))
            })
            .filter_map(|(_, a)| match a.get("openid") {
                Some(Attr::S(o)) => Some(o.clone()),
                _ => None,
            })
            .collect();
        let mut counts = Counts::default();
        if !unseen.is_empty() {
            counts = match self
                .lookup_and_store(appid, st, &unseen, now_unix(), &errors)
                .await
            {
                Ok(c) => c,
                Err(stop) => {
                    st.errors += errors.swap(0, Ordering::Relaxed);
                    return Err(stop);
                }
            };
        }
        // Those found still following were missed by the pages (they shifted): count them in.
        counts.followers = counts.mapped + counts.without_unionid;
        let done = match next_after {
            Some(n) => {
                st.sweep_after = n;
                false
            }
            None => true,
        };
        self.checkpoint(appid, st, &counts, &errors).await?;
        Ok(done)
    }

    /// Looks `openids` up (`batchget`, 100 a call, a few calls at once) and stores what WeChat
    /// says about each: following (with or without a unionid) or not any more.
    async fn lookup_and_store(
        &self,
        appid: &str,
        st: &SyncState,
        openids: &[String],
        observed_at: i64,
        errors: &AtomicI64,
    ) -> Result<Counts, Stop> {
        let batches: Vec<Vec<String>> = openids
            .chunks(BATCHGET_MAX)
            .map(<[String]>::to_vec)
            .collect();
        let lookups = batches.into_iter().map(|batch| {
            let appid = appid.to_string();
            async move { self.lookup_batch(&appid, &batch, errors).await }
        });
        let batches: Vec<Vec<UserInfo>> = stream::iter(lookups)
            .buffered(self.config.lookup_concurrency.max(1))
            .try_collect()
            .await?;
        let infos: Vec<UserInfo> = batches.into_iter().flatten().collect();
        let mut counts = Counts {
            followers: openids.len() as i64,
            ..Counts::default()
        };
        counts.skipped = openids.len() as i64 - infos.len() as i64;
        let s = |v: &str| Attr::S(v.to_string());
        // Each account's operations stay together in one transaction. The sync knows every
        // attribute of the items it writes, so it replaces them whole (`PutIfNewer`), unless
        // a callback recorded something newer meanwhile.
        let mut per_user: Vec<Vec<Op>> = Vec::with_capacity(infos.len());
        let mut seen = std::collections::HashSet::new();
        for info in &infos {
            if !seen.insert(info.openid.clone()) {
                continue;
            }
            let following = info.subscribe == 1;
            let mut account = attrs([
                ("appid", s(appid)),
                ("openid", s(&info.openid)),
                ("subscribed", Attr::Bool(following)),
                ("sync_run", s(&st.run_id)),
                ("updated_at", Attr::N(observed_at)),
            ]);
            let mut ops = Vec::with_capacity(2);
            let mut unionid = info.unionid.clone().filter(|u| !u.is_empty());
            if following {
                if let Some(t) = info.subscribe_time {
                    account.insert("subscribe_time".into(), Attr::N(t));
                }
                match &unionid {
                    Some(u) => {
                        account.insert("unionid".into(), s(u));
                        counts.mapped += 1;
                    }
                    None => counts.without_unionid += 1,
                }
            } else {
                counts.unsubscribed += 1;
                // WeChat says nothing more about someone who left; their stored unionid
                // (if any) finds the directory entry to update.
                if unionid.is_none() {
                    let stored = self
                        .store
                        .get(&ItemKey::account(appid, &info.openid))
                        .await?;
                    unionid = match stored.as_ref().and_then(|a| a.get("unionid")) {
                        Some(Attr::S(u)) => Some(u.clone()),
                        _ => None,
                    };
                }
                if let Some(u) = &unionid {
                    account.insert("unionid".into(), s(u));
                }
            }
            ops.push(Op::PutIfNewer {
                key: ItemKey::account(appid, &info.openid),
                event_time: observed_at,
                attrs: account,
            });
            if let Some(u) = unionid {
                ops.push(Op::PutIfNewer {
                    key: ItemKey::union_account(&u, appid),
                    event_time: observed_at,
                    attrs: attrs([
                        ("appid", s(appid)),
                        ("openid", s(&info.openid)),
                        ("subscribed", Attr::Bool(following)),
                        ("updated_at", Attr::N(observed_at)),
                    ]),
                });
            }
            per_user.push(ops);
        }
        let mut writes: Vec<Vec<Op>> = vec![];
        for ops in per_user {
            match writes.last_mut() {
                Some(w) if w.len() + ops.len() <= OPS_PER_WRITE => w.extend(ops),
                _ => writes.push(ops),
            }
        }
        let writes = writes
            .into_iter()
            .map(|ops| async move { self.write(&ops, observed_at).await });
        stream::iter(writes)
            .buffer_unordered(self.config.lookup_concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(counts)
    }

    /// One set of independent account writes, tried again after a transient store failure
    /// (a transaction cancelled by a concurrent callback on one of the items, say).
    async fn write(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match self.store.record(ops, now).await {
                Err(e) if attempt < ATTEMPTS => {
                    warn!(error = %e, attempt, "follower sync write failed; retrying");
                    tokio::time::sleep(self.config.backoff * attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One `batchget`; when WeChat refuses the list for an openid it does not know (40003),
    /// each openid is asked alone and the unknown ones are left out (counted as skipped).
    async fn lookup_batch(
        &self,
        appid: &str,
        openids: &[String],
        errors: &AtomicI64,
    ) -> Result<Vec<UserInfo>, Stop> {
        let list = openids.to_vec();
        let batch = self
            .call_raw(appid, errors, |token| {
                let (wechat, list) = (self.tokens.wechat().clone(), list.clone());
                async move { wechat.user_info_batch(&token, &list).await }
            })
            .await;
        match batch {
            Ok(infos) => Ok(infos),
            Err(RawStop::WeChat(e)) if e.errcode() == Some(40003) => {
                let mut infos = Vec::with_capacity(openids.len());
                for openid in openids {
                    let one = self
                        .call_raw(appid, errors, |token| {
                            let (wechat, openid) = (self.tokens.wechat().clone(), openid.clone());
                            async move { wechat.user_info(&token, &openid).await }
                        })
                        .await;
                    match one {
                        Ok(info) => infos.push(info),
                        Err(RawStop::WeChat(e)) if e.errcode() == Some(40003) => {
                            warn!(appid, "WeChat does not know an openid it listed; skipped");
                        }
                        Err(other) => return Err(other.into_stop("user/info")),
                    }
                }
                Ok(infos)
            }
            Err(other) => Err(other.into_stop("user/info/batchget")),
        }
    }

    async fn call<T, Fut>(
        &self,
        appid: &str,
        what: &'static str,
        errors: &AtomicI64,
        f: impl Fn(String) -> Fut,
    ) -> Result<T, Stop>
    where
        Fut: Future<Output = Result<T, WeChatCallError>>,
    {
        self.call_raw(appid, errors, f)
            .await
            .map_err(|e| e.into_stop(what))
    }

    /// A WeChat call with the sync's rules: a token error invalidates the token and retries
    /// once; -1, 5xx and timeouts retry with backoff (reads are safe to repeat). Every failed
    /// attempt counts in `errors`.
    async fn call_raw<T, Fut>(
        &self,
        appid: &str,
        errors: &AtomicI64,
        f: impl Fn(String) -> Fut,
    ) -> Result<T, RawStop>
    where
        Fut: Future<Output = Result<T, WeChatCallError>>,
    {
        let mut token = self
            .tokens
            .get(appid)
            .await
            .map_err(|e| RawStop::Token(e.to_string()))?;
        let mut token_retried = false;
        let attempts = self.config.attempts.max(1);
        // One more round than `attempts`: a token refresh does not use up an attempt.
        for attempt in 1..=attempts + 1 {
            let err = match f(token.token.expose().to_string()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            errors.fetch_add(1, Ordering::Relaxed);
            match err.class() {
                ErrorClass::TokenInvalid if !token_retried => {
                    token_retried = true;
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = self
                        .tokens
                        .get(appid)
                        .await
                        .map_err(|e| RawStop::Token(e.to_string()))?;
                }
                ErrorClass::Retryable if attempt < attempts => {
                    let backoff = self.config.backoff * (1 << (attempt - 1).min(6))
                        + Duration::from_millis(rand::random_range(0..50));
                    warn!(appid, attempt, error = %err, "WeChat call failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
                _ => return Err(RawStop::WeChat(err)),
            }
        }
        Err(RawStop::Token(
            "the access token kept being rejected".into(),
        ))
    }
}

enum RawStop {
    Token(String),
    WeChat(WeChatCallError),
}

impl RawStop {
    fn into_stop(self, what: &str) -> Stop {
        match self {
            RawStop::Token(e) => Stop::Fail(format!("no access token: {e}")),
            RawStop::WeChat(e) => Stop::Fail(format!("{what} failed: {e}")),
        }
    }
}

/// Where to go on in a page fetched again: after `last` when it is still there (the page may
/// have shifted as followers left), else at `done`.
fn resume_position(openids: &[String], done: i64, last: &str) -> usize {
    let done = (done.max(0) as usize).min(openids.len());
    if last.is_empty() || done == 0 {
        return done;
    }
    if openids.get(done - 1).is_some_and(|o| o == last) {
        return done;
    }
    match openids.iter().position(|o| o == last) {
        Some(i) => i + 1,
        None => done,
    }
}

/// The start body: empty, or `{"restart": bool}`.
fn parse_start(body: &[u8]) -> Result<bool, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    for key in map.keys() {
        if key != "restart" {
            return Err(ApiError::Validation {
                field: key.clone(),
                message: "unknown field; the only option is \"restart\"".into(),
            });
        }
    }
    match map.get("restart") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::Validation {
            field: "restart".into(),
            message: "must be true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("o{i}")).collect()
    }

    #[test]
    fn resume_finds_its_place_in_a_shifted_page() {
        let page = ids(10);
        assert_eq!(resume_position(&page, 0, ""), 0);
        assert_eq!(resume_position(&page, 4, "o3"), 4);
        // Two followers before the place left: the page moved left by two.
        let shifted: Vec<String> = page[2..].to_vec();
        assert_eq!(resume_position(&shifted, 4, "o3"), 2);
        // The last one done left too: fall back to the count.
        let without: Vec<String> = page.iter().filter(|o| *o != "o3").cloned().collect();
        assert_eq!(resume_position(&without, 4, "o3"), 4);
        assert_eq!(resume_position(&page, 40, "zz"), 10);
    }

    #[test]
    fn start_body() {
        assert!(!parse_start(b"").unwrap());
        assert!(!parse_start(b"{}").unwrap());
        assert!(parse_start(br#"{"restart": true}"#).unwrap());
        assert!(matches!(
            parse_start(br#"{"restart": "yes"}"#),
            Err(ApiError::Validation { .. })
        ));
        assert!(matches!(
            parse_start(br#"{"from": 1}"#),
            Err(ApiError::Validation { .. })
        ));
        assert!(matches!(parse_start(b"[1]"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_start(b"{"), Err(ApiError::BadRequest(_))));
    }
}
