//! A sink that is down: retries with backoff, the dead-letter queue and its redrive, duplicate
//! jobs, and the sweep's cursor.

use crate::world::{World, text_message, world};
use std::sync::atomic::Ordering;
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{FORWARD_ATTEMPTS, Forwarded, Forwarder, SWEEP_AFTER_SECS};
use wxpush_shared::queue::Job;
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_tests::faults::{Call, Fault};

#[tokio::test]
async fn a_sink_down_for_a_while_gets_the_event_later_and_a_failed_delete_only_repeats_it() {
    let w = world();
    w.push(&text_message("o-s", 30)).await.unwrap();
    // The bus is down for three attempts; each failure queues the next attempt (with its
    // backoff as the queue delay) and records when it is due, so the sweep leaves it alone.
    w.sink.fail_next.store(3, Ordering::SeqCst);
    let now = now_unix();
    let first = w.queue.take();
    let Job::ForwardEvent { key, .. } = &first[0] else {
        panic!("{first:?}")
    };
    let key = key.clone();
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &key, 0, false, now)
            .await
            .unwrap(),
        Forwarded::Retrying
    );
    let row = w
        .store
        .get(&ItemKey::outbox(&w.appid, &key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get("attempts"), Some(&Attr::N(1)));
    assert_eq!(row.get("next_attempt_at"), Some(&Attr::N(now + 5)));
    assert_eq!(
        w.forwarder.sweep(now + 5).await.unwrap(),
        0,
        "not yet due for a sweep"
    );
    // Then the outbox delete fails after the sink took it: the job fails, runs again, and
    // forwards a second time (at least once), then the row is gone.
    w.faults.script(
        Call::Record,
        "fwd#",
        Fault::Before("ThrottlingException"),
        2,
        1,
    );
    let outcomes = w.drain(now).await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(
        outcomes[..2],
        [Ok(Forwarded::Retrying), Ok(Forwarded::Retrying)]
    );
    let err = outcomes[2].as_ref().unwrap_err();
    assert!(err.contains("ThrottlingException"), "{err}");
    assert_eq!(w.sink.got().len(), 1, "delivered once so far");
    // The failed job is redelivered by the queue.
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &key, 3, false, now)
            .await
            .unwrap(),
        Forwarded::Delivered
    );
    assert_eq!(
        w.sink.got().len(),
        2,
        "a redelivery forwards again (documented)"
    );
    assert_eq!(
        w.sink.got()[0].event_id,
        w.sink.got()[1].event_id,
        "consumers dedupe by event_id"
    );
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &key, 0, false, now)
            .await
            .unwrap(),
        Forwarded::AlreadyDone
    );
    assert!(w.outbox().await.is_empty());
}

#[tokio::test]
async fn a_sink_down_for_good_ends_in_the_dead_letter_queue_and_a_redrive_forwards_it() {
    let w = world();
    w.push(&text_message("o-d", 40)).await.unwrap();
    w.sink.fail_next.store(u32::MAX, Ordering::SeqCst);
    let now = now_unix();
    let outcomes = w.drain(now).await;
    assert_eq!(outcomes.len(), FORWARD_ATTEMPTS as usize);
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| *o == Ok(Forwarded::Retrying))
    );
    let last = outcomes.last().unwrap().as_ref().unwrap_err();
    assert!(last.contains("forwarding failed 12 times"), "{last}");
    // The event is kept, out of the live outbox (the sweep never reads it again).
    assert!(w.outbox().await.is_empty());
    let dead = w.dead().await;
    assert_eq!(dead.len(), 1, "the event is kept");
    assert_eq!(dead[0].1.get("attempts"), Some(&Attr::N(12)));
    assert!(dead[0].1.contains_key("body"));
    assert!(matches!(dead[0].1.get("last_error"), Some(Attr::S(e)) if e.contains("bus is down")));
    assert_eq!(w.forwarder.sweep(now + 86_400).await.unwrap(), 0);
    // A redrive while the bus is still down fails again and keeps the event.
    assert!(
        w.forwarder
            .forward(&w.appid, &dead[0].0, FORWARD_ATTEMPTS, false, now + 90_000)
            .await
            .is_err()
    );
    assert_eq!(w.dead().await.len(), 1);
    // The bus is back; the operator redrives the dead-letter queue: the same job runs.
    w.sink.fail_next.store(0, Ordering::SeqCst);
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &dead[0].0, FORWARD_ATTEMPTS, false, now + 90_000)
            .await
            .unwrap(),
        Forwarded::Delivered
    );
    assert_eq!(w.sink.got().len(), 1);
    assert!(w.outbox().await.is_empty() && w.dead().await.is_empty());
}

