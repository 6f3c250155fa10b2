//! Batches: one message to many recipients (`POST/GET/DELETE /v1/apps/{appid}/batches`),
//! sent by the queue's workers with the code of single sends.
//!
//! A batch `id` of app `appid` is, in the state table:
//! - `batch#{appid}#{id}` / `meta` — the message, who asked, state, totals, fan-out cursor,
//!   pause; changed by compare-and-swap on `version` (a pause is set without one: it only
//!   ever moves `paused_until`).
//! - `brcpt#…` / `{chunk}` — a chunk's recipients (`o:{openid}` / `u:{unionid}`, one a line),
//!   written once.
//! - `bprog#…` / `{chunk}` — one character per recipient of the chunk: `.` queued, `s` sent,
//!   `f` failed, `u` unknown (may have been delivered), `c` cancelled. Written by
//!   compare-and-swap with a merge, so two workers on one chunk never lose an outcome. The
//!   counts of `GET` are the sum of these.
//! - `bfail#…` / `{chunk}#{index}` — a failed or unknown recipient, with why.
//! - `bkey#{appid}#{sha1(principal, key)}` / `batch` — an `Idempotency-Key`'s batch id
//!   (ids are random; this item is how a retry finds its batch), written with the batch's
//!   first claim.
//! - `bclaim#…` / `{recipient}` — the recipient's send claim, the same claim a single send's
//!   `Idempotency-Key` takes ([`Sender::send_claimed`]): a redelivered job, a crashed worker
//!   or a duplicate job finds it and replays its outcome instead of sending again.
//!
//! `POST` validates and records the batch and its chunks, queues one
//! [`Job::BatchFanout`] and answers `202`. The fan-out queues a [`Job::BatchChunk`] per chunk
//! (`SendMessageBatch`, ten a call); for `"audience": "followers"` it first writes the chunks
//! page by page from the follower directory. Chunk jobs send with a shared per-app pace
//! ([`pace::Pacer`]); 45009/45011 pause the whole batch (the jobs are put back with a delay,
//! burning no retries); `DELETE` cancels what is not sent yet.

mod create;
pub mod pace;
mod request;
pub mod sweep;

pub use create::idempotency_item;
use request::parse_batch_request;

use crate::app::AppConfig;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::queue::{Job, JobQueue};
use crate::send::service::{
    CLAIM_LEASE_MARGIN_SECS, ClaimSpec, MESSAGE_TTL_SECS, SendOutcome, Sender, body_hash,
};
use crate::send::validate::{Recipient, parse_recipient, parse_send_request};
use crate::store::StoreError;
use crate::store::{Attr, Attrs, ItemKey, Op, Recorded, StateStore, attrs};
use futures::stream::{self, StreamExt};
use http::StatusCode;
use pace::Pacer;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Recipients one batch may list.
pub const MAX_RECIPIENTS: usize = 100_000;
/// Invalid recipients listed in a `422` at most (the count says how many there were).
pub const MAX_LISTED_INVALID: usize = 100;
/// A batch's message at most, as JSON (it is stored in one item; DynamoDB's limit is 400 KB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Failures per `GET` page.
pub const FAILURES_PER_PAGE: usize = 100;
/// A batch still `writing` after this long was abandoned by its request: a retry with the
/// same `Idempotency-Key` takes it over.
const WRITING_STALE_SECS: i64 = 120;
/// Chunk jobs queued per fan-out step (then the step is recorded).
const FANOUT_STEP: usize = 100;
/// Chunks written per store transaction when a batch is created (two items each).
const CHUNKS_PER_WRITE: usize = 20;
/// SQS's longest delivery delay.
const MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Recipients per chunk (one job).
    pub chunk_size: usize,
    /// Sends in flight per chunk job.
    pub concurrency: usize,
    /// Messages per second per app, all workers together, for apps without `batch_rate`.
    pub default_rate: u32,
    /// How long 45011 (per-minute limit) pauses a batch at least.
    pub minute_pause: Duration,
    /// How long 45009 (daily quota) pauses a batch before it tries again.
    pub daily_pause: Duration,
    /// First delay before a chunk that failed on WeChat or the store runs again (doubled each
    /// time, at most SQS's 900 s).
    pub retry_backoff: Duration,
    /// Times a chunk is put back after failures before its unsent recipients are failed.
    pub max_retries: u32,
    /// A chunk job stops starting sends this long before its deadline.
    pub reserve: Duration,
    /// Outcomes recorded at least every this many sends…
    pub flush_every: usize,
    /// …and at least this often.
    pub flush_interval: Duration,
    /// How often a chunk job looks for a cancel or a pause.
    pub check_interval: Duration,
}

impl BatchConfig {
    /// The defaults, with `WXPUSH_BATCH_RATE` (messages per second per app, for apps
    /// without their own `batch_rate`) and `WXPUSH_BATCH_CONCURRENCY` (sends in flight per
    /// chunk job) when set.
    pub fn from_env() -> Result<BatchConfig, String> {
        let mut config = BatchConfig::default();
        let read = |name: &str, max: u32| -> Result<Option<u32>, String> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .map(Some)
                    .ok_or_else(|| format!("{name} must be a whole number from 1 to {max}")),
            }
        };
        if let Some(rate) = read("WXPUSH_BATCH_RATE", crate::secrets::MAX_BATCH_RATE)? {
            config.default_rate = rate;
        }
        if let Some(n) = read("WXPUSH_BATCH_CONCURRENCY", 64)? {
            config.concurrency = n as usize;
        }
        Ok(config)
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            chunk_size: 500,
            concurrency: 8,
            default_rate: 100,
            minute_pause: Duration::from_secs(60),
            daily_pause: MAX_DELAY,
            retry_backoff: Duration::from_secs(30),
            max_retries: 8,
            reserve: Duration::from_secs(20),
            flush_every: 50,
            flush_interval: Duration::from_secs(2),
            check_interval: Duration::from_secs(2),
        }
    }
}

