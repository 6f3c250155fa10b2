//! [`Forwarder::forward`]: one [`Job::ForwardEvent`] — an outbox row delivered to the sink
//! and deleted, or retried with backoff, or given up to `fwd#dead#{appid}`.

use super::{EventSink, ForwardError, ForwardedEvent, event_id, fields};
use crate::queue::{Job, JobQueue};
use crate::secrets::SecretStore;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, StateStore, StoreError, attrs};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Deliveries of one event before it is given up and its job fails for good (to the
/// dead-letter queue). With [`retry_delay`], about 80 minutes of a sink being down.
pub const FORWARD_ATTEMPTS: u32 = 12;

/// How long after failed attempt `attempt` (0-based) the next one runs: 5 s doubling, at most
/// 15 min (SQS's longest delay).
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs((5u64 << attempt.min(20)).min(900))
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
    pub(super) store: Arc<dyn StateStore>,
    pub(super) queue: Arc<dyn JobQueue>,
    pub(super) secrets: Arc<dyn SecretStore>,
    sink: Arc<dyn EventSink>,
    /// After [`FORWARD_ATTEMPTS`], give an event up to the dead-letter queue (SQS); `false`
    /// where there is none (`wxpush serve`): keep retrying every 15 minutes.
    dead_letter: bool,
    /// Outbox rows one sweep reads per app at most ([`super::SWEEP_ROWS_PER_APP`]).
    pub(super) sweep_rows: usize,
}

/// An outbox row found for a job: its key, its attributes, and whether it is a dead one.
struct Row {
    key: ItemKey,
    attrs: Attrs,
    dead: bool,
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
            sweep_rows: super::SWEEP_ROWS_PER_APP,
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
    ) -> Result<Forwarded, ForwardError> {
        let Some(row) = self.outbox_row(appid, key).await? else {
            return Ok(Forwarded::AlreadyDone);
        };
        if !row.dead && row.attrs.num("attempts").unwrap_or(0) > attempt as i64 {
            // A later attempt of this event is under way (its own job): this job is a
            // duplicate — a WeChat retry's, or a sweep's — and must not start another chain.
            return Ok(Forwarded::AlreadyDone);
        }
        let event = match self.event(appid, key, &row.attrs).await {
            Ok(event) => event,
            Err(ForwardError::Unreadable { reason, .. }) => {
                // Nothing can forward this row: keep it, dead, for an operator.
                if !row.dead {
                    self.bury(appid, &row.key, row.attrs, attempt, &reason, now)
                        .await?;
                }
                return Err(ForwardError::Unreadable {
                    appid: appid.to_string(),
                    key: key.to_string(),
                    reason,
                });
            }
            Err(other) => return Err(other),
        };
        match self.sink.deliver(&event).await {
            Ok(()) => {
                self.store
                    .record(&[Op::Delete { key: row.key }], now)
                    .await?;
                info!(appid, detail_type = %event.detail_type, event_id = %event.event_id, attempt, "event forwarded");
                crate::metrics::count("EventsForwarded", 1.0, &[("Result", "delivered")]);
                Ok(Forwarded::Delivered)
            }
            Err(e) if row.dead => Err(ForwardError::RedriveFailed(e)),
            Err(error) => {
                let next = attempt + 1;
                if self.dead_letter && (next >= FORWARD_ATTEMPTS || last_delivery) {
                    warn!(appid, event_id = %event.event_id, attempt, %error, "event forwarding gave up; the job goes to the dead-letter queue");
                    self.bury(appid, &row.key, row.attrs, next, &error, now)
                        .await?;
                    crate::metrics::count("EventsForwarded", 1.0, &[("Result", "dead")]);
                    return Err(ForwardError::GaveUp {
                        attempts: next,
                        sink: error,
                    });
                }
                let delay = retry_delay(attempt);
                warn!(appid, event_id = %event.event_id, attempt, %error, retry_in_s = delay.as_secs(), "event forwarding failed; retrying");
                self.mark(&row.key, next, &error, now + delay.as_secs() as i64, now)
                    .await?;
                let job = Job::ForwardEvent {
                    appid: appid.to_string(),
                    key: key.to_string(),
                    attempt: next,
                };
                if let Err(queue) = self.queue.enqueue_after(&job, delay).await {
                    return Err(ForwardError::RetryNotQueued { sink: error, queue });
                }
                crate::metrics::count("EventsForwarded", 1.0, &[("Result", "retrying")]);
                Ok(Forwarded::Retrying)
            }
        }
    }

    /// The live row `key` of `appid`, or its dead one (a redrive from the dead-letter queue
    /// forwards it); `None` when neither is there.
    async fn outbox_row(&self, appid: &str, key: &str) -> Result<Option<Row>, StoreError> {
        for (key, dead) in [
            (ItemKey::outbox(appid, key), false),
            (ItemKey::outbox_dead(appid, key), true),
        ] {
            if let Some(attrs) = self.store.get(&key).await? {
                return Ok(Some(Row { key, attrs, dead }));
            }
        }
        Ok(None)
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
    ) -> Result<(), StoreError> {
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
        self.store.record(&ops, now).await.map(|_| ())
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
    ) -> Result<(), StoreError> {
        let update = attrs([
            ("attempts", Attr::N(attempts as i64)),
            ("last_error", Attr::S(error.chars().take(500).collect())),
            ("next_attempt_at", Attr::N(next_at)),
        ]);
        let op = Op::Update {
            key: key.clone(),
            attrs: update,
        };
        self.store.record(&[op], now).await.map(|_| ())
    }

    /// The event of an outbox row; the unionid from the follower record when the callback
    /// did not know it (a new follower's is looked up after the event is recorded).
    async fn event(
        &self,
        appid: &str,
        key: &str,
        row: &Attrs,
    ) -> Result<ForwardedEvent, ForwardError> {
        let unreadable = |reason: String| ForwardError::Unreadable {
            appid: appid.to_string(),
            key: key.to_string(),
            reason,
        };
        let body = row
            .text("body")
            .ok_or_else(|| unreadable("the row has no body".into()))?;
        let detail_type = row
            .string("detail_type")
            .ok_or_else(|| unreadable("the row has no detail_type".into()))?;
        let message = fields::message_fields(body).map_err(unreadable)?;
        let openid = row.string("openid").unwrap_or_default();
        let mut unionid = row.string("unionid");
        if unionid.is_none() && !openid.is_empty() {
            let account = self.store.get(&ItemKey::account(appid, &openid)).await?;
            unionid = account.and_then(|a| a.string("unionid"));
        }
        Ok(ForwardedEvent {
            detail_type,
            event_id: event_id(appid, key),
            appid: appid.to_string(),
            openid,
            unionid,
            create_time: row.num("create_time").unwrap_or(0),
            message,
        })
    }
}
