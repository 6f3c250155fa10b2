//! The guarantees of batches and keyed sends under the faults a kinder harness hid: jobs
//! killed at any moment (Lambda's deadline, a crash) and on their last delivery, routing
//! reads that fail after a takeover, WeChat's 10-minute `client_msg_id` window, the same
//! person listed twice, and counts that must agree with the failures listed.
//!
//! Each test names the path of the guarantees issue it covers and how it failed before.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::clock::now_unix;
use wxpush_shared::send::service::MESSAGE_TTL_SECS;
use wxpush_shared::store::{Attr, Attrs, ItemKey, Op, StateStore, attrs};
use wxpush_tests::batch_world::*;
use wxpush_tests::faults::{Call, Fault};
use wxpush_tests::sim_queue::Drive;

fn num(a: &Attrs, k: &str) -> i64 {
    match a.get(k) {
        Some(Attr::N(n)) => *n,
        _ => 0,
    }
}

/// Drives the queue, then sweeps as the schedule would `round` hours later (every job the
/// drive started has ended by then), until the batch is done or `rounds` run out.
async fn drive_and_sweep(w: &World, id: &str, drive: Drive, rounds: usize) -> (Value, usize) {
    let mut killed = 0;
    for round in 1..=rounds {
        let report = w.drive(drive.clone()).await.unwrap();
        killed += report.killed;
        let status = w.status(OA, id).await;
        if status["state"] == "done" {
            return (status, killed);
        }
        w.batches
            .sweep(now_unix() + 3_600 * round as i64)
            .await
            .unwrap();
    }
    (w.status(OA, id).await, killed)
}

/// Path 3: every job of a 2 000-recipient batch may be killed at a random moment (mid-send,
/// mid-flush) or at its deadline, and dead-lettered on its second delivery. The sweep finds
/// what no job will run again. Before: the batch stayed `running` with recipients never
/// sent and never failed (nothing requeued a dead-lettered fan-out or chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_killed_at_every_step_and_dead_lettered_still_reach_everyone_once() {
    let mut config = test_config();
    config.chunk_size = 250;
    config.concurrency = 16;
    let w = world(config).await;
    let n = 2_000;
    w.add_users("k", n).await;
    let recipients: Vec<Value> = (0..n).map(|i| json!({"openid": format!("k{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("杀不死"), "recipients": recipients}),
        )
        .await;
    let drive = Drive {
        workers: 6,
        budget: Duration::from_secs(2),
        visibility: Duration::from_millis(100),
        max_receives: 2,
        kill_rate: 0.5,
        kill_within: Duration::from_millis(400),
        limit: Duration::from_secs(30),
        ..Drive::default()
    };
    let (status, killed) = drive_and_sweep(&w, &id, drive, 12).await;
    let per_user = w.delivered().await;
    let twice = per_user.values().filter(|&&c| c > 1).count();
    let missing = (0..n)
        .filter(|i| !per_user.contains_key(&format!("k{i}")))
        .count();
    println!(
        "batch kill storm: {n} recipients, {killed} deliveries killed; sent {} unknown {} failed {}; missing {missing}; twice {twice}",
        status["sent"], status["unknown"], status["failed"]
    );
    assert!(killed >= 5, "the harness killed jobs ({killed})");
    assert_eq!(status["state"], "done", "state {}", status["state"]);
    assert_eq!(status["queued"], 0);
    assert_eq!(twice, 0, "nobody got two messages");
    // A recipient killed mid-send of a template is resent with its client_msg_id while
    // WeChat remembers it: everyone got the message, and it counts as sent.
    assert_eq!(missing, 0, "everyone got the message");
    assert_eq!(status["sent"], n, "sent {}", status["sent"]);
}

/// A batch world whose sends go one at a time (and, with [`one_worker`], one chunk at a
/// time), so WeChat's ordered faults land on a few recipients (each send retries 4 times
/// itself) instead of being spread thin.
async fn one_at_a_time() -> World {
    let mut config = test_config();
    config.concurrency = 1;
    world(config).await
}

fn one_worker() -> Drive {
    Drive {
        workers: 1,
        ..Drive::default()
    }
}

/// Path 4: WeChat answers 50 × -1, then 20 × HTTP 503, then 10 × 502 after delivering.
/// Before: 15 template recipients ended `unknown` and some never got the message. A
/// template's unknown goes back to the chunk while WeChat dedupes its client_msg_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_recipients_are_not_left_unknown_while_wechat_dedupes() {
    let mut config = test_config();
    config.concurrency = 2;
    let w = world(config).await;
    let n = 1_000;
    w.add_users("t", n).await;
    for fault in [
        json!({"errcode": -1, "times": 50}),
        json!({"http_status": 503, "times": 20}),
        json!({"http_status": 502, "after_delivery": true, "times": 10}),
    ] {
        let mut f = fault;
        f["path"] = json!("/cgi-bin/message/template/send");
        w.emulator.control("/faults", f).await;
    }
    let recipients: Vec<Value> = (0..n).map(|i| json!({"openid": format!("t{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("去重窗口"), "recipients": recipients}),
        )
        .await;
    let report = w.drive(one_worker()).await.unwrap();
    assert!(report.drained);
    let status = w.status(OA, &id).await;
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), n, "everyone got it: {status}");
    assert!(per_user.values().all(|&c| c == 1), "once each");
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(n as i64), Some(0)),
        "{status}"
    );
    assert_eq!(status["state"], "done");
}

