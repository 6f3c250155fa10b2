//! The callback storm: WeChat's own behaviour (3 attempts, the same body), with each
//! event's writes failing before or after they commit, reads failing, and the follow-up
//! queue refusing.

use crate::{OA, Stack, size, stack};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_tests::faults::{Call, Fault, RecordingQueue};
use wxpush_tests::{job_runner, signed_query};

/// The event pushed for follower `i`: a mix of what WeChat sends.
fn event_body(i: usize, t: i64) -> String {
    let from = format!("f{i}");
    let (kind, extra) = match i % 5 {
        0 => ("event", "<Event>subscribe</Event><EventKey></EventKey>".to_string()),
        1 => (
            "event",
            "<Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>TPL_A</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent>".to_string(),
        ),
        2 => (
            "event",
            format!("<Event>TEMPLATESENDJOBFINISH</Event><MsgID>{}</MsgID><Status>success</Status>", 700_000 + i),
        ),
        3 => ("text", format!("<Content>你好 {i}</Content><MsgId>{}</MsgId>", 900_000 + i)),
        _ => ("event", "<Event>CLICK</Event><EventKey>MENU_1</EventKey>".to_string()),
    };
    format!(
        "<xml><ToUserName>gh_storm</ToUserName><FromUserName>{from}</FromUserName><CreateTime>{t}</CreateTime><MsgType>{kind}</MsgType>{extra}</xml>"
    )
}

/// The dedupe key of event `i` (what WeChat's retries share).
fn event_key(i: usize, t: i64) -> String {
    let from = format!("f{i}");
    match i % 5 {
        3 => format!("msg|{}", 900_000 + i),
        2 => format!("evt|{from}|{t}|TEMPLATESENDJOBFINISH||{}", 700_000 + i),
        0 => format!("evt|{from}|{t}|subscribe||"),
        1 => format!("evt|{from}|{t}|subscribe_msg_popup_event||"),
        _ => format!("evt|{from}|{t}|CLICK|MENU_1|"),
    }
}

/// Faults aimed per event, at most two per event (WeChat makes three attempts): a write
/// refused before it commits, a write that commits but answers an error, a failed read,
/// two failures in a row, a queue that refuses the follow-up job. Answers how many events
/// were aimed at.
fn aim_faults(s: &Stack, jobs: &RecordingQueue, n: usize, t: i64) -> usize {
    let mut aimed = 0;
    for i in 0..n {
        let pk = ItemKey::event(OA, &event_key(i, t)).pk;
        let throttled = Fault::Before("ThrottlingException");
        match i % 7 {
            0 => s.state_faults.script_exact(
                Call::Record,
                &pk,
                vec![Fault::Before("TransactionConflict")],
            ),
            1 => s.state_faults.script_exact(
                Call::Record,
                &pk,
                vec![Fault::After("timeout after commit")],
            ),
            2 => s.state_faults.script_exact(Call::Get, &pk, vec![throttled]),
            3 => s
                .state_faults
                .script_exact(Call::Record, &pk, vec![throttled.clone(), throttled]),
            4 if i % 5 == 0 => jobs.fail_once_for(&format!("f{i}")),
            _ => continue,
        }
        aimed += 1;
    }
    aimed
}