#[tokio::test]
async fn the_last_queue_delivery_gives_the_event_up_at_once() {
    let w = world();
    w.push(&text_message("o-l", 50)).await.unwrap();
    let Job::ForwardEvent { key, .. } = w.queue.take().remove(0) else {
        panic!()
    };
    w.sink.fail_next.store(1, Ordering::SeqCst);
    assert!(
        w.forwarder
            .forward(&w.appid, &key, 0, true, now_unix())
            .await
            .is_err()
    );
    assert!(w.outbox().await.is_empty());
    assert_eq!(w.dead().await.len(), 1);
    assert!(
        w.queue.is_empty(),
        "no retry queued behind the dead-letter queue's back"
    );
}

#[tokio::test]
async fn without_a_dead_letter_queue_an_event_is_retried_until_it_goes_through() {
    let mut w = world();
    w.forwarder = Forwarder::new(
        w.faulty.clone(),
        w.queue.clone(),
        w.secrets.clone(),
        w.sink.clone(),
    )
    .without_dead_letter();
    w.push(&text_message("o-local", 55)).await.unwrap();
    w.sink.fail_next.store(30, Ordering::SeqCst);
    let outcomes = w.drain(now_unix()).await;
    assert_eq!(outcomes.len(), 31, "30 failures, then delivered");
    assert!(outcomes[..30].iter().all(|o| *o == Ok(Forwarded::Retrying)));
    assert_eq!(outcomes[30], Ok(Forwarded::Delivered));
    assert!(w.dead().await.is_empty());
}

#[tokio::test]
async fn duplicate_jobs_start_no_second_retry_chain_and_the_sweep_goes_on_where_it_stopped() {
    let w = world();
    w.push(&text_message("o-dup", 60)).await.unwrap();
    let Job::ForwardEvent { key, .. } = w.queue.take().remove(0) else {
        panic!()
    };
    let now = now_unix();
    w.sink.fail_next.store(2, Ordering::SeqCst);
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &key, 0, false, now)
            .await
            .unwrap(),
        Forwarded::Retrying
    );
    // WeChat's retry queued another attempt-0 job: the chain at attempt 1 owns the event.
    assert_eq!(
        w.forwarder
            .forward(&w.appid, &key, 0, false, now)
            .await
            .unwrap(),
        Forwarded::AlreadyDone
    );
    assert_eq!(w.sink.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        w.drain(now).await,
        vec![Ok(Forwarded::Retrying), Ok(Forwarded::Delivered)]
    );

    // 12 events whose jobs were lost; the sweep reads a bounded number of rows a run (5 here)
    // and continues from its cursor, so every row is reached.
    let w = World {
        forwarder: Forwarder::new(
            w.faulty.clone(),
            w.queue.clone(),
            w.secrets.clone(),
            w.sink.clone(),
        )
        .with_sweep_rows(5),
        ..w
    };
    w.queue.fail_next(12);
    for i in 0..12 {
        w.push(&text_message(&format!("o-lost{i:02}"), 100 + i))
            .await
            .unwrap();
    }
    assert!(w.queue.is_empty());
    assert_eq!(w.outbox().await.len(), 12);
    let mut swept = 0;
    for _ in 0..5 {
        swept += w.forwarder.sweep(now + SWEEP_AFTER_SECS).await.unwrap();
    }
    assert!(swept >= 12, "{swept}");
    let delivered = w.drain(now + SWEEP_AFTER_SECS).await;
    assert_eq!(
        delivered
            .iter()
            .filter(|o| **o == Ok(Forwarded::Delivered))
            .count(),
        12
    );
    assert!(w.outbox().await.is_empty());
}