/// Path 4, the smallest case: every attempt of the first recipient's send is delivered and
/// answered 502, so the send ends `unknown` with `retry_until`; the chunk puts it back and
/// its resend is deduped. Before: `unknown` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_unknown_goes_back_to_its_chunk_and_ends_sent() {
    let w = one_at_a_time().await;
    w.add_users("v", 5).await;
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "http_status": 502, "after_delivery": true, "times": 6}),
        )
        .await;
    let recipients: Vec<Value> = (0..5).map(|i| json!({"openid": format!("v{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("回到分块"), "recipients": recipients}),
        )
        .await;
    assert!(w.drive(one_worker()).await.unwrap().drained);
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(5), Some(0)),
        "{status}"
    );
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 5);
    assert!(per_user.values().all(|&c| c == 1), "{per_user:?}");
}

/// Path 5: an openid and its own unionid in one batch are one person. Before: two claims,
/// two messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_listed_twice_gets_one_message() {
    let w = world(test_config()).await;
    w.add_users("p", 3).await;
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| (format!("p{i}"), format!("Up{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    for message in [template("一人一条"), custom("一人一条")] {
        let id = w
            .create(
                OA,
                json!({"message": message, "recipients": [
                    {"openid": "p0"}, {"unionid": "Up0"}, {"unionid": "Up1"}, {"openid": "p1"}, {"openid": "p2"}
                ]}),
            )
            .await;
        assert!(w.drive(Drive::default()).await.unwrap().drained);
        let status = w.status(OA, &id).await;
        assert_eq!(status["sent"], 3, "{status}");
        assert_eq!(status["duplicates"], 2, "{status}");
        assert_eq!(status["state"], "done", "{status}");
    }
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("p0"), Some(&2), "one template and one custom");
    assert_eq!(per_user.get("p1"), Some(&2));
}

/// Path 6: a chunk given up by one run (its last delivery) while another run still sends:
/// the real outcome replaces the give-up, and its failure row goes with it. Before: the
/// "not sent" row stayed in `failures` while the counts said sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_give_up_replaced_by_a_real_send_leaves_no_failure_row() {
    let mut config = test_config();
    config.concurrency = 1;
    config.flush_interval = Duration::from_secs(30);
    let w = world(config).await;
    w.add_users("g", 2).await;
    let id = w
        .create(
            OA,
            json!({"message": template("并发"), "recipients": [{"openid": "g0"}, {"openid": "g1"}]}),
        )
        .await;
    w.run_fanouts().await;
    let job = w.queue.drain().remove(0).0;
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 3}),
        )
        .await;
    let runner = w.runner.clone();
    let slow_job = job.clone();
    let slow = tokio::spawn(async move {
        runner
            .run_delivery(&slow_job, Instant::now() + Duration::from_secs(20), false)
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A run of the same chunk past its retries gives up what it finds unsent.
    let gave_up = w
        .runner
        .run_delivery(
            &job.with_attempt(test_config().max_retries + 1),
            Instant::now() + Duration::from_secs(20),
            false,
        )
        .await;
    assert!(
        gave_up.is_err(),
        "a given-up chunk goes to the dead-letter queue"
    );
    let given_up = w.status(OA, &id).await;
    assert!(
        given_up["failed"].as_i64() >= Some(1),
        "given up: {given_up}"
    );
    slow.await.unwrap().unwrap();
    let status = w.status(OA, &id).await;
    let listed = status["failures"].as_array().unwrap().len() as i64;
    let counted = status["failed"].as_i64().unwrap() + status["unknown"].as_i64().unwrap();
    assert_eq!(
        listed, counted,
        "failures listed = failed + unknown: {status}"
    );
    assert_eq!(status["failed"], 0, "sent after the give-up: {status}");
    assert_eq!(w.delivered().await.len(), 2);
}

/// Path 7: a recipient's claim lives as long as its batch. Before: 24 hours, after which a
/// slow or paused batch sent an unflushed recipient again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_claims_live_as_long_as_the_batch() {
    let w = world(test_config()).await;
    w.add_users("c", 1).await;
    let id = w
        .create(
            OA,
            json!({"message": template("长寿"), "recipients": [{"openid": "c0"}]}),
        )
        .await;
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let meta = w
        .store
        .get(&ItemKey::batch(OA, &id))
        .await
        .unwrap()
        .unwrap();
    let claims = w.store.query(&format!("bclaim#{OA}#{id}")).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert!(
        num(&claims[0].1, "ttl") >= num(&meta, "created_at") + MESSAGE_TTL_SECS,
        "claim ttl {} < the batch's life",
        num(&claims[0].1, "ttl")
    );
}