fn s(v: &str) -> Attr {
    Attr::S(v.to_string())
}

fn text(a: &Attrs, k: &str) -> Option<String> {
    match a.get(k) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn num(a: &Attrs, k: &str) -> i64 {
    match a.get(k) {
        Some(Attr::N(n)) => *n,
        _ => 0,
    }
}

fn flag(a: &Attrs, k: &str) -> bool {
    matches!(a.get(k), Some(Attr::Bool(true)))
}

/// A batch id as wxpush issues them: `bat_` and 32 lowercase hex digits.
pub fn is_batch_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("bat_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whom a batch goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Recipients,
    Followers,
}

impl Audience {
    fn as_str(self) -> &'static str {
        match self {
            Audience::Recipients => "recipients",
            Audience::Followers => "followers",
        }
    }
}

/// Failure rows written with one progress change at most (a transaction holds 100 items).
const ROWS_PER_FLUSH: usize = 90;

/// The batch's `meta` item, read.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    version: i64,
    state: String,
    audience: Audience,
    message: String,
    hash: String,
    requested_by: String,
    created_at: i64,
    total: i64,
    duplicates: i64,
    chunks: u32,
    queued_chunks: u32,
    fanout_done: bool,
    cursor: Option<String>,
    paused_until: i64,
    pause_reason: Option<String>,
    /// When the fan-out last recorded a step.
    fanout_at: i64,
}

impl Meta {
    fn from(a: &Attrs) -> Meta {
        Meta {
            version: num(a, "version"),
            state: text(a, "state").unwrap_or_default(),
            audience: match text(a, "audience").as_deref() {
                Some("followers") => Audience::Followers,
                _ => Audience::Recipients,
            },
            message: text(a, "message").unwrap_or_default(),
            hash: text(a, "hash").unwrap_or_default(),
            requested_by: text(a, "requested_by").unwrap_or_default(),
            created_at: num(a, "created_at"),
            total: num(a, "total"),
            duplicates: num(a, "duplicates"),
            chunks: num(a, "chunks") as u32,
            queued_chunks: num(a, "queued_chunks") as u32,
            fanout_done: flag(a, "fanout_done"),
            cursor: text(a, "cursor"),
            paused_until: num(a, "paused_until"),
            pause_reason: text(a, "pause_reason"),
            fanout_at: num(a, "fanout_at"),
        }
    }
}

/// One chunk's progress item, read.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    version: i64,
    results: Vec<u8>,
    started: bool,
    /// Unix seconds until which a job that flushed it may still be running.
    active_until: i64,
    /// When a job last flushed it.
    flushed_at: i64,
    /// Unix seconds when a put-back (or a sweep's requeue) of its job is due.
    due_at: i64,
    /// Sweeps that requeued it since a job last flushed it.
    sweeps: i64,
}

impl Progress {
    fn from(a: &Attrs) -> Progress {
        Progress {
            version: num(a, "version"),
            results: text(a, "results").unwrap_or_default().into_bytes(),
            started: flag(a, "started"),
            active_until: num(a, "active_until"),
            flushed_at: num(a, "flushed_at"),
            due_at: num(a, "due_at"),
            sweeps: num(a, "sweeps"),
        }
    }
}

const QUEUED: u8 = b'.';
const SENT: u8 = b's';
const FAILED: u8 = b'f';
const UNKNOWN: u8 = b'u';
const CANCELLED: u8 = b'c';
/// Failed without a send: the chunk was given up (counted as failed). A real outcome written
/// by another run of the chunk still replaces it.
const NOT_SENT: u8 = b'n';
/// The same person as another recipient of the batch (an openid and its unionid, say): the
/// other recipient's message is theirs (counted in `duplicates`).
const DUPLICATE: u8 = b'd';

/// Whether `c` is what WeChat did (sent, refused, unknown, or did for the same person)
/// rather than what wxpush decided about a recipient it did not send to (queued,
/// cancelled, given up).
fn is_real(c: u8) -> bool {
    matches!(c, SENT | FAILED | UNKNOWN | DUPLICATE)
}

/// Whether a recipient in state `c` has a row in the batch's failures.
fn has_failure_row(c: u8) -> bool {
    matches!(c, FAILED | UNKNOWN | NOT_SENT)
}

/// Two views of a chunk's outcomes made one: a real outcome beats "queued", "cancelled" and
/// "not sent" (a send in flight when the cancel came still went out), the first real outcome
/// stays, and a decision beats "queued".
/// Counts the recipients a flush settled, by outcome (`BatchRecipients` metrics): positions
/// that were not yet a real outcome before and are one now.
fn count_settled(before: &[u8], after: &[u8]) {
    for (outcome, name) in [(SENT, "sent"), (FAILED, "failed"), (UNKNOWN, "unknown")] {
        let n = before
            .iter()
            .zip(after)
            .filter(|&(&b, &a)| !is_real(b) && a == outcome)
            .count();
        crate::metrics::count("BatchRecipients", n as f64, &[("Outcome", name)]);
    }
}

fn merge(stored: &[u8], mine: &[u8]) -> Vec<u8> {
    stored
        .iter()
        .zip(mine)
        .map(|(&a, &b)| match (a, b) {
            (a, _) if is_real(a) => a,
            (_, b) if is_real(b) => b,
            (QUEUED, b) => b,
            (a, _) => a,
        })
        .collect()
}

/// A recipient's outcome, as a chunk records it.
#[derive(Clone, Debug)]
struct Done {
    outcome: u8,
    message_id: Option<String>,
    /// For `failed` and `unknown`: the error body (or the unknown answer).
    detail: Option<Value>,
}

