//! Event forwarding: every callback event wxpush records goes on to the company's services —
//! an EventBridge bus on AWS (IAM-authenticated), a webhook in `wxpush serve --forward URL`
//! (each delivery signed: [`webhook`]) — at least once, and only after it is durably recorded.
//!
//! The callback writes an outbox row (`fwd#{appid}` / the event's dedupe key, a long one in
//! its short form) in the same transaction as the event, then queues a [`Job::ForwardEvent`].
//! The job delivers the row to the [`EventSink`] and deletes it. A sink that is down gets the
//! event again with backoff (the job re-queues itself, [`FORWARD_ATTEMPTS`] times in all);
//! after that the row moves to `fwd#dead#{appid}` and the job goes to the dead-letter queue,
//! from where a redrive forwards it. Without a dead-letter queue (`wxpush serve`) it is
//! retried every 15 minutes instead. A job that was never queued (the queue failed after the
//! event was recorded) or was lost is found by the scheduled sweep ([`Job::SweepOutbox`]),
//! which queues every row older than [`SWEEP_AFTER_SECS`] that is not waiting for a retry. A
//! job for an attempt older than the row's is a duplicate and does nothing.
//!
//! At least once: a redelivered job, or a sweep racing a slow delivery, can forward an event
//! twice. Consumers dedupe by `event_id` (stable for one event across every delivery).

pub mod fields;
pub mod webhook;

pub use webhook::{
    MIN_SECRET_LEN, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS, WEBHOOK_TIMEOUT, WebhookSink,
    WebhookTarget, check_webhook_url, signature_header,
};

use crate::callback::message::InboundMessage;
use crate::queue::{Job, JobQueue};
use crate::secrets::SecretStore;
use crate::store::{Attr, Attrs, ItemKey, Op, StateStore, attrs};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The `source` of every event wxpush puts on a bus.
pub const SOURCE: &str = "wxpush";
/// Deliveries of one event before it is given up and its job fails for good (to the
/// dead-letter queue). With [`retry_delay`], about 80 minutes of a sink being down.
pub const FORWARD_ATTEMPTS: u32 = 12;
/// How old an outbox row (or its last failed attempt) must be before the sweep queues it
/// again: well past the time a queued job takes to run.
pub const SWEEP_AFTER_SECS: i64 = 120;
/// Outbox rows the sweep reads per app per run at most (it runs every few minutes).
pub const SWEEP_ROWS_PER_APP: usize = 5_000;

/// How long after failed attempt `attempt` (0-based) the next one runs: 5 s doubling, at most
/// 15 min (SQS's longest delay).
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs((5u64 << attempt.min(20)).min(900))
}

/// `wechat.<MsgType>`, or `wechat.event.<Event>` for events.
pub fn detail_type(msg_type: &str, event: Option<&str>) -> String {
    match event {
        Some(e) if msg_type == "event" => format!("wechat.event.{e}"),
        _ => format!("wechat.{msg_type}"),
    }
}

/// The outbox row of an event, written in the event's own transaction.
pub fn outbox_op(
    appid: &str,
    msg: &InboundMessage,
    body: &str,
    unionid: Option<&str>,
    now: i64,
) -> Op {
    let s = |v: &str| Attr::S(v.to_string());
    let mut row = attrs([
        ("appid", s(appid)),
        ("openid", s(&msg.from_user_name)),
        ("create_time", Attr::N(msg.create_time)),
        ("detail_type", s(&detail_type(&msg.msg_type, msg.event()))),
        ("body", s(body)),
        ("created_at", Attr::N(now)),
        ("attempts", Attr::N(0)),
    ]);
    if let Some(u) = unionid {
        row.insert("unionid".into(), s(u));
    }
    let (key, full) = (msg.dedupe_key(), msg.full_dedupe_key());
    if full != key {
        // The row's sort key is a short form ([`crate::store::key_part`]): the whole key here.
        row.insert("dedupe_key".into(), s(&full));
    }
    Op::Insert {
        key: ItemKey::outbox(appid, &key),
        attrs: row,
    }
}