/// Marks the mini program's openid `mp_openid` as the same person as `unionid` (whose
/// official account openid the callbacks already recorded).
async fn map_mini_program(store: &Arc<dyn StateStore>, mp_openid: &str, unionid: &str) {
    let s = |v: &str| Attr::S(v.to_string());
    let ops = [
        Op::Set {
            key: ItemKey::account(MP, mp_openid),
            attrs: attrs([
                ("appid", s(MP)),
                ("openid", s(mp_openid)),
                ("unionid", s(unionid)),
            ]),
        },
        Op::Set {
            key: ItemKey::union_account(unionid, MP),
            attrs: attrs([("appid", s(MP)), ("openid", s(mp_openid))]),
        },
    ];
    store.record(&ops, now_unix()).await.unwrap();
}

/// Waits (bounded) until no case's Idempotency-Key claim is leased any more.
async fn wait_for_leases(w: &World, cases: &[(&str, Value, &str)]) {
    use wxpush_shared::send::service::claim_key;
    for _ in 0..200 {
        let mut held = false;
        for (i, (appid, _, _)) in cases.iter().enumerate() {
            let key = claim_key(appid, "keyed-client", &format!("k{i}"));
            let claim = w.store.get(&key).await.unwrap().unwrap_or_default();
            held |= num(&claim, "lease_until") >= now_unix();
        }
        if !held {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the claims stayed leased");
}

/// One keyed send, answered as the client hears it.
async fn send_keyed(w: &World, appid: &str, body: &Value, key: &str, budget: Duration) -> Value {
    let bytes = body.to_string();
    let deadline = Instant::now() + budget;
    match w
        .svc
        .sender
        .send(appid, bytes.as_bytes(), Some(key), "keyed-client", deadline)
        .await
    {
        Ok(o) => json!({"http": o.status.as_u16(), "body": o.body}),
        Err(e) => json!({"http": e.status().as_u16(), "body": e.body()}),
    }
}

/// Paths 1 and 8: R1 delivers and cannot record the outcome; after its lease R2 takes the
/// claim over and routing fails on the flaky store (the unionid look-up, the mini program's
/// account read, the SSM read of the linked official account); R3 retries. Before: R2
/// released the claim, R3 took it as fresh and sent a second message; and R1 answered
/// `sent` where every replay answered `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_routing_after_a_takeover_never_frees_the_claim() {
    let w = Arc::new(world(test_config()).await);
    w.add_users("r", 3).await;
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| (format!("r{i}"), format!("Ur{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    map_mini_program(&w.store, "mp-r2", "Ur2").await;
    let cases = [
        (
            OA,
            json!({"type": "custom", "to": {"unionid": "Ur0"}, "msgtype": "text", "text": {"content": "一次"}}),
            "union#Ur0",
        ),
        (
            OA,
            json!({"type": "custom", "to": {"unionid": "Ur1"}, "msgtype": "text", "text": {"content": "一次"}}),
            "union#Ur1",
        ),
        (
            OA,
            json!({"type": "uniform", "to": {"openid": "mp-r2", "appid": MP}, "template_id": "TPL_u", "data": {"thing1": {"value": "一次"}}}),
            "ssm",
        ),
        (
            OA,
            json!({"type": "uniform", "to": {"openid": "mp-r2", "appid": MP}, "template_id": "TPL_u", "data": {"thing1": {"value": "再一次"}}}),
            "acct",
        ),
    ];
    // R1: every write of the outcome fails until the lease ends.
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        10_000,
    );
    let mut first = Vec::new();
    let r1: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (appid, body, _))| {
            let (w, appid, body) = (w.clone(), appid.to_string(), body.clone());
            tokio::spawn(async move {
                send_keyed(&w, &appid, &body, &format!("k{i}"), Duration::from_secs(1)).await
            })
        })
        .collect();
    for r in r1 {
        first.push(r.await.unwrap());
    }
    w.faults.clear();
    assert_eq!(w.emulator.delivered(OA).await.len(), 4, "R1 delivered each");
    wait_for_leases(&w, &cases).await;
    // R2: routing fails — the unionid look-up, the mini program account's read, the SSM
    // read of the mini program (is it linked to the official account?) — each right after
    // the takeover.
    let throttled = Fault::Before("ThrottlingException");
    for (i, (appid, body, routing)) in cases.iter().enumerate() {
        match *routing {
            "ssm" => w
                .secret_faults
                .script(Call::SecretApp, MP, throttled.clone(), 0, 1),
            "acct" => w.faults.script(Call::Get, "acct#", throttled.clone(), 0, 1),
            union => w.faults.script(Call::Query, union, throttled.clone(), 0, 1),
        }
        let r2 = send_keyed(&w, appid, body, &format!("k{i}"), Duration::from_secs(1)).await;
        assert_eq!(r2["http"], 503, "case {i}: routing failed: {r2}");
    }
    w.faults.clear();
    w.secret_faults.clear();
    wait_for_leases(&w, &cases).await; // R2's too
    for (i, (appid, body, _)) in cases.iter().enumerate() {
        let r3 = send_keyed(&w, appid, body, &format!("k{i}"), Duration::from_secs(1)).await;
        assert_eq!(
            (&r3["http"], &r3["body"]["status"]),
            (&first[i]["http"], &first[i]["body"]["status"]),
            "case {i}: a replay answers what the first request answered: {} vs {r3}",
            first[i]
        );
    }
    let per_user: HashMap<String, usize> = w.delivered().await;
    assert_eq!(per_user.len(), 3);
    assert_eq!(per_user.get("r0"), Some(&1), "{per_user:?}");
    assert_eq!(per_user.get("r1"), Some(&1), "{per_user:?}");
    assert_eq!(
        per_user.get("r2"),
        Some(&2),
        "two uniform messages, each once"
    );
}

