//! The jobs queue down while WeChat tries a new follower's `subscribe`, alone and with a
//! failed first record.

use crate::world::*;
use std::sync::atomic::Ordering;
use wxpush_shared::callback::message::parse_message;
use wxpush_shared::clock::now_unix;
use wxpush_shared::queue::Job;
use wxpush_shared::store::{Attr, ItemKey, Recorded};
use wxpush_tests::faults::{Call, Fault};

/// (a) SQS refuses every enqueue while WeChat tries a new follower's `subscribe` (its first
/// try, and two more as if the answers were lost): each try is answered 200 `success`, the
/// event and the pending follower are recorded once. Then SQS is back: the scheduled sweep,
/// run by the job runner as the worker runs it, queues the look-up, which fills the unionid
/// and deletes the follow-up row.
#[tokio::test]
async fn a_subscribe_is_recorded_and_completed_though_the_queue_is_down_for_all_three_tries() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.wechat_knows("fan-a", "U-a").await;
        w.jobs.fail_next(u32::MAX);
        let sub = subscribe("fan-a", now_unix());
        for attempt in 1..=3 {
            assert_eq!(
                w.push_http(&sub).await,
                (200, "success".to_string()),
                "{backend:?}: try {attempt}"
            );
        }
        assert!(w.jobs.is_empty());
        assert!(
            w.jobs.refused.load(Ordering::SeqCst) >= 3,
            "{backend:?}: the queue was asked"
        );
        assert_eq!(
            w.user_info_calls(),
            0,
            "the callback never waits for WeChat"
        );
        let account = w.item(ItemKey::account(&w.appid, "fan-a")).await.unwrap();
        assert_eq!(account["unionid_pending"], Attr::Bool(true));
        assert_eq!(account["subscribed"], Attr::Bool(true));
        assert_eq!(w.follow_ups().await, ["fan-a"], "{backend:?}");

        // The queue is back; the sweep's schedule queues it (the job comes from SQS).
        w.jobs.fail_next(0);
        let runner = w.runner(0);
        runner.run(&Job::SweepOutbox, far()).await.unwrap();
        assert_eq!(w.run_look_ups(&runner).await, ["fan-a"], "{backend:?}");
        w.assert_completed("fan-a", "U-a").await;
        assert_eq!(w.user_info_calls(), 1);
        // Nothing is left to sweep.
        runner.run(&Job::SweepOutbox, far()).await.unwrap();
        assert!(w.jobs.is_empty(), "{backend:?}");
    }
}

/// (b) Faults in a row for one new follower: the queue refuses throughout, and the first
/// try's transaction fails — before it is applied, or after (the answer lost). WeChat's
/// next try records it once or finds it recorded, and is told `success`; the look-up still
/// runs (from the sweep) and the follower completes.
#[tokio::test]
async fn a_failed_first_record_and_a_refusing_queue_still_end_recorded_once_and_completed() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let runner = w.runner(0);
        // WeChat's tries 5 s apart, all before the sweep runs (on the wall clock).
        let t = now_unix() - 30;
        // (follower, the first try's fault, what the second try finds, when the event was
        // written)
        for (openid, fault, second, written_at) in [
            (
                "fan-before",
                Fault::Before("TransactionConflict"),
                Recorded::New,
                t + 5,
            ),
            (
                "fan-after",
                Fault::After("timeout after commit"),
                Recorded::Duplicate,
                t,
            ),
        ] {
            let unionid = format!("U-{openid}");
            w.wechat_knows(openid, &unionid).await;
            w.jobs.fail_next(u32::MAX);
            w.faults.script(Call::Record, "evt#", fault.clone(), 0, 1);
            let sub = subscribe(openid, t);
            let first = w.push_at(&sub, t).await.unwrap_err();
            assert_eq!(first.status().as_u16(), 503, "{backend:?} {fault:?}");
            // WeChat's second try: recorded now, or found recorded.
            assert_eq!(
                w.push_at(&sub, t + 5).await.unwrap(),
                second,
                "{backend:?} {fault:?}"
            );
            assert!(w.jobs.is_empty());
            // Recorded once: the event as the one try that wrote it left it.
            let key = parse_message(&sub).unwrap().dedupe_key();
            let event = w.item(ItemKey::event(&w.appid, &key)).await.unwrap();
            assert_eq!(
                event["received_at"],
                Attr::N(written_at),
                "{backend:?} {fault:?}"
            );
            assert!(w.follow_ups().await.contains(&openid.to_string()));

            w.jobs.fail_next(0);
            runner.run(&Job::SweepOutbox, far()).await.unwrap();
            assert_eq!(
                w.run_look_ups(&runner).await,
                [openid],
                "{backend:?} {fault:?}"
            );
            w.assert_completed(openid, &unionid).await;
            // A third try (or a redelivered job) changes nothing and asks WeChat nothing.
            let calls = w.user_info_calls();
            assert_eq!(w.push_at(&sub, t + 10).await.unwrap(), Recorded::Duplicate);
            assert!(w.run_look_ups(&runner).await.is_empty());
            assert_eq!(w.user_info_calls(), calls);
        }
        assert_eq!(
            w.user_info_calls(),
            2,
            "{backend:?}: one look-up per follower"
        );
    }
}