impl Done {
    fn duplicate(message_id: Option<String>) -> Done {
        Done {
            outcome: DUPLICATE,
            message_id,
            detail: None,
        }
    }

    fn failed(detail: Value) -> Done {
        Done {
            outcome: FAILED,
            message_id: None,
            detail: Some(detail),
        }
    }

    /// An answer of the send path (also a replayed claim's).
    fn of(outcome: &SendOutcome) -> Done {
        let message_id = message_id_of(outcome);
        let (code, detail) = match outcome.status.as_u16() {
            200 => (SENT, None),
            202 => (UNKNOWN, Some(outcome.body.clone())),
            _ => (FAILED, Some(outcome.body.clone())),
        };
        Done {
            outcome: code,
            message_id,
            detail,
        }
    }
}

/// Why a chunk job stops before its recipients are all done.
#[derive(Clone, Debug)]
enum Stop {
    /// Its deadline nears: it continues in a new job.
    Deadline,
    /// WeChat's quota (45009/45011): the batch waits until then.
    Pause { until: i64, reason: String },
    /// WeChat or the store failed: the chunk runs again later.
    Retry(String),
    /// The batch was cancelled.
    Cancel,
}

/// What the unsent recipients of a chunk become when it stops for good.
#[derive(Clone, Debug)]
enum Settle {
    Cancel,
    GiveUp(String),
}

/// Batches: the API side (`create`, `status`, `cancel`) and the worker side (`fanout`,
/// `run_chunk`).
pub struct Batches {
    sender: Arc<Sender>,
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    pacer: Pacer,
    config: BatchConfig,
}

/// Everything a chunk's send tasks share.
struct ChunkCtx {
    batches: Arc<Batches>,
    app: Arc<AppConfig>,
    batch_id: String,
    message: Map<String, Value>,
    /// What every recipient's claim is for: the message, whoever it goes to.
    message_hash: String,
    /// Until when recipients' claims are kept: as long as the batch.
    claims_expire_at: i64,
    caller: String,
    deadline: Instant,
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

    async fn meta(&self, appid: &str, id: &str) -> Result<Option<Meta>, StoreError> {
        Ok(self
            .store
            .get(&ItemKey::batch(appid, id))
            .await?
            .map(|a| Meta::from(&a)))
    }

    // ------------------------------------------------------------------ the API

