//! Event forwarding: every callback event wxpush records goes on to the company's services —
//! an EventBridge bus on AWS (IAM-authenticated), a webhook in `wxpush serve --forward URL`
//! (each delivery signed: [`webhook`]) — at least once, and only after it is durably recorded.
//! Forwarding knows nothing of the callback: it reads the rows the callback wrote.
//!
//! The callback writes an outbox row ([`OutboxEntry`]: `fwd#{appid}` / the event's dedupe
//! key, a long one in its short form) in the same transaction as the event, then queues a
//! [`Job::ForwardEvent`].
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
//!
//! [`Job::ForwardEvent`]: crate::queue::Job::ForwardEvent
//! [`Job::SweepOutbox`]: crate::queue::Job::SweepOutbox

mod error;
mod event;
mod eventbridge;
pub mod fields;
mod forwarder;
mod outbox;
mod sweep;
pub mod webhook;

pub use error::ForwardError;
pub use event::{EventSink, ForwardedEvent, event_id};
pub use eventbridge::{EventBridgeSink, SOURCE};
pub use forwarder::{FORWARD_ATTEMPTS, Forwarded, Forwarder, retry_delay};
pub use outbox::{OutboxEntry, detail_type};
pub use sweep::{SWEEP_AFTER_SECS, SWEEP_ROWS_PER_APP};
pub use webhook::{
    MIN_SECRET_LEN, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS, WEBHOOK_TIMEOUT, WebhookSink,
    WebhookTarget, check_webhook_url, signature_header,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