/// Every event pushed by 32 senders at once, as WeChat pushes: three attempts in all, the
/// same body each time. Answers (event, attempts, acknowledged) for each.
async fn push_all(callback: &Arc<CallbackService>, n: usize, t: i64) -> Vec<(usize, usize, bool)> {
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<std::sync::Mutex<Vec<(usize, usize, bool)>>> = Default::default();
    let mut workers = vec![];
    for _ in 0..32 {
        let (callback, next, outcomes) = (callback.clone(), next.clone(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let xml = event_body(i, t);
                let mut acked = false;
                let mut attempts = 0;
                for _ in 0..3 {
                    attempts += 1;
                    let now = now_unix();
                    let q = signed_query("cbtoken", &now.to_string(), &i.to_string(), &[]);
                    if callback.receive(OA, &q, xml.as_bytes(), now).await.is_ok() {
                        acked = true;
                        break;
                    }
                }
                outcomes.lock().unwrap().push((i, attempts, acked));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    std::mem::take(&mut *outcomes.lock().unwrap())
}

/// The follow-up jobs (new followers' unionids), as the batch-worker would run them, then
/// the look-ups whose job the queue refused, which the scheduled sweep queues. Answers
/// (queued, swept, run).
async fn run_follow_ups(s: &Stack, jobs: &Arc<RecordingQueue>) -> (usize, usize, usize) {
    let runner = job_runner(s.tokens.clone(), s.store.clone(), jobs.clone());
    let queued = jobs.len();
    let mut ran = wxpush_tests::run_jobs(jobs, &runner).await;
    let sweep_at = now_unix() + wxpush_shared::callback::followup::FOLLOW_UP_SWEEP_AFTER_SECS + 1;
    let swept = wxpush_shared::callback::followup::FollowerCompletion::new(
        s.tokens.clone(),
        s.store.clone(),
    )
    .with_queue(jobs.clone())
    .sweep(sweep_at, Instant::now() + Duration::from_secs(60))
    .await
    .unwrap();
    ran += wxpush_tests::run_jobs(jobs, &runner).await;
    (queued, swept, ran)
}

/// Each event recorded and its effects applied exactly once. Answers (lost, applied twice).
async fn lost_and_twice(s: &Stack, n: usize, t: i64) -> (usize, usize) {
    let (mut lost, mut twice) = (0, 0);
    for i in 0..n {
        let from = format!("f{i}");
        if s.store
            .get(&ItemKey::event(OA, &event_key(i, t)))
            .await
            .unwrap()
            .is_none()
        {
            lost += 1;
            continue;
        }
        // Effects applied exactly once.
        match i % 5 {
            1 => {
                let grant = s
                    .store
                    .get(&ItemKey::grant(OA, &from, "TPL_A"))
                    .await
                    .unwrap()
                    .unwrap();
                if grant["available"] != Attr::N(1) {
                    twice += 1;
                }
            }
            0 => {
                let account = s
                    .store
                    .get(&ItemKey::account(OA, &from))
                    .await
                    .unwrap()
                    .unwrap();
                if account["unionid"] != Attr::S(format!("U{i}")) {
                    lost += 1;
                }
            }
            2 => {
                let d = s
                    .store
                    .get(&ItemKey::delivery(OA, &(700_000 + i).to_string()))
                    .await
                    .unwrap();
                if d.is_none() {
                    lost += 1;
                }
            }
            _ => {}
        }
    }
    (lost, twice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callbacks_through_store_faults_each_recorded_once() {
    let n = size();
    let s = stack().await;
    let jobs = RecordingQueue::new();
    let callback = Arc::new(CallbackService::new(
        s.secrets.clone(),
        s.store.clone(),
        jobs.clone(),
    ));
    let t = now_unix();
    let aimed = aim_faults(&s, &jobs, n, t);
    let users: Vec<Value> = (0..n)
        .step_by(5)
        .map(|i| json!({"appid": OA, "openid": format!("f{i}"), "unionid": format!("U{i}")}))
        .collect();
    s.emulator.control("/users", json!(users)).await;

    let started = Instant::now();
    let outcomes = push_all(&callback, n, t).await;
    let elapsed = started.elapsed();
    s.state_faults.clear();
    let retries: usize = outcomes.iter().map(|(_, a, _)| a - 1).sum();
    let unacked = outcomes.iter().filter(|(_, _, acked)| !acked).count();
    let (queued, swept, ran) = run_follow_ups(&s, &jobs).await;
    let (lost, twice) = lost_and_twice(&s, n, t).await;
    println!(
        "callback storm: {n} events in {:.1} s ({:.0}/s); faults aimed at {aimed} events, {} injected, {} queue refusals; \
         WeChat retries {retries}; unacknowledged after 3 attempts {unacked}; follow-up jobs queued {queued}, swept {swept}, run {ran}; \
         lost {lost}; effects applied twice {twice}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        s.state_faults.injected(),
        jobs.refused.load(Ordering::SeqCst),
    );
    assert_eq!(
        unacked, 0,
        "every event acknowledged within WeChat's three attempts"
    );
    assert_eq!(lost, 0, "every event recorded, every follower completed");
    assert_eq!(twice, 0, "no event processed twice");
    assert!(retries > 0);
}
