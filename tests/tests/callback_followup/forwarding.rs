//! A new follower's event forwarded with its unionid, after the sweeps.

use crate::world::*;
use async_trait::async_trait;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use wxpush_shared::callback::followup::FOLLOW_UP_SWEEP_AFTER_SECS;
use wxpush_shared::callback::message::parse_message;
use wxpush_shared::callback::service::{CallbackService, FORWARD_HOLD_SECS};
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{EventSink, ForwardedEvent, Forwarder, SWEEP_AFTER_SECS};
use wxpush_shared::queue::Job;
use wxpush_shared::store::{Attr, ItemKey, Recorded};
use wxpush_tests::signed_query;

/// A sink that keeps what it gets.
#[derive(Default)]
struct KeptEvents(Mutex<Vec<ForwardedEvent>>);

#[async_trait]
impl EventSink for KeptEvents {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// With forwarding on and neither the look-up nor the forwarding queued, the sweeps queue
/// the look-up at least one run (5 min) before the forwarding: the forwarded event carries
/// the unionid.
#[tokio::test]
async fn a_new_followers_event_is_forwarded_with_its_unionid_after_the_sweeps() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let svc = CallbackService::new(w.secrets.clone(), w.faulty.clone(), w.jobs.clone())
            .with_forwarding(true);
        let sink = Arc::new(KeptEvents::default());
        let forwarder = Forwarder::new(
            w.faulty.clone(),
            w.jobs.clone(),
            w.secrets.clone(),
            sink.clone(),
        );
        let sweeper = w.completion();
        w.wechat_knows("fan-f", "U-f").await;
        let t = now_unix();
        w.jobs.fail_next(u32::MAX);
        let sub = subscribe("fan-f", t);
        let q = signed_query(TOKEN, &t.to_string(), &wxpush_tests::nonce(), &[]);
        assert_eq!(
            svc.receive(&w.appid, &q, sub.as_bytes(), t).await.unwrap(),
            Recorded::New
        );
        assert_eq!(
            w.jobs.refused.load(Ordering::SeqCst),
            2,
            "the look-up and the forwarding"
        );
        w.jobs.fail_next(0);
        let key = parse_message(&sub).unwrap().dedupe_key();
        let row = w.item(ItemKey::outbox(&w.appid, &key)).await.unwrap();
        assert_eq!(row["next_attempt_at"], Attr::N(t + FORWARD_HOLD_SECS));

        // The run that first finds the follow-up row due, and every run in the next 5 min,
        // queue no forwarding.
        let first = t + FOLLOW_UP_SWEEP_AFTER_SECS;
        assert_eq!(sweeper.sweep(first, far()).await.unwrap(), 1);
        for run in [first, first + 299] {
            assert_eq!(
                forwarder.sweep(run).await.unwrap(),
                0,
                "{backend:?} at {run}"
            );
        }
        let runner = w.runner(FOLLOW_UP_SWEEP_AFTER_SECS);
        assert_eq!(w.run_look_ups(&runner).await, ["fan-f"]);
        w.assert_completed("fan-f", "U-f").await;
        let due = t + FORWARD_HOLD_SECS + SWEEP_AFTER_SECS;
        assert_eq!(forwarder.sweep(due).await.unwrap(), 1);
        let Job::ForwardEvent {
            appid,
            key,
            attempt,
        } = w.jobs.take().remove(0)
        else {
            panic!("a forwarding job")
        };
        forwarder
            .forward(&appid, &key, attempt, false, due)
            .await
            .unwrap();
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].unionid.as_deref(), Some("U-f"), "{backend:?}");
    }
}