    /// Queues the fan-out of a batch that just became `running`; when the queue refuses, the
    /// batch is marked `failed` (never started; a retry with the same Idempotency-Key starts
    /// it) and the answer is 503.
    async fn start_fanout(&self, appid: &str, id: &str) -> Result<(), ApiError> {
        let Err(e) = self.queue_fanout(appid, id).await else {
            return Ok(());
        };
        let failed = Op::Update {
            key: ItemKey::batch(appid, id),
            attrs: attrs([("state", s("failed")), ("error", s(&e.to_string()))]),
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

    /// `GET /v1/apps/{appid}/batches/{id}`: counts, state and one page of failures.
    pub async fn status(
        &self,
        appid: &str,
        id: &str,
        cursor: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.app(appid).await?;
        if let Some(c) = cursor
            && !is_cursor(c)
        {
            return Err(invalid("cursor", "not a cursor this API gave out"));
        }
        // Cursors are sort keys with `-` for `#`, so they need no escaping in a URL.
        let cursor = cursor.map(|c| c.replace('-', "#"));
        let cursor = cursor.as_deref();
        let meta = self
            .meta(appid, id)
            .await?
            .filter(|m| m.state != "writing")
            .ok_or_else(|| ApiError::NotFound(format!("batch {id} of app {appid}")))?;
        let progress = self.store.query(&format!("bprog#{appid}#{id}")).await?;
        let [queued, sent, failed, unknown, cancelled, same_person] = count_progress(&progress);
        let page = self
            .store
            .query_page(&format!("bfail#{appid}#{id}"), cursor, FAILURES_PER_PAGE)
            .await?;
        let failures: Vec<Value> = page
            .rows
            .iter()
            .map(|(_, a)| {
                let mut f = json!({
                    "recipient": text(a, "recipient").and_then(|r| recipient_from_key(&r)).map(|r| r.to_json()),
                    "status": text(a, "status"),
                    "error": text(a, "error").and_then(|e| serde_json::from_str::<Value>(&e).ok()),
                });
                if let Some(m) = text(a, "message_id") {
                    f["message_id"] = json!(m);
                }
                f
            })
            .collect();
        let all_written = meta.fanout_done || meta.state != "running";
        let finished = (all_written && queued == 0) || meta.state == "failed";
        let state = match meta.state.as_str() {
            "running" | "done" if finished => "done",
            "running" if meta.paused_until > now_unix() => "paused",
            other => other,
        };
        let mut body = json!({
            "id": id,
            "appid": appid,
            "state": state,
            "audience": meta.audience.as_str(),
            "total": meta.total,
            "queued": queued,
            "sent": sent,
            "failed": failed,
            "unknown": unknown,
            "cancelled": cancelled,
            "done": finished,
            "duplicates": meta.duplicates + same_person,
            "requested_by": meta.requested_by,
            "created_at": meta.created_at,
            "failures": failures,
            "next_cursor": page.next_after.map(|c| c.replace('#', "-")),
        });
        if state == "paused" {
            body["paused_until"] = json!(meta.paused_until);
            body["pause_reason"] = json!(meta.pause_reason);
        }
        Ok(body)
    }

    /// `DELETE /v1/apps/{appid}/batches/{id}`: no new sends start; chunks nobody started are
    /// cancelled here, started ones by their workers within a few seconds (sends already in
    /// flight finish and count as what they became). Answers the status.
    pub async fn cancel(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.app(appid).await?;
        let key = ItemKey::batch(appid, id);
        let mut chunks = 0;
        let mut settled = false;
        for _ in 0..10 {
            let meta = self
                .meta(appid, id)
                .await?
                .filter(|m| m.state != "writing")
                .ok_or_else(|| ApiError::NotFound(format!("batch {id} of app {appid}")))?;
            chunks = meta.chunks;
            if meta.state != "running" {
                settled = true;
                break;
            }
            let op = Op::SetIfEquals {
                key: key.clone(),
                attrs: attrs([
                    ("state", s("cancelled")),
                    ("cancelled_at", Attr::N(now_unix())),
                    ("version", Attr::N(meta.version + 1)),
                ]),
                field: "version".into(),
                expected: meta.version,
            };
            if self.store.record(&[op], now_unix()).await? == Recorded::New {
                info!(appid, batch = %id, "batch cancelled");
                settled = true;
                break;
            }
        }
        if !settled {
            return Err(ApiError::Conflict {
                code: "in_progress",
                message: format!("batch {id} kept changing while it was being cancelled; retry"),
            });
        }
        // Chunks no worker has started: every recipient cancelled at once.
        let store = self.store.clone();
        stream::iter(0..chunks)
            .map(|chunk| {
                let store = store.clone();
                async move {
                    let key = ItemKey::batch_progress(appid, id, chunk);
                    let Some(p) = store.get(&key).await?.map(|a| Progress::from(&a)) else {
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
            .collect::<Result<(), StoreError>>()?;
        self.status(appid, id, None).await
    }

    // ------------------------------------------------------------------ the workers

    /// [`Job::BatchFanout`]: queues the chunk jobs not queued yet; for the followers
    /// audience, first writes chunks from the follower directory, page by page. Safe to run
    /// twice: every step is a compare-and-swap on the batch, and a chunk queued twice sends
    /// nothing twice.
    pub async fn fanout(&self, appid: &str, id: &str, deadline: Instant) -> Result<(), String> {
        // Bounded: each turn makes progress or reloads after a lost race.
        for _ in 0..100_000 {
            let Some(meta) = self.meta(appid, id).await.map_err(|e| e.to_string())? else {
                warn!(appid, batch = %id, "fan-out of a batch that does not exist; dropped");
                return Ok(());
            };
            match meta.state.as_str() {
                "running" => {}
                "writing" => return Err(format!("batch {id} is still being created")),
                _ => return Ok(()),
            }
            let key = ItemKey::batch(appid, id);
            let cas = |changes: Attrs| Op::SetIfEquals {
                key: key.clone(),
                attrs: {
                    let mut a = changes;
                    a.insert("version".into(), Attr::N(meta.version + 1));
                    let (k, v) = sweep::fanout_stamp();
                    a.insert(k.into(), v);
                    a
                },
                field: "version".into(),
                expected: meta.version,
            };
            if meta.queued_chunks < meta.chunks {
                let upto = meta.chunks.min(meta.queued_chunks + FANOUT_STEP as u32);
                let jobs: Vec<Job> = (meta.queued_chunks..upto)
                    .map(|chunk| Job::BatchChunk {
                        appid: appid.to_string(),
                        batch_id: id.to_string(),
                        chunk,
                        attempt: 0,
                    })
                    .collect();
                self.queue
                    .enqueue_many(&jobs)
                    .await
                    .map_err(|e| e.to_string())?;
                let op = cas(attrs([("queued_chunks", Attr::N(i64::from(upto)))]));
                self.store
                    .record(&[op], now_unix())
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            if meta.fanout_done {
                info!(appid, batch = %id, chunks = meta.chunks, total = meta.total, "batch fanned out");
                return Ok(());
            }
            if meta.audience == Audience::Recipients {
                let op = cas(attrs([("fanout_done", Attr::Bool(true))]));
                self.store
                    .record(&[op], now_unix())
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            if Instant::now() + self.config.reserve > deadline {
                // Continues in a new job.
                return self
                    .queue
                    .enqueue(&Job::BatchFanout {
                        appid: appid.to_string(),
                        batch_id: id.to_string(),
                    })
                    .await
                    .map_err(|e| e.to_string());
            }
            // The next page of the follower directory: the subscribed ones become a chunk.
            let page = self
                .store
                .query_page(
                    &format!("acct#{appid}"),
                    meta.cursor.as_deref(),
                    self.config.chunk_size,
                )
                .await
                .map_err(|e| e.to_string())?;
            let recipients: Vec<String> = page
                .rows
                .iter()
                .filter(|(_, a)| flag(a, "subscribed"))
                .filter_map(|(_, a)| text(a, "openid"))
                .filter(|o| parse_recipient(&json!({ "openid": o })).is_ok())
                .map(|o| format!("o:{o}"))
                .collect();
            let now = now_unix();
            let mut ops = Vec::with_capacity(3);
            let mut chunks = meta.chunks;
            if !recipients.is_empty() {
                ops.extend(chunk_ops(appid, id, chunks, &recipients, now));
                chunks += 1;
            }
            let mut changes = attrs([
                ("chunks", Attr::N(i64::from(chunks))),
                ("total", Attr::N(meta.total + recipients.len() as i64)),
                ("fanout_done", Attr::Bool(page.next_after.is_none())),
            ]);
            if let Some(after) = &page.next_after {
                changes.insert("cursor".into(), s(after));
            }
            ops.push(cas(changes));
            self.store
                .record(&ops, now)
                .await
                .map_err(|e| e.to_string())?;
        }
        Err(format!("fan-out of batch {id} did not finish"))
    }

    /// [`Job::BatchChunk`]: sends the chunk's queued recipients. The queue's last delivery
    /// runs like any other: a job that dies on it (killed at its deadline, a crash) goes to
    /// the dead-letter queue with its recipients still queued, and the sweep
    /// ([`Batches::sweep`]) requeues the chunk, or gives it up after requeues that changed
    /// nothing. A chunk that keeps failing on WeChat or the store gives itself up after
    /// `max_retries` put-backs.
    pub async fn run_chunk(
        self: &Arc<Self>,
        job: &Job,
        deadline: Instant,
        _last_delivery: bool,
    ) -> Result<(), String> {
        let Job::BatchChunk {
            appid,
            batch_id: id,
            chunk,
            attempt,
        } = job
        else {
            return Err("not a chunk job".into());
        };
        let (appid, id, chunk) = (appid.as_str(), id.as_str(), *chunk);
        let err = |e: StoreError| e.to_string();
        let Some(meta) = self.meta(appid, id).await.map_err(err)? else {
            warn!(appid, batch = %id, chunk, "chunk of a batch that does not exist; dropped");
            return Ok(());
        };
        let progress_key = ItemKey::batch_progress(appid, id, chunk);
        let (Some(progress), Some(recipients)) = (
            self.store.get(&progress_key).await.map_err(err)?,
            self.store
                .get(&ItemKey::batch_recipients(appid, id, chunk))
                .await
                .map_err(err)?,
        ) else {
            return Err(format!("chunk {chunk} of batch {id} is not written"));
        };
        let progress = Progress::from(&progress);
        let recipients: Vec<String> = text(&recipients, "recipients")
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if recipients.len() != progress.results.len() {
            return Err(format!("chunk {chunk} of batch {id} is inconsistent"));
        }
        if !progress.results.contains(&QUEUED) {
            return Ok(());
        }
        if meta.state != "running" {
            let mode = if meta.state == "cancelled" {
                Settle::Cancel
            } else {
                Settle::GiveUp(format!("the batch is {}", meta.state))
            };
            return self.settle(appid, id, chunk, &recipients, mode).await;
        }
        if *attempt > self.config.max_retries {
            let why = format!("not sent: the chunk failed {attempt} times and was given up");
            self.settle(appid, id, chunk, &recipients, Settle::GiveUp(why))
                .await?;
            // Reported failed so the queue moves it to its dead-letter queue, as it should.
            return Err(format!("chunk {chunk} of batch {id} given up"));
        }
        let now = now_unix();
        if meta.paused_until > now {
            let delay = Duration::from_secs((meta.paused_until - now) as u64);
            return self.put_back(job.clone(), delay).await;
        }
        let app = self.app(appid).await.map_err(|e| e.to_string())?;
        let message: Map<String, Value> = serde_json::from_str(&meta.message)
            .map_err(|e| format!("batch {id}: stored message unreadable: {e}"))?;
        let ctx = Arc::new(ChunkCtx {
            batches: self.clone(),
            app,
            batch_id: id.to_string(),
            message_hash: body_hash(meta.message.as_bytes()),
            message,
            claims_expire_at: meta.created_at + MESSAGE_TTL_SECS + 86_400,
            caller: meta.requested_by.clone(),
            deadline: deadline
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(deadline),
        });
        let mut chunk_state = ChunkRun::new(progress_key, appid, id, chunk, &progress);
        chunk_state.active_until = now_unix()
            + deadline.saturating_duration_since(Instant::now()).as_secs() as i64
            + CLAIM_LEASE_MARGIN_SECS;
        // Mark it started first, so a cancel leaves it to this worker.
        if !chunk_state.started {
            self.flush(&mut chunk_state).await?;
        }
        let mut pending: std::collections::VecDeque<usize> = (0..recipients.len())
            .filter(|&i| chunk_state.local[i] == QUEUED)
            .collect();
        let mut tasks = JoinSet::new();
        let mut stop: Option<Stop> = None;
        let (mut last_flush, mut last_check) = (Instant::now(), Instant::now());
        let mut sent_here = 0usize;
        // A recipient that hit a passing failure stays queued for the chunk's next run;
        // this many in a row means WeChat or the store is down, and the chunk stops.
        let (mut failing_in_a_row, mut last_failure) = (0usize, None::<String>);
        let give_up_after = 2 * self.config.concurrency.max(1);
        // Bounded by the chunk: every turn ends one send, and none starts twice.
        loop {
            while stop.is_none() && tasks.len() < self.config.concurrency.max(1) {
                let Some(i) = pending.pop_front() else { break };
                // Another run of this chunk may have settled it meanwhile (merged at a flush).
                if chunk_state.local[i] != QUEUED {
                    continue;
                }
                if Instant::now() + self.config.reserve > deadline {
                    pending.push_front(i);
                    stop = Some(Stop::Deadline);
                    break;
                }
                let (ctx, key) = (ctx.clone(), recipients[i].clone());
                tasks.spawn(async move { (i, send_one(&ctx, &key).await) });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            match joined {
                Ok((i, Ok(done))) => {
                    chunk_state.record(i, &recipients[i], done);
                    sent_here += 1;
                    failing_in_a_row = 0;
                }
                Ok((_, Err(Stop::Retry(why)))) => {
                    failing_in_a_row += 1;
                    if failing_in_a_row >= give_up_after && stop.is_none() {
                        stop = Some(Stop::Retry(why.clone()));
                    }
                    last_failure = Some(why);
                }
                Ok((_, Err(why))) => {
                    if let Stop::Pause { until, reason } = &why
                        && !matches!(stop, Some(Stop::Pause { .. }))
                    {
                        self.pause(appid, id, *until, reason).await;
                    }
                    stop = Some(match (stop.take(), why) {
                        (Some(Stop::Cancel), _) | (_, Stop::Cancel) => Stop::Cancel,
                        (Some(p @ Stop::Pause { .. }), _) | (_, p @ Stop::Pause { .. }) => p,
                        (_, w) => w,
                    });
                }
                Err(e) => stop = Some(Stop::Retry(format!("a send task failed: {e}"))),
            }
            // Nothing in here returns early: leaving the loop would drop the sends in flight
            // (a dropped `JoinSet` aborts its tasks), some of them after WeChat accepted.
            if chunk_state.unflushed >= self.config.flush_every
                || last_flush.elapsed() >= self.config.flush_interval
            {
                if let Err(e) = self.flush(&mut chunk_state).await {
                    stop = stop.or(Some(Stop::Retry(e)));
                }
                last_flush = Instant::now();
            }
            if stop.is_none() && last_check.elapsed() >= self.config.check_interval {
                last_check = Instant::now();
                // A failed read skips this check; the next one comes soon.
                if let Ok(Some(m)) = self.meta(appid, id).await {
                    if m.state != "running" {
                        stop = Some(Stop::Cancel);
                    } else if m.paused_until > now_unix() {
                        stop = Some(Stop::Pause {
                            until: m.paused_until,
                            reason: m.pause_reason.unwrap_or_default(),
                        });
                    }
                }
            }
        }
        self.flush(&mut chunk_state).await?;
        let left = chunk_state.local.iter().filter(|&&c| c == QUEUED).count();
        info!(appid, batch = %id, chunk, done = sent_here, left, stop = ?stop, "chunk step");
        // A run that got somewhere starts its retry count afresh.
        let (attempt, job) = if sent_here > 0 {
            (0, job.with_attempt(0))
        } else {
            (*attempt, job.clone())
        };
        match stop {
            _ if left == 0 => Ok(()),
            Some(Stop::Deadline) => self.put_back(job, Duration::ZERO).await,
            Some(Stop::Pause { until, .. }) => {
                let wait = (until - now_unix()).max(1) as u64;
                self.put_back(job, Duration::from_secs(wait)).await
            }
            None | Some(Stop::Retry(_)) => {
                let why = last_failure.unwrap_or_else(|| "a passing failure".into());
                if sent_here > 0 {
                    // Some recipients hit a passing failure: they go again soon.
                    return self.put_back(job, self.config.retry_backoff).await;
                }
                if attempt + 1 > self.config.max_retries {
                    let why = format!("not sent: {why} (given up after {attempt} retries)");
                    return self
                        .settle(appid, id, chunk, &recipients, Settle::GiveUp(why))
                        .await;
                }
                warn!(appid, batch = %id, chunk, attempt, error = %why, "chunk put back after a failure");
                // Doubling up to 32 times the first delay (SQS caps it at 900 s anyway).
                let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt.min(5));
                self.put_back(job.retried(), backoff.min(MAX_DELAY)).await
            }
            Some(Stop::Cancel) => {
                self.settle(appid, id, chunk, &recipients, Settle::Cancel)
                    .await
            }
        }
    }

    /// Queues `job` again after `delay` (at most SQS's 900 s; a longer pause is waited out
    /// in turns).
    async fn put_back(&self, job: Job, delay: Duration) -> Result<(), String> {
        let delay = delay.min(MAX_DELAY);
        self.queue
            .enqueue_after(&job, delay)
            .await
            .map_err(|e| e.to_string())?;
        // Tells the sweep when the chunk's job is due (it leaves the chunk alone until then).
        if let Job::BatchChunk {
            appid,
            batch_id,
            chunk,
            ..
        } = &job
        {
            let due = Op::Update {
                key: ItemKey::batch_progress(appid, batch_id, *chunk),
                attrs: attrs([("due_at", Attr::N(now_unix() + delay.as_secs() as i64 + 1))]),
            };
            if let Err(e) = self.store.record(&[due], now_unix()).await {
                warn!(appid, batch = %batch_id, chunk, error = %e, "could not note when a chunk's job is due");
            }
        }
        Ok(())
    }

    /// Pauses the batch until `until` (every worker sees it at its next check).
    async fn pause(&self, appid: &str, id: &str, until: i64, reason: &str) {
        warn!(appid, batch = %id, until, reason, "batch paused by WeChat's quota");
        // Only ever later: a minute limit's pause never shortens a daily quota's. (The
        // batch's `event_time` is the latest pause's end.)
        let op = Op::SetIfNewer {
            key: ItemKey::batch(appid, id),
            event_time: until,
            attrs: attrs([
                ("paused_until", Attr::N(until)),
                ("pause_reason", s(reason)),
            ]),
        };
        if let Err(e) = self.store.record(&[op], now_unix()).await {
            // The chunk itself still waits; other chunks find the quota on their own.
            warn!(appid, batch = %id, error = %e, "could not record the pause");
        }
    }

    /// Writes the chunk's outcomes so far, merged with what another run of the chunk may
    /// have written: each progress change by compare-and-swap, in one transaction with the
    /// failure rows it adds or removes, so the counts and the failures always agree.
    async fn flush(&self, run: &mut ChunkRun) -> Result<(), String> {
        let mut failures = 0u32;
        // Bounded: each turn commits up to ROWS_PER_FLUSH changes, loses a race (another
        // writer moved forward), or fails (8 failures end it).
        for _ in 0..(run.local.len() / ROWS_PER_FLUSH + 64) {
            let stored = self
                .with_retries(|| self.store.get(&run.key))
                .await?
                .map(|a| Progress::from(&a))
                .ok_or_else(|| format!("chunk {} of batch {} is gone", run.chunk, run.id))?;
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
        Err(format!(
            "could not record the progress of chunk {} of batch {}",
            run.chunk, run.id
        ))
    }

    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut last = String::new();
        for attempt in 0..4u32 {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(last)
    }

    /// Ends a chunk for good: each queued recipient becomes what its claim says (sent, or
    /// unknown when a send may have gone out), else cancelled or failed.
    async fn settle(
        &self,
        appid: &str,
        id: &str,
        chunk: u32,
        recipients: &[String],
        mode: Settle,
    ) -> Result<(), String> {
        let key = ItemKey::batch_progress(appid, id, chunk);
        let stored = self
            .with_retries(|| self.store.get(&key))
            .await?
            .map(|a| Progress::from(&a))
            .ok_or_else(|| format!("chunk {chunk} of batch {id} is gone"))?;
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
            let state = claim.as_ref().and_then(|c| text(c, "state"));
            let done = match (state.as_deref(), &claim) {
                (Some("done"), Some(c)) => Done::of(&SendOutcome {
                    status: StatusCode::from_u16(num(c, "status") as u16).unwrap_or(StatusCode::OK),
                    body: text(c, "response")
                        .and_then(|r| serde_json::from_str(&r).ok())
                        .unwrap_or(Value::Null),
                }),
                (Some("attempting"), Some(c)) => Done {
                    outcome: UNKNOWN,
                    message_id: text(c, "message_id"),
                    detail: Some(
                        json!({"status": "unknown", "message": "a send was under way when the chunk stopped; it may have been delivered and is not sent again"}),
                    ),
                },
                _ => match &mode {
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
                },
            };
            run.record(i, recipient, done);
        }
        self.flush(&mut run).await?;
        info!(appid, batch = %id, chunk, mode = ?mode, "chunk settled");
        Ok(())
    }
}

/// A chunk being worked on: its outcomes so far and the failure rows not written yet.
struct ChunkRun {
    key: ItemKey,
    appid: String,
    id: String,
    chunk: u32,
    local: Vec<u8>,
    /// The failure row of each recipient this run failed (or found unknown, or gave up),
    /// written in the same transaction as the progress that counts it.
    rows: std::collections::HashMap<usize, Attrs>,
    started: bool,
    unflushed: usize,
    /// Unix seconds until which this run may still be working (written with each flush).
    active_until: i64,
}

impl ChunkRun {
    fn new(key: ItemKey, appid: &str, id: &str, chunk: u32, progress: &Progress) -> ChunkRun {
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

    fn record(&mut self, index: usize, recipient: &str, done: Done) {
        self.local[index] = done.outcome;
        self.unflushed += 1;
        if has_failure_row(done.outcome) {
            let now = now_unix();
            let mut row = attrs([
                ("recipient", s(recipient)),
                (
                    "status",
                    s(if done.outcome == UNKNOWN {
                        "unknown"
                    } else {
                        "failed"
                    }),
                ),
                ("error", s(&done.detail.unwrap_or(Value::Null).to_string())),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]);
            if let Some(m) = done.message_id {
                row.insert("message_id".into(), s(&m));
            }
            self.rows.insert(index, row);
        }
    }

    /// The writes that move the stored progress `stored` towards `merged` by at most
    /// [`ROWS_PER_FLUSH`] positions: the new results, the failure rows that go with them (a
    /// real outcome's row replaces a give-up's; a give-up replaced by a send loses its row),
    /// and whether that was every change.
    fn step(&self, stored: &Progress, merged: &[u8]) -> (Vec<u8>, Vec<Op>, bool) {
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
}

/// One recipient: routed, paced, sent under its batch claim.
async fn send_one(ctx: &ChunkCtx, recipient_key: &str) -> Result<Done, Stop> {
    let Some(recipient) = recipient_from_key(recipient_key) else {
        return Ok(Done::failed(
            invalid("recipient", "not a recipient of this batch").body(),
        ));
    };
    let mut body = ctx.message.clone();
    body.insert("to".into(), recipient.to_json());
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let req = match parse_send_request(&bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Done::failed(e.body())),
    };
    let batches = &ctx.batches;
    let routed = match batches.sender.route(&ctx.app, &req).await {
        Ok(r) => r,
        Err(e) => return classify(e, &batches.config),
    };
    // The pace belongs to the app whose quota the send uses (`uniform`: the linked account).
    let rate = routed.via.batch_rate.unwrap_or(batches.config.default_rate);
    match batches
        .pacer
        .acquire(&routed.via.appid, rate, ctx.deadline)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(Stop::Deadline),
        Err(e) => return Err(Stop::Retry(e.to_string())),
    }
    // One claim per person the batch reaches (the sending app's openid), whichever way the
    // recipient was listed: an openid and its unionid get one message.
    let person = format!("{}:{}", routed.via.appid, routed.openid);
    let claim = ClaimSpec {
        item: ItemKey::batch_claim(&ctx.app.appid, &ctx.batch_id, &person),
        label: recipient_key.to_string(),
        hash: ctx.message_hash.clone(),
        expires_at: ctx.claims_expire_at,
    };
    let answer = batches
        .sender
        .send_claimed(
            &req,
            routed,
            claim,
            &ctx.caller,
            &[("batch_id", &ctx.batch_id)],
            ctx.deadline,
        )
        .await;
    match answer {
        Ok(c) if c.replay_of.as_deref().is_some_and(|l| l != recipient_key) => {
            Ok(Done::duplicate(message_id_of(&c.outcome)))
        }
        Ok(c) => match retry_until(&c.outcome) {
            // A template WeChat may or may not have taken: resent (deduped by its
            // client_msg_id) when the chunk runs again, while WeChat still remembers the id.
            Some(until) if until > now_unix() => Err(Stop::Retry(format!(
                "outcome unknown; resent with the same client_msg_id before {until}"
            ))),
            _ => Ok(Done::of(&c.outcome)),
        },
        Err(e) => classify(e, &batches.config),
    }
}

fn message_id_of(outcome: &SendOutcome) -> Option<String> {
    outcome
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Until when an `unknown` answer may be resent (a template's).
fn retry_until(outcome: &SendOutcome) -> Option<i64> {
    outcome.body.get("retry_until").and_then(Value::as_i64)
}

/// A send that ended in an error: quota pauses the batch, a passing failure (WeChat or the
/// store down, a claim still held) puts the chunk back, anything else fails the recipient.
fn classify(e: ApiError, config: &BatchConfig) -> Result<Done, Stop> {
    let status = e.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let now = now_unix();
        let until = match e.wechat_errcode() {
            // The daily quota: try again after the longest delay SQS has.
            Some(45009) => now + config.daily_pause.as_secs() as i64,
            // The minute limit (45011 says "retry next minute"): a minute by default.
            _ => now + config.minute_pause.as_secs().max(1) as i64,
        };
        return Err(Stop::Pause {
            until,
            reason: e.to_string(),
        });
    }
    if status == StatusCode::CONFLICT || status.is_server_error() {
        return Err(Stop::Retry(e.to_string()));
    }
    Ok(Done::failed(e.body()))
}

/// The recipients of a batch's progress items by state: queued, sent, failed (given up
/// included), unknown, cancelled, the same person as another recipient.
fn count_progress(progress: &[(String, Attrs)]) -> [i64; 6] {
    let mut counts = [0i64; 6];
    for (_, p) in progress {
        for c in Progress::from(p).results {
            let slot = match c {
                SENT => 1,
                FAILED | NOT_SENT => 2,
                UNKNOWN => 3,
                CANCELLED => 4,
                DUPLICATE => 5,
                _ => 0,
            };
            counts[slot] += 1;
        }
    }
    counts
}

/// A chunk's progress item, replacing version `expected`. `active_until`: until when the
/// job writing it may still run (the sweep leaves the chunk alone until then).
fn progress_op(
    key: &ItemKey,
    results: &[u8],
    expected: i64,
    started: bool,
    active_until: i64,
) -> Op {
    let now = now_unix();
    Op::PutIfVersion {
        key: key.clone(),
        attrs: attrs([
            ("results", s(&String::from_utf8_lossy(results))),
            ("count", Attr::N(results.len() as i64)),
            ("started", Attr::Bool(started)),
            ("version", Attr::N(expected + 1)),
            ("active_until", Attr::N(active_until)),
            ("flushed_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]),
        expected: Some(expected),
    }
}

/// The two items of a new chunk: its recipients and its (all queued) progress.
fn chunk_ops(appid: &str, id: &str, chunk: u32, recipients: &[String], now: i64) -> [Op; 2] {
    [
        Op::Set {
            key: ItemKey::batch_recipients(appid, id, chunk),
            attrs: attrs([
                ("recipients", s(&recipients.join("\n"))),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]),
        },
        Op::Set {
            key: ItemKey::batch_progress(appid, id, chunk),
            attrs: attrs([
                ("results", s(&".".repeat(recipients.len()))),
                ("count", Attr::N(recipients.len() as i64)),
                ("started", Attr::Bool(false)),
                ("version", Attr::N(0)),
                ("due_at", Attr::N(now)),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]),
        },
    ]
}

/// The batch's row in the sweep's list of unfinished batches.
fn unfinished_op(appid: &str, id: &str, now: i64) -> Op {
    Op::Set {
        key: ItemKey::unfinished_batch(appid, id),
        attrs: attrs([
            ("listed_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]),
    }
}

fn recipient_from_key(key: &str) -> Option<Recipient> {
    Recipient::from_key(key)
}

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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

fn created_body(id: &str, meta: &Meta) -> Value {
    json!({
        "id": id,
        "total": (meta.audience == Audience::Recipients).then_some(meta.total),
        "audience": meta.audience.as_str(),
        "duplicates": meta.duplicates,
        "state": meta.state,
    })
}

/// What [`Batches::create`] reads from a body before anything is recorded: the request
/// checked (the message as a single send, every recipient), as (recipients, duplicates).
/// Public for the body-memory benchmark (`tests/src/bin/bench_batch_body.rs`).
pub fn read_batch_body(body: &[u8]) -> Result<(usize, usize), ApiError> {
    parse_batch_request(body).map(|r| (r.recipients.len(), r.duplicates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_real_outcomes() {
        assert_eq!(merge(b"..cs", b"sccf"), b"sccs".to_vec());
        assert_eq!(merge(b"c.", b"s."), b"s.".to_vec());
        assert_eq!(merge(b"f", b"s"), b"f".to_vec());
        // A give-up is replaced by what another run of the chunk really did.
        assert_eq!(merge(b"nn.", b"sn."), b"sn.".to_vec());
        assert_eq!(merge(b"s.", b"nn"), b"sn".to_vec());
    }

    #[test]
    fn request_checks() {
        let ok = |b: Value| parse_batch_request(b.to_string().as_bytes());
        let msg = json!({"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}});
        let r = ok(json!({"message": msg, "recipients": [{"openid": "o1"}, {"unionid": "u1"}, {"openid": "o1"}]})).unwrap();
        assert_eq!(r.recipients, vec!["o:o1", "u:u1"]);
        assert_eq!(r.duplicates, 1);
        let err =
            ok(json!({"message": msg, "recipients": [{"openid": "o1"}, {"openid": ""}, {"x": 1}]}))
                .unwrap_err();
        match err {
            ApiError::InvalidRecipients { count, listed } => {
                assert_eq!(count, 2);
                assert_eq!(listed[0].0, 1);
                assert_eq!(listed[1].0, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ok(json!({"message": {"type": "template"}, "recipients": [{"openid": "o"}]})),
            Err(ApiError::Validation { field, .. }) if field == "message.template_id"
        ));
        assert!(matches!(
            ok(json!({"message": msg, "audience": "everyone"})),
            Err(ApiError::Validation { field, .. }) if field == "audience"
        ));
        assert!(is_cursor("000001-00042"));
        assert!(!is_cursor("000001-0004x"));
        assert_eq!(
            recipient_from_key("u:abc"),
            Some(Recipient::UnionId("abc".into()))
        );
    }
}