/// Path 4, single sends: a template whose outcome is unknown is resent by a retry with the
/// same key while WeChat dedupes its client_msg_id. Before: the retry replayed `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_resolves_a_templates_unknown_within_the_window() {
    let w = world(test_config()).await;
    w.add_users("s", 1).await;
    for fault in [
        json!({"http_status": 502, "after_delivery": true, "times": 1}),
        json!({"errcode": -1, "times": 3}),
    ] {
        let mut f = fault;
        f["path"] = json!("/cgi-bin/message/template/send");
        w.emulator.control("/faults", f).await;
    }
    let body = json!({"type": "template", "to": {"openid": "s0"}, "template_id": "TPL_s", "data": {"thing1": {"value": "未知"}}});
    let first = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(first["http"], 202, "{first}");
    assert!(first["body"]["retry_until"].as_i64().unwrap() > now_unix());
    let again = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(again["http"], 200, "{again}");
    assert_eq!(again["body"]["id"], first["body"]["id"]);
    let third = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(third, again, "then the same answer for ever");
    assert_eq!(w.delivered().await.get("s0"), Some(&1));
    let rec = w
        .svc
        .sender
        .message(OA, first["body"]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(rec["status"], "sent");
}

/// What the client finally heard for one recipient.
struct Heard {
    status: u16,
    tries: usize,
}