/// What a sink receives: EventBridge's `detail` (with `detail_type` as its `DetailType`), or
/// the webhook's JSON body (with `detail_type` in the `X-Wxpush-Detail-Type` header).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForwardedEvent {
    #[serde(skip)]
    pub detail_type: String,
    /// Stable for one event across every delivery: what consumers dedupe by.
    pub event_id: String,
    pub appid: String,
    pub openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub create_time: i64,
    /// Every field of the push, decrypted ([`fields::message_fields`]).
    pub message: Map<String, Value>,
}

impl ForwardedEvent {
    pub fn detail_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where forwarded events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// `Ok` once the sink has the event; `Err` says why not (no secret in it).
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String>;
}

/// An EventBridge bus (`PutEvents`, one entry; a failed entry is an error).
pub struct EventBridgeSink {
    client: crate::aws::SdkClient<aws_sdk_eventbridge::Client>,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(
        client: impl Into<crate::aws::SdkClient<aws_sdk_eventbridge::Client>>,
        bus: impl Into<String>,
    ) -> EventBridgeSink {
        EventBridgeSink {
            client: client.into(),
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        use aws_sdk_eventbridge::error::DisplayErrorContext;
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .detail(event.detail_json())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| format!("PutEvents: {}", DisplayErrorContext(e)))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .find_map(|e| e.error_code().map(str::to_string))
                .unwrap_or_else(|| "no error code".into());
            return Err(format!("PutEvents refused the event: {why}"));
        }
        Ok(())
    }
}

/// Why an outbox row could not become an event: for now (the store), or for good.
enum EventError {
    Store(String),
    Unreadable(String),
}

/// What one [`Job::ForwardEvent`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    Delivered,
    /// No outbox row: an earlier delivery forwarded it.
    AlreadyDone,
    /// The sink failed; the job is queued again for later.
    Retrying,
}

/// Runs the forwarding jobs: [`Forwarder::forward`] and [`Forwarder::sweep`].
pub struct Forwarder {
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    secrets: Arc<dyn SecretStore>,
    sink: Arc<dyn EventSink>,
    /// After [`FORWARD_ATTEMPTS`], give an event up to the dead-letter queue (SQS); `false`
    /// where there is none (`wxpush serve`): keep retrying every 15 minutes.
    dead_letter: bool,
    /// Outbox rows one sweep reads per app at most ([`SWEEP_ROWS_PER_APP`]).
    sweep_rows: usize,
}

fn text(row: &Attrs, name: &str) -> Option<String> {
    match row.get(name) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn num(row: &Attrs, name: &str) -> Option<i64> {
    match row.get(name) {
        Some(Attr::N(n)) => Some(*n),
        _ => None,
    }
}

/// The event's id: the SHA-1 of its appid and dedupe key, hex.
pub fn event_id(appid: &str, dedupe_key: &str) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(appid.as_bytes());
    h.update([0u8]);
    h.update(dedupe_key.as_bytes());
    hex::encode(h.finalize())
}

impl Forwarder {
    pub fn new(
        store: Arc<dyn StateStore>,
        queue: Arc<dyn JobQueue>,
        secrets: Arc<dyn SecretStore>,
        sink: Arc<dyn EventSink>,
    ) -> Forwarder {
        Forwarder {
            store,
            queue,
            secrets,
            sink,
            dead_letter: true,
            sweep_rows: SWEEP_ROWS_PER_APP,
        }
    }

    /// Reads at most `rows` outbox rows per app and sweep (tests of the sweep's cursor).
    pub fn with_sweep_rows(mut self, rows: usize) -> Forwarder {
        self.sweep_rows = rows.max(1);
        self
    }

    /// No dead-letter queue behind this forwarder (the local server): an event is retried
    /// every 15 minutes for as long as it takes, never given up.
    pub fn without_dead_letter(mut self) -> Forwarder {
        self.dead_letter = false;
        self
    }

