//! Batches end to end: created through the `/v1` handler (API Gateway v2 events), fanned out
//! and sent by the job runner the batch-worker Lambda uses, against the WeChat emulator,
//! with the state store behind the fault-injecting wrapper and an SQS stand-in that delays,
//! redelivers failed jobs, delivers successful ones twice and refuses (`sim_queue`).
//! Every check counts messages in the emulator, recipient by recipient.
//!
//! The same code on moto (DynamoDB + SQS, real SQS event JSON) is in `batches_moto.rs`.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::clock::now_unix;
use wxpush_shared::queue::{Job, JobQueue};
use wxpush_shared::secrets::{AppEntry, AppsFile};
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_tests::batch_world::*;
use wxpush_tests::faults::{Call, Fault};
use wxpush_tests::sim_queue::Drive;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_recipients_each_get_exactly_one_message_through_faults() {
    let n: usize = std::env::var("WXPUSH_BATCH_TEST_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let w = world(BatchConfig {
        chunk_size: 500,
        concurrency: 16,
        ..test_config()
    })
    .await;
    w.add_users("r", n).await;
    // The last tenth is listed by unionid (routed through the store), and one of each ten
    // openids is listed twice.
    let by_union = n / 10;
    map_unionids(
        &w.store,
        &(n - by_union..n)
            .map(|i| (format!("r{i}"), format!("Ur{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    let mut recipients: Vec<Value> = (0..n - by_union)
        .map(|i| json!({"openid": format!("r{i}")}))
        .collect();
    recipients.extend((n - by_union..n).map(|i| json!({"unionid": format!("Ur{i}")})));
    let listed_twice = (n - by_union) / 10;
    recipients.extend((0..listed_twice).map(|i| json!({"openid": format!("r{}", i * 10)})));

    // The store: throttling, conflicts and answers lost after a commit on claims, message
    // records, progress and failures; claim reads throttled; the token store likewise.
    let store_faults = vec![
        Fault::Before("ThrottlingException"),
        Fault::Before("TransactionConflict"),
        Fault::After("timeout after commit"),
    ];
    for prefix in ["bclaim#", "msg#", "bprog#", "bfail#"] {
        w.faults
            .random(Call::Record, prefix, 0.02, store_faults.clone());
    }
    w.faults.random(
        Call::Get,
        "bclaim#",
        0.01,
        vec![Fault::Before("ThrottlingException")],
    );
    w.faults.random(
        Call::Take,
        "pace#",
        0.01,
        vec![Fault::Before("ThrottlingException")],
    );
    for call in [Call::TokenLoad, Call::TokenLease, Call::TokenStore] {
        w.token_faults.random(call, "", 0.01, store_faults.clone());
    }
    // SQS refuses the first fan-out steps.
    let started = Instant::now();
    let (status, created) = w
        .call(
            "POST",
            &format!("/v1/apps/{OA}/batches"),
            Some(json!({"message": template("系统维护通知"), "recipients": recipients})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["total"], json!(n));
    assert_eq!(created["duplicates"], json!(listed_twice));
    let id = created["id"].as_str().unwrap().to_string();
    w.queue.refuse_next(2);

    // WeChat's storm while the workers run: -1, 503, and deliveries whose answers are lost
    // (502, an unreadable 200, a timeout); the token revoked half-way.
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (base, stop) = (w.emulator.base.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let kinds = [
                json!({"errcode": -1}),
                json!({"http_status": 503}),
                json!({"http_status": 502, "after_delivery": true}),
                json!({"http_status": 200, "after_delivery": true}),
                json!({"delay_ms": 700, "after_delivery": true}),
            ];
            let mut injected = 0;
            for i in 0..2_500usize {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if i == 150 {
                    http.post(format!("{base}/sandbox/tokens/invalidate"))
                        .json(&json!({"appid": OA}))
                        .send()
                        .await
                        .unwrap();
                }
                let mut fault = kinds[i % kinds.len()].clone();
                fault["path"] = json!("/cgi-bin/message/template/send");
                http.post(format!("{base}/sandbox/faults"))
                    .json(&fault)
                    .send()
                    .await
                    .unwrap();
                injected += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            // The storm passes: faults WeChat had not used yet do not outlive it (WeChat keeps
            // no backlog of failures for the recipients still waiting).
            http.delete(format!("{base}/sandbox/faults"))
                .send()
                .await
                .unwrap();
            injected
        })
    };
    // Eight instances, each invocation 8 s (chunks continue in new jobs), a tenth of the
    // successful jobs delivered twice.
    let report = w
        .drive(Drive {
            workers: 8,
            budget: Duration::from_secs(8),
            duplicate_rate: 0.1,
            limit: Duration::from_secs(240),
            ..Drive::default()
        })
        .await
        .unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let wechat_faults = chaos.await.unwrap();
    w.emulator.clear_faults().await;
    let store_faults_injected = w.faults.injected();
    w.faults.clear();
    w.token_faults.clear();
    tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land
    assert!(report.drained, "the queue ran dry: {report:?}");
    assert!(report.dead_lettered.is_empty(), "{report:?}");

    let status = w.status(OA, &id).await;
    let per_user = w.delivered().await;
    let outcomes = w.outcomes(OA, &id).await;
    assert_eq!(outcomes.len(), n);
    let (mut sent, mut unknown, mut duplicates, mut false_sent) = (0, 0, 0, 0);
    for (key, outcome) in &outcomes {
        let openid = match key.split_once(':').unwrap() {
            ("o", o) => o.to_string(),
            (_, u) => u.trim_start_matches('U').to_string(),
        };
        let got = per_user.get(&openid).copied().unwrap_or(0);
        if got > 1 {
            duplicates += 1;
        }
        match outcome {
            's' => {
                sent += 1;
                if got != 1 {
                    false_sent += 1;
                }
            }
            'u' => unknown += 1,
            other => panic!("{key}: outcome {other} in a batch nothing refuses"),
        }
    }
    println!(
        "batch storm: {n} recipients in {:.1} s ({:.0}/s); sent {sent}, unknown {unknown}; WeChat faults {wechat_faults}, store faults {}, \
         token store faults {}; job runs {}, failed runs {}, duplicate deliveries {}; template calls {}; delivered {}; duplicates {duplicates}; sent without delivery {false_sent}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        store_faults_injected,
        w.token_faults.injected(),
        report.runs,
        report.failures,
        report.duplicates,
        w.emulator.emu.calls("/cgi-bin/message/template/send"),
        per_user.values().sum::<usize>(),
    );
    assert_eq!(duplicates, 0, "no recipient got two messages");
    assert_eq!(false_sent, 0, "no `sent` without a delivery");
    // Every recipient not `sent` is `unknown`: WeChat's answer never came back; it may or
    // may not have delivered.
    assert_eq!(sent + unknown, n);
    assert!(per_user.len() >= sent);
    assert!(store_faults_injected > 0 && wechat_faults > 0);
    assert!(report.duplicates > 0, "duplicate deliveries were tried");
    // The counts add up, and the batch says it is done.
    assert_eq!(status["done"], true, "{status}");
    assert_eq!(status["total"], json!(n));
    assert_eq!(status["queued"], 0);
    assert_eq!(status["sent"], json!(sent));
    assert_eq!(status["unknown"], json!(unknown));
    assert_eq!(status["failed"], 0);
    assert_eq!(status["cancelled"], 0);
    // Every unknown is listed with its message id; every message readable like a single send.
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let path = match &cursor {
            Some(c) => format!("/v1/apps/{OA}/batches/{id}?cursor={c}"),
            None => format!("/v1/apps/{OA}/batches/{id}"),
        };
        let (_, page) = w.call("GET", &path, None, &[]).await;
        for f in page["failures"].as_array().unwrap() {
            assert_eq!(f["status"], "unknown", "{f}");
            let mid = f["message_id"].as_str().unwrap();
            let rec = w.svc.sender.message(OA, mid).await.unwrap();
            assert_eq!(rec["status"], "unknown");
            listed += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, unknown);
    for i in (0..n).step_by(n / 20) {
        // Claims are per person the batch reaches, however the recipient was listed.
        let key = format!("{OA}:r{i}");
        let claim = w
            .store
            .get(&ItemKey::batch_claim(OA, &id, &key))
            .await
            .unwrap()
            .unwrap();
        let Some(Attr::S(mid)) = claim.get("message_id") else {
            panic!("claim without a message id")
        };
        let rec = w.svc.sender.message(OA, mid).await.unwrap();
        assert_eq!(rec["to"]["openid"], format!("r{i}"));
        assert!(
            rec["status"] == "sent" || rec["status"] == "unknown",
            "{rec}"
        );
    }

    // Every job delivered once more (a late SQS redelivery): nothing is sent again.
    let calls_before = w.emulator.emu.calls("/cgi-bin/message/template/send");
    for chunk in 0..n.div_ceil(500) as u32 {
        w.queue
            .enqueue(&Job::BatchChunk {
                appid: OA.into(),
                batch_id: id.clone(),
                chunk,
                attempt: 0,
            })
            .await
            .unwrap();
    }
    w.queue
        .enqueue(&Job::BatchFanout {
            appid: OA.into(),
            batch_id: id.clone(),
        })
        .await
        .unwrap();
    let again = w.drive(Drive::default()).await.unwrap();
    assert!(again.drained && again.failures == 0, "{again:?}");
    assert_eq!(
        w.emulator.emu.calls("/cgi-bin/message/template/send"),
        calls_before
    );
    assert_eq!(w.status(OA, &id).await["sent"], json!(sent));
}

/// A worker killed after WeChat accepted the message but before the outcome was written:
/// the redelivered job does not send again (a template message is resent with the same
/// `client_msg_id`, which WeChat dedupes; a customer-service message ends `unknown`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_wechat_accepted_does_not_resend() {
    let w = world(BatchConfig {
        concurrency: 1,
        ..test_config()
    })
    .await;
    w.add_users("k", 6).await;
    let tpl = w
        .create(
            OA,
            json!({"message": template("到货提醒"), "recipients": [{"openid": "k0"}, {"openid": "k1"}, {"openid": "k2"}]}),
        )
        .await;
    let cs = w
        .create(
            OA,
            json!({"message": custom("您好"), "recipients": [{"openid": "k3"}, {"openid": "k4"}, {"openid": "k5"}]}),
        )
        .await;
    // The fan-outs run; their chunk jobs are taken by hand.
    w.run_fanouts().await;
    let chunks: Vec<Job> = w.queue.drain().into_iter().map(|(j, _)| j).collect();
    assert_eq!(chunks.len(), 2);
    // WeChat delivers, then its answer takes 3 s; the worker is killed once the message is
    // delivered (before its client's timeout would have ended the attempt).
    for path in [
        "/cgi-bin/message/template/send",
        "/cgi-bin/message/custom/send",
    ] {
        w.emulator
            .control(
                "/faults",
                json!({"path": path, "delay_ms": 3000, "after_delivery": true, "times": 1}),
            )
            .await;
    }
    for (job, first) in chunks.iter().zip(["k0", "k3"]) {
        let (runner, job) = (w.runner.clone(), job.clone());
        let task = tokio::spawn(async move {
            runner
                .run(&job, Instant::now() + Duration::from_secs(2))
                .await
        });
        // Killed as soon as WeChat has the message (its answer is 3 s away; the client's
        // timeout would end the attempt after 0.3 s).
        for _ in 0..300 {
            if w.delivered().await.contains_key(first) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let _ = task.await;
    }
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("k0"), Some(&1));
    assert_eq!(per_user.get("k3"), Some(&1));
    assert_eq!(per_user.values().sum::<usize>(), 2, "{per_user:?}");
    // SQS delivers the jobs again; the claims are held until the killed invocations' leases
    // end, then taken over.
    for job in chunks {
        w.queue.enqueue(&job).await.unwrap();
    }
    let report = w
        .drive(Drive {
            budget: Duration::from_secs(5),
            limit: Duration::from_secs(60),
            ..Drive::default()
        })
        .await
        .unwrap();
    assert!(report.drained, "{report:?}");
    let per_user = w.delivered().await;
    for u in ["k0", "k1", "k2", "k3", "k4", "k5"] {
        assert_eq!(per_user.get(u), Some(&1), "{u}: {per_user:?}");
    }
    let t = w.status(OA, &tpl).await;
    assert_eq!(
        (t["sent"].as_i64(), t["done"].as_bool()),
        (Some(3), Some(true)),
        "{t}"
    );
    let c = w.status(OA, &cs).await;
    assert_eq!(
        (
            c["sent"].as_i64(),
            c["unknown"].as_i64(),
            c["done"].as_bool()
        ),
        (Some(2), Some(1), Some(true)),
        "{c}"
    );
    assert_eq!(c["failures"][0]["recipient"], json!({"openid": "k3"}));
    assert_eq!(c["failures"][0]["status"], "unknown");
}

/// 45009 (the daily quota) pauses the whole batch: the chunks wait with a delay instead of
/// burning retries, and the batch resumes by itself when the pause is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_pauses_the_batch_and_it_resumes_by_itself() {
    let w = world(BatchConfig {
        chunk_size: 20,
        concurrency: 2,
        ..test_config()
    })
    .await;
    w.add_users("q", 60).await;
    w.emulator
        .control(
            "/quotas",
            json!({"path": "/cgi-bin/message/template/send", "daily_limit": 25}),
        )
        .await;
    let recipients: Vec<Value> = (0..60)
        .map(|i| json!({"openid": format!("q{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("额度测试"), "recipients": recipients}),
        )
        .await;
    let drive = w.drive(Drive {
        workers: 3,
        limit: Duration::from_secs(60),
        ..Drive::default()
    });
    // Paused, and the chunks that hit the quota have recorded what they sent before it.
    let paused = w
        .wait_for(OA, &id, |s| s["state"] == "paused" && s["sent"] == 25)
        .await;
    assert!(
        paused["pause_reason"].as_str().unwrap().contains("45009"),
        "{paused}"
    );
    assert_eq!(paused["sent"], 25, "{paused}");
    assert_eq!(
        paused["failed"], 0,
        "a quota refusal fails no one: {paused}"
    );
    // Waiting chunks were put back with a delay, their retries untouched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = w.queue.jobs();
    assert!(!waiting.is_empty());
    for job in &waiting {
        assert!(matches!(job, Job::BatchChunk { attempt: 0, .. }), "{job:?}");
    }
    // The operator clears the quota; the batch goes on without anyone touching it.
    w.emulator
        .control(
            "/quotas",
            json!({"path": "/cgi-bin/message/template/send", "daily_limit": 100_000}),
        )
        .await;
    let done = w.wait_for(OA, &id, |s| s["done"] == true).await;
    assert_eq!(done["sent"], 60, "{done}");
    assert_eq!(done["state"], "done");
    assert!(drive.await.unwrap().drained);
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 60);
    assert!(per_user.values().all(|&c| c == 1));
}

/// `DELETE` stops what has not been sent: the rest is cancelled, nothing more goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_rest() {
    let w = world(BatchConfig {
        chunk_size: 50,
        concurrency: 4,
        default_rate: 25,
        ..test_config()
    })
    .await;
    w.add_users("x", 200).await;
    let recipients: Vec<Value> = (0..200)
        .map(|i| json!({"openid": format!("x{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("活动取消"), "recipients": recipients}),
        )
        .await;
    let drive = w.drive(Drive {
        workers: 4,
        limit: Duration::from_secs(60),
        ..Drive::default()
    });
    w.wait_for(OA, &id, |s| s["sent"].as_i64().unwrap_or(0) >= 20)
        .await;
    let (status, cancelled) = w
        .call("DELETE", &format!("/v1/apps/{OA}/batches/{id}"), None, &[])
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let done = w.wait_for(OA, &id, |s| s["done"] == true).await;
    assert!(drive.await.unwrap().drained);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_user = w.delivered().await;
    let sent = done["sent"].as_i64().unwrap();
    assert_eq!(per_user.values().sum::<usize>() as i64, sent, "{done}");
    assert!(per_user.values().all(|&c| c == 1));
    assert_eq!(sent + done["cancelled"].as_i64().unwrap(), 200, "{done}");
    assert!(sent < 120, "the cancel stopped the batch early: {done}");
    assert_eq!(
        (done["failed"].as_i64(), done["unknown"].as_i64()),
        (Some(0), Some(0))
    );
    // A second cancel answers the same; the batch stays as it is.
    let (status, again) = w
        .call("DELETE", &format!("/v1/apps/{OA}/batches/{id}"), None, &[])
        .await;
    assert_eq!((status, &again["sent"]), (200, &done["sent"]));
}

/// `"audience": "followers"` reaches every subscribed follower once, and no one who left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followers_audience_reaches_every_subscribed_follower_once() {
    let w = world(test_config()).await;
    w.add_users("f", 230).await;
    // 40 who left: WeChat knows them as not following; the directory says so too.
    let gone: Vec<Value> = (0..40)
        .map(|i| json!({"appid": OA, "openid": format!("gone{i}"), "subscribed": false}))
        .collect();
    w.emulator.control("/users", json!(gone)).await;
    map_unionids(
        &w.store,
        &(0..230)
            .map(|i| (format!("f{i}"), format!("Uf{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    for i in 0..40 {
        let o = format!("gone{i}");
        let op = Op::Set {
            key: ItemKey::account(OA, &o),
            attrs: attrs([
                ("appid", Attr::S(OA.into())),
                ("openid", Attr::S(o.clone())),
                ("subscribed", Attr::Bool(false)),
            ]),
        };
        w.store.record(&[op], now_unix()).await.unwrap();
    }
    let (status, created) = w
        .call(
            "POST",
            &format!("/v1/apps/{OA}/batches"),
            Some(json!({"message": template("关注者通知"), "audience": "followers"})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["audience"], "followers");
    assert_eq!(created["total"], Value::Null, "counted by the workers");
    let id = created["id"].as_str().unwrap();
    let report = w
        .drive(Drive {
            duplicate_rate: 0.3,
            ..Drive::default()
        })
        .await
        .unwrap();
    assert!(report.drained);
    let status = w.status(OA, id).await;
    assert_eq!(status["total"], 230, "{status}");
    assert_eq!(status["sent"], 230, "{status}");
    assert_eq!(status["done"], true);
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 230);
    assert!(per_user.values().all(|&c| c == 1));
    assert!(per_user.keys().all(|o| o.starts_with('f')));
    // A mini program has no followers audience.
    let (status, body) = w
        .call(
            "POST",
            &format!("/v1/apps/{MP}/batches"),
            Some(json!({"message": {"type": "subscribe", "template_id": "T", "data": {"thing1": {"value": "x"}}}, "audience": "followers"})),
            &[],
        )
        .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("audience")));
}

/// A chunk that cannot send is put back whichever delivery it is (a job that dies is the
/// sweep's); past its retries it fails its recipients (listed in the batch's failures) and
/// is reported failed, so SQS moves it to the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_chunk_shows_in_the_failures_and_goes_to_the_dead_letter_queue() {
    use aws_lambda_events::sqs::SqsEvent;
    use lambda_runtime::{Context, LambdaEvent};
    let w = world(test_config()).await;
    w.add_users("p", 5).await;
    let recipients: Vec<Value> = (0..5).map(|i| json!({"openid": format!("p{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("失败"), "recipients": recipients}),
        )
        .await;
    w.run_fanouts().await;
    let (chunk, _) = w.queue.drain().remove(0);
    // WeChat is busy for every call now.
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 1000}),
        )
        .await;
    let fixture: Value = serde_json::from_str(include_str!("../data/sqs-event.json")).unwrap();
    let event_for = |receives: &str, job: &Job| {
        let mut e = fixture.clone();
        e["Records"][0]["body"] = json!(serde_json::to_string(job).unwrap());
        e["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(receives);
        let event: SqsEvent = serde_json::from_value(e).unwrap();
        let mut context = Context::default();
        context.deadline = (wxpush_shared::clock::now_unix_millis() + 20_000) as u64;
        LambdaEvent::new(event, context)
    };
    // A delivery that fails on WeChat puts the chunk back with a delay (no failure
    // reported), whichever delivery it is: a job that dies is the sweep's to requeue.
    let first = wxpush_batch_worker::handle_event(&w.runner, event_for("1", &chunk), 5).await;
    assert!(first.batch_item_failures.is_empty());
    assert_eq!(w.status(OA, &id).await["queued"], 5);
    let last = wxpush_batch_worker::handle_event(&w.runner, event_for("5", &chunk), 5).await;
    assert!(last.batch_item_failures.is_empty());
    assert_eq!(w.status(OA, &id).await["queued"], 5);
    // Past its retries the chunk gives its recipients up, and goes to the dead-letter queue.
    let spent = chunk.with_attempt(test_config().max_retries + 1);
    let given_up = wxpush_batch_worker::handle_event(&w.runner, event_for("1", &spent), 5).await;
    assert_eq!(given_up.batch_item_failures.len(), 1);
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["failed"].as_i64(), status["done"].as_bool()),
        (Some(5), Some(true)),
        "{status}"
    );
    let failures = status["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 5);
    assert_eq!(failures[0]["error"]["error"]["code"], "not_sent");
    assert_eq!(w.delivered().await.len(), 0);
}

/// The routes' refusals and answers: every bad input a clear error, nothing half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_requests_are_checked_before_anything_is_recorded() {
    let w = world(test_config()).await;
    let path = format!("/v1/apps/{OA}/batches");
    let post = |body: Value, headers: Vec<(&'static str, String)>| {
        let w = &w;
        let path = path.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            w.call("POST", &path, Some(body), &h).await
        }
    };
    // Bad recipients are listed by index; nothing is created.
    let (status, body) = post(
        json!({"message": template("x"), "recipients": [{"openid": "ok"}, {"openid": ""}, {"openid": "a b"}, {"phone": "1"}]}),
        vec![],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_recipients");
    let listed: Vec<i64> = body["error"]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![1, 2, 3]);
    assert!(w.queue.is_empty());
    // The message is checked like a single send, fields named under `message.`.
    let (status, body) = post(
        json!({"message": {"type": "template", "data": {}}, "recipients": [{"openid": "o"}]}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message.template_id"))
    );
    let (status, body) = post(
        json!({"message": {"type": "subscribe", "template_id": "T", "data": {"thing1": {"value": "x"}}}, "recipients": [{"openid": "o"}]}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("type")),
        "{body}"
    );
    let (status, body) = post(
        json!({"message": template("x"), "recipients": [{"openid": "o"}], "to": {"openid": "o"}}),
        vec![],
    )
    .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("to")));
    let (status, _) = post(json!({"message": template("x"), "recipients": []}), vec![]).await;
    assert_eq!(status, 422);
    let mut shared_id = template("x");
    shared_id["client_msg_id"] = json!("one-for-all");
    let (status, body) = post(
        json!({"message": shared_id, "recipients": [{"openid": "o"}]}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message.client_msg_id"))
    );
    let mut huge = template("x");
    huge["data"]["first"] = json!({"value": "长".repeat(30_000)});
    let (status, body) = post(
        json!({"message": huge, "recipients": [{"openid": "o"}]}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message")),
        "{body}"
    );
    let many: Vec<Value> = (0..100_001)
        .map(|i| json!({"openid": format!("o{i}")}))
        .collect();
    let (status, body) = post(
        json!({"message": template("x"), "recipients": many}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("recipients"))
    );
    let (status, _) = w.call("POST", &path, None, &[]).await;
    assert_eq!(status, 400);
    let (status, body) = w
        .call(
            "POST",
            "/v1/apps/wx00000000000000ff/batches",
            Some(json!({"message": template("x"), "recipients": [{"openid": "o"}]})),
            &[],
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_app"))
    );
    // Ids of the wrong shape, unknown batches, wrong methods.
    let (status, _) = w.call("GET", &format!("{path}/nope"), None, &[]).await;
    assert_eq!(status, 404);
    let unknown = format!("{path}/bat_{}", "0".repeat(32));
    assert_eq!(w.call("GET", &unknown, None, &[]).await.0, 404);
    assert_eq!(w.call("DELETE", &unknown, None, &[]).await.0, 404);
    let (status, _) = w.call("PUT", &unknown, None, &[]).await;
    assert_eq!(status, 405);
    assert_eq!(w.call("GET", &path, None, &[]).await.0, 405);

    // The queue refuses: 503, and the same Idempotency-Key later creates the batch once.
    w.add_users("i", 3).await;
    let body = json!({"message": template("幂等"), "recipients": [{"openid": "i0"}, {"openid": "i1"}, {"openid": "i1"}]});
    w.queue.refuse_next(1);
    let key = vec![("idempotency-key", "campaign-42".to_string())];
    let (status, refused) = post(body.clone(), key.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (503, &json!("queue_unavailable"))
    );
    let (status, first) = post(body.clone(), key.clone()).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (first["total"].as_i64(), first["duplicates"].as_i64()),
        (Some(2), Some(1))
    );
    let (status, again) = post(body.clone(), key.clone()).await;
    assert_eq!((status, &again["id"]), (202, &first["id"]));
    let other = json!({"message": template("别的"), "recipients": [{"openid": "i2"}]});
    let (status, conflict) = post(other, key.clone()).await;
    assert_eq!(
        (status, &conflict["error"]["code"]),
        (409, &json!("idempotency_key_reused"))
    );
    let report = w.drive(Drive::default()).await.unwrap();
    assert!(report.drained);
    let per_user = w.delivered().await;
    assert_eq!(
        (per_user.get("i0"), per_user.get("i1")),
        (Some(&1), Some(&1))
    );
    assert_eq!(per_user.len(), 2);

    // Failures page with a cursor: 150 unionids nobody knows.
    let unknown_people: Vec<Value> = (0..150)
        .map(|i| json!({"unionid": format!("nobody{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("x"), "recipients": unknown_people}),
        )
        .await;
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let first = w.status(OA, &id).await;
    assert_eq!(
        (first["failed"].as_i64(), first["done"].as_bool()),
        (Some(150), Some(true))
    );
    assert_eq!(first["failures"].as_array().unwrap().len(), 100);
    assert_eq!(
        first["failures"][0]["error"]["error"]["code"],
        "unknown_recipient"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = w
        .call("GET", &format!("{path}/{id}?cursor={cursor}"), None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(second["failures"].as_array().unwrap().len(), 50);
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, body) = w
        .call(
            "GET",
            &format!("{path}/{id}?cursor=%27%20OR%201"),
            None,
            &[],
        )
        .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("cursor")));
}

/// `wxpush serve` runs the same workers in-process; `wxpush batch send --watch` and
/// `wxpush batch status` follow a batch through the bearer-protected API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wxpush_serve_runs_batches_and_the_cli_follows_them() {
    use wxpush_cli::admin::{
        ApiClient, Audience, BatchSend, Watch, batch_cancel, batch_send, batch_status,
        batch_summary, read_recipients,
    };
    const KEY: &str = "batch-cli-test-key";
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: OA.into(),
            kind: "official_account".into(),
            app_secret: SECRET.into(),
            callback_token: Some("batch-cli-cbtoken".into()),
            ..AppEntry::default()
        }],
    };
    let server = wxpush_tests::local_server(apps, KEY).await;
    let users: Vec<Value> = (0..150)
        .map(|i| json!({"appid": OA, "openid": format!("l{i}"), "subscribed": true}))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/users", server.url()))
        .json(&users)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let mut file = String::from("# the campaign list\n\nopenid:l0\n");
    for i in 1..150 {
        file.push_str(&format!("l{i}\n"));
    }
    let recipients = read_recipients(&file).unwrap();
    assert_eq!(recipients.len(), 150);
    assert!(read_recipients("phone:123").is_err());
    assert!(read_recipients("# nobody\n").is_err());
    assert_eq!(
        read_recipients(r#"[{"unionid": "u1"}]"#).unwrap(),
        vec![json!({"unionid": "u1"})]
    );
    let api = ApiClient::new(&server.url(), KEY).unwrap();
    let watch = Watch {
        poll_every: Duration::from_millis(100),
        give_up_after: Duration::from_secs(60),
        show_progress: false,
    };
    let args = BatchSend {
        appid: OA.into(),
        message: template("本地批量"),
        audience: Audience::Recipients(recipients),
        idempotency_key: Some("cli-run-1".into()),
        watch: Some(watch),
    };
    let done = batch_send(&api, &args).await.unwrap();
    assert_eq!(
        (done["sent"].as_i64(), done["done"].as_bool()),
        (Some(150), Some(true)),
        "{done}"
    );
    assert!(batch_summary(&done).contains("sent 150"));
    let id = done["id"].as_str().unwrap();
    let again = batch_status(&api, OA, id, None).await.unwrap();
    assert_eq!(again["sent"], 150);
    // The same command again (same key): the same batch, nothing sent twice.
    let replay = batch_send(
        &api,
        &BatchSend {
            watch: None,
            ..args
        },
    )
    .await
    .unwrap();
    assert_eq!(replay["id"], done["id"]);
    let delivered = reqwest::get(format!("{}/sandbox/messages?appid={OA}", server.url()))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap();
    assert_eq!(delivered.len(), 150);
    // Refusals name the bad recipients; a wrong key is refused.
    let bad = BatchSend {
        appid: OA.into(),
        message: template("x"),
        audience: Audience::Recipients(vec![json!({"openid": "ok"}), json!({"openid": "a b"})]),
        idempotency_key: None,
        watch: None,
    };
    let err = batch_send(&api, &bad).await.unwrap_err();
    assert!(
        err.contains("invalid_recipients") && err.contains("recipient #1"),
        "{err}"
    );
    let stranger = ApiClient::new(&server.url(), "wrong-key").unwrap();
    let err = batch_cancel(&stranger, OA, id).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
}

/// A claim left `attempting` by a worker that died: a template message is resent with its
/// `client_msg_id` only while WeChat's dedupe can be relied on; later it ends `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_takeover_does_not_resend_a_template_message() {
    use wxpush_shared::send::service::{TEMPLATE_RESEND_WINDOW_SECS, body_hash};
    let w = world(test_config()).await;
    w.add_users("z", 2).await;
    let message = template("迟到的接管");
    let id = w
        .create(
            OA,
            json!({"message": message, "recipients": [{"openid": "z0"}, {"openid": "z1"}]}),
        )
        .await;
    w.run_fanouts().await;
    // Claims as a dead worker left them: z0 attempted 10 minutes ago, z1 30 s ago. A
    // recipient's claim is for the batch's message, keyed by the person it reaches.
    let now = now_unix();
    let meta = w
        .store
        .get(&ItemKey::batch(OA, &id))
        .await
        .unwrap()
        .unwrap();
    let Some(Attr::S(stored_message)) = meta.get("message") else {
        panic!("no message in {meta:?}")
    };
    let hash = body_hash(stored_message.as_bytes());
    for (openid, ago) in [("z0", TEMPLATE_RESEND_WINDOW_SECS + 60), ("z1", 30)] {
        let s = |v: &str| Attr::S(v.to_string());
        let op = Op::Set {
            key: ItemKey::batch_claim(OA, &id, &format!("{OA}:{openid}")),
            attrs: attrs([
                ("hash", s(&hash)),
                ("state", s("attempting")),
                (
                    "message_id",
                    s(&format!("msg_{:032x}", rand::random::<u128>())),
                ),
                ("version", Attr::N(2)),
                ("lease_until", Attr::N(now - 1)),
                ("created_at", Attr::N(now - ago - 1)),
                ("attempted_at", Attr::N(now - ago)),
                ("ttl", Attr::N(now + 86_400)),
            ]),
        };
        w.store.record(&[op], now).await.unwrap();
    }
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let per_user = w.delivered().await;
    assert_eq!(per_user.get("z0"), None, "not resent after the window");
    assert_eq!(per_user.get("z1"), Some(&1), "resent within the window");
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["sent"].as_i64(), status["unknown"].as_i64()),
        (Some(1), Some(1)),
        "{status}"
    );
    assert!(
        status["failures"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may have been delivered"),
        "{status}"
    );
}