/// The company's service: sends with its own key, retries what a careful client retries
/// (5xx, 429, `409 in_progress`) with the same key.
async fn careful_client(w: &World, appid: &str, body: &Value, key: &str) -> Heard {
    for tries in 1..=120 {
        let answer = send_keyed(w, appid, body, key, Duration::from_secs(3)).await;
        let status = answer["http"].as_u64().unwrap() as u16;
        let pause = match status {
            409 if answer["body"]["error"]["code"] == "in_progress" => 300,
            429 | 500..=599 => 20 * tries.min(10) as u64,
            _ => return Heard { status, tries },
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Heard {
        status: 0,
        tries: 121,
    }
}

/// The send storm with routing in it: recipients by unionid and `uniform` sends to mini
/// program users, while the unionid look-ups, the account reads, the SSM reads and the
/// claim and record writes fail at random, and WeChat fails as in the storm of `storm.rs`.
/// Before: a takeover whose routing failed freed the claim, and the next retry sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_storm_through_routing_faults_sends_nobody_two_messages() {
    let n: usize = std::env::var("WXPUSH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(3_000, |n: usize| n.div_ceil(3));
    let w = Arc::new(world(test_config()).await);
    w.add_users("q", n).await;
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("q{i}"), format!("Uq{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    for i in (2..n).step_by(3) {
        map_mini_program(&w.store, &format!("mq{i}"), &format!("Uq{i}")).await;
    }
    let store_faults = vec![
        Fault::Before("ThrottlingException"),
        Fault::Before("TransactionConflict"),
        Fault::After("timeout after commit"),
    ];
    let throttled = vec![Fault::Before("ThrottlingException")];
    w.faults
        .random(Call::Query, "union#", 0.03, throttled.clone());
    w.faults.random(Call::Get, "acct#", 0.03, throttled.clone());
    w.faults.random(Call::Get, "idem#", 0.01, throttled.clone());
    w.faults
        .random(Call::Record, "idem#", 0.02, store_faults.clone());
    w.faults.random(Call::Record, "msg#", 0.03, store_faults);
    w.secret_faults
        .random(Call::SecretApp, OA, 0.02, throttled.clone());
    w.secret_faults.random(Call::SecretApp, MP, 0.02, throttled);
    for (i, fault) in [
        json!({"errcode": -1, "times": 40}),
        json!({"http_status": 503, "times": 20}),
        json!({"http_status": 502, "after_delivery": true, "times": 20}),
        json!({"delay_ms": 600, "after_delivery": true, "times": 10}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = fault;
        f["path"] = json!(if i % 2 == 0 {
            "/cgi-bin/message/template/send"
        } else {
            "/cgi-bin/message/custom/send"
        });
        w.emulator.control("/faults", f).await;
    }
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let heard: Arc<std::sync::Mutex<Vec<(usize, Heard)>>> = Default::default();
    let mut workers = vec![];
    for _ in 0..128 {
        let (w, next, heard) = (w.clone(), next.clone(), heard.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let union = json!({"unionid": format!("Uq{i}")});
                let (appid, body) = match i % 3 {
                    0 => (OA, json!({"type": "template", "to": union, "template_id": "TPL_r",
                        "data": {"thing1": {"value": format!("路由 {i}")}}})),
                    1 => (OA, json!({"type": "custom", "to": union, "msgtype": "text",
                        "text": {"content": format!("路由 {i}")}})),
                    _ => (OA, json!({"type": "uniform", "to": {"openid": format!("mq{i}"), "appid": MP},
                        "template_id": "TPL_r", "data": {"thing1": {"value": format!("路由 {i}")}}})),
                };
                let h = careful_client(&w, appid, &body, &format!("route-{i}")).await;
                heard.lock().unwrap().push((i, h));
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let injected = w.faults.injected() + w.secret_faults.injected();
    w.faults.clear();
    w.secret_faults.clear();
    w.emulator.clear_faults().await;
    tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land
    let per_user = w.delivered().await;
    let heard = std::mem::take(&mut *heard.lock().unwrap());
    let (mut sent, mut unknown, mut other, mut twice, mut false_sent, mut tries) =
        (0, 0, 0, 0, 0, 0);
    for (i, h) in &heard {
        let got = per_user.get(&format!("q{i}")).copied().unwrap_or(0);
        tries += h.tries;
        twice += usize::from(got > 1);
        match h.status {
            200 => {
                sent += 1;
                false_sent += usize::from(got != 1);
            }
            202 => unknown += 1,
            _ => other += 1,
        }
    }
    println!(
        "routing storm: {n} recipients (unionid template, unionid custom, uniform) in {:.1} s; sent {sent}, unknown {unknown}, other {other}; \
         client tries {tries}; store and SSM faults {injected}; delivered {}; twice {twice}; sent without delivery {false_sent}",
        elapsed.as_secs_f64(),
        per_user.values().sum::<usize>(),
    );
    assert_eq!(heard.len(), n);
    assert_eq!(twice, 0, "nobody got two messages");
    assert_eq!(false_sent, 0, "no `sent` without a delivery");
    assert_eq!(other, 0, "every send reached sent or unknown");
    assert!(injected > 50, "faults were injected ({injected})");
}