    /// Forwards the outbox row `key` of `appid` (attempt `attempt`, 0-based), then deletes it.
    /// `Err` means the job must fail (the event was given up, or the store or queue failed).
    pub async fn forward(
        &self,
        appid: &str,
        key: &str,
        attempt: u32,
        last_delivery: bool,
        now: i64,
    ) -> Result<Forwarded, String> {
        let get = |k: ItemKey| async move {
            let row = self.store.get(&k).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(row.map(|r| (k, r)))
        };
        // A live row, or a dead one (a redrive from the dead-letter queue forwards it).
        let (row_key, row, dead) = match get(ItemKey::outbox(appid, key)).await? {
            Some((k, r)) => (k, r, false),
            None => match get(ItemKey::outbox_dead(appid, key)).await? {
                Some((k, r)) => (k, r, true),
                None => return Ok(Forwarded::AlreadyDone),
            },
        };
        if !dead && num(&row, "attempts").unwrap_or(0) > attempt as i64 {
            // A later attempt of this event is under way (its own job): this job is a
            // duplicate — a WeChat retry's, or a sweep's — and must not start another chain.
            return Ok(Forwarded::AlreadyDone);
        }
        let event = match self.event(appid, key, &row).await {
            Ok(event) => event,
            Err(EventError::Store(e)) => return Err(e),
            Err(EventError::Unreadable(e)) => {
                // Nothing can forward this row: keep it, dead, for an operator.
                if !dead {
                    self.bury(appid, &row_key, row, attempt, &e, now).await?;
                }
                return Err(format!(
                    "outbox row {key} of {appid} cannot be forwarded: {e}"
                ));
            }
        };
        match self.sink.deliver(&event).await {
            Ok(()) => {
                self.store
                    .record(&[Op::Delete { key: row_key }], now)
                    .await
                    .map_err(|e| e.to_string())?;
                info!(appid, detail_type = %event.detail_type, event_id = %event.event_id, attempt, "event forwarded");
                crate::metrics::count("EventsForwarded", 1.0, &[("Result", "delivered")]);
                Ok(Forwarded::Delivered)
            }
            Err(e) if dead => Err(format!("a dead event's redrive failed again: {e}")),
            Err(e) => {
                let next = attempt + 1;
                if self.dead_letter && (next >= FORWARD_ATTEMPTS || last_delivery) {
                    warn!(appid, event_id = %event.event_id, attempt, error = %e, "event forwarding gave up; the job goes to the dead-letter queue");
                    self.bury(appid, &row_key, row, next, &e, now).await?;
                    crate::metrics::count("EventsForwarded", 1.0, &[("Result", "dead")]);
                    return Err(format!("forwarding failed {next} times: {e}"));
                }
                let delay = retry_delay(attempt);
                warn!(appid, event_id = %event.event_id, attempt, error = %e, retry_in_s = delay.as_secs(), "event forwarding failed; retrying");
                self.mark(&row_key, next, &e, now + delay.as_secs() as i64, now)
                    .await?;
                let job = Job::ForwardEvent {
                    appid: appid.to_string(),
                    key: key.to_string(),
                    attempt: next,
                };
                self.queue
                    .enqueue_after(&job, delay)
                    .await
                    .map_err(|q| format!("{e}; and the retry could not be queued: {q}"))?;
                crate::metrics::count("EventsForwarded", 1.0, &[("Result", "retrying")]);
                Ok(Forwarded::Retrying)
            }
        }
    }

    /// Moves a row that will not be retried out of the live outbox (so the sweep never reads
    /// it again) into `fwd#dead#{appid}`, with why, in one transaction.
    async fn bury(
        &self,
        appid: &str,
        key: &ItemKey,
        mut row: Attrs,
        attempts: u32,
        error: &str,
        now: i64,
    ) -> Result<(), String> {
        row.insert("attempts".into(), Attr::N(attempts as i64));
        row.insert(
            "last_error".into(),
            Attr::S(error.chars().take(500).collect()),
        );
        row.insert("dead_at".into(), Attr::N(now));
        let ops = [
            Op::Set {
                key: ItemKey::outbox_dead(appid, &key.sk),
                attrs: row,
            },
            Op::Delete { key: key.clone() },
        ];
        self.store
            .record(&ops, now)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Records a failed attempt on the row: how many, why, and when the next one is due. A
    /// row already gone (forwarded meanwhile) is left gone.
    async fn mark(
        &self,
        key: &ItemKey,
        attempts: u32,
        error: &str,
        next_at: i64,
        now: i64,
    ) -> Result<(), String> {
        let update = attrs([
            ("attempts", Attr::N(attempts as i64)),
            ("last_error", Attr::S(error.chars().take(500).collect())),
            ("next_attempt_at", Attr::N(next_at)),
        ]);
        self.store
            .record(
                &[Op::Update {
                    key: key.clone(),
                    attrs: update,
                }],
                now,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The event of an outbox row; the unionid from the follower record when the callback
    /// did not know it (a new follower's is looked up after the event is recorded).
    async fn event(
        &self,
        appid: &str,
        key: &str,
        row: &Attrs,
    ) -> Result<ForwardedEvent, EventError> {
        let unreadable = |m: &str| EventError::Unreadable(m.to_string());
        let body = text(row, "body").ok_or_else(|| unreadable("the row has no body"))?;
        let detail_type =
            text(row, "detail_type").ok_or_else(|| unreadable("the row has no detail_type"))?;
        let message = fields::message_fields(&body).map_err(EventError::Unreadable)?;
        let openid = text(row, "openid").unwrap_or_default();
        let mut unionid = text(row, "unionid");
        if unionid.is_none() && !openid.is_empty() {
            let account = self
                .store
                .get(&ItemKey::account(appid, &openid))
                .await
                .map_err(|e| EventError::Store(e.to_string()))?;
            unionid = account.and_then(|a| text(&a, "unionid"));
        }
        Ok(ForwardedEvent {
            detail_type,
            event_id: event_id(appid, key),
            appid: appid.to_string(),
            openid,
            unionid,
            create_time: num(row, "create_time").unwrap_or(0),
            message,
        })
    }

    /// Queues a forwarding job for outbox rows of every configured app that are older than
    /// [`SWEEP_AFTER_SECS`] and not waiting for a retry. Each run reads at most
    /// [`SWEEP_ROWS_PER_APP`] rows per app from where the last run stopped (a cursor per app),
    /// so a long outbox is covered over a few runs. Dead rows are elsewhere
    /// (`fwd#dead#{appid}`) and never read. Answers how many jobs it queued.
    pub async fn sweep(&self, now: i64) -> Result<usize, String> {
        let appids = self.secrets.list_apps().await.map_err(|e| e.to_string())?;
        let mut queued = 0;
        for appid in appids {
            let cursor_key = ItemKey::outbox_sweep(&appid);
            let mut after = self
                .store
                .get(&cursor_key)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|c| text(&c, "after"));
            let mut read = 0;
            let mut jobs = Vec::new();
            // Bounded: SWEEP_ROWS_PER_APP rows at most; the next sweep goes on from `after`.
            loop {
                let page = self
                    .store
                    .query_page(
                        &ItemKey::outbox_pk(&appid),
                        after.as_deref(),
                        (self.sweep_rows - read.min(self.sweep_rows)).clamp(1, 1_000),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                read += page.rows.len().max(1);
                for (sk, row) in &page.rows {
                    let due = num(row, "next_attempt_at")
                        .or_else(|| num(row, "created_at"))
                        .unwrap_or(0);
                    if due <= now - SWEEP_AFTER_SECS {
                        jobs.push(Job::ForwardEvent {
                            appid: appid.clone(),
                            key: sk.clone(),
                            attempt: num(row, "attempts").unwrap_or(0).max(0) as u32,
                        });
                    }
                }
                after = page.next_after;
                if after.is_none() || read >= self.sweep_rows {
                    break;
                }
            }
            if !jobs.is_empty() {
                self.queue
                    .enqueue_many(&jobs)
                    .await
                    .map_err(|e| e.to_string())?;
                info!(
                    appid,
                    rows = jobs.len(),
                    "outbox sweep queued events to forward"
                );
                queued += jobs.len();
            }
            let cursor = match after {
                Some(sk) => attrs([("after", Attr::S(sk))]),
                None => Attrs::new(),
            };
            self.store
                .record(
                    &[Op::Set {
                        key: cursor_key,
                        attrs: cursor,
                    }],
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_types_and_delays() {
        assert_eq!(detail_type("text", None), "wechat.text");
        assert_eq!(
            detail_type("event", Some("subscribe")),
            "wechat.event.subscribe"
        );
        assert_eq!(retry_delay(0), Duration::from_secs(5));
        assert_eq!(retry_delay(3), Duration::from_secs(40));
        assert_eq!(retry_delay(40), Duration::from_secs(900));
        let total: u64 = (0..FORWARD_ATTEMPTS - 1)
            .map(|a| retry_delay(a).as_secs())
            .sum();
        assert!((3_600..6_000).contains(&total), "{total}");
        assert_eq!(event_id("wx1", "k").len(), 40);
        assert_ne!(event_id("wx1", "k"), event_id("wx2", "k"));
    }
}
