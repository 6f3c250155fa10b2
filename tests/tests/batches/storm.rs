//! The batch storm: 10 000 recipients through faults of the store, the queue and WeChat.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::queue::{Job, JobQueue};
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_tests::batch_world::*;
use wxpush_tests::faults::{Call, Fault};
use wxpush_tests::sim_queue::{Drive, DriveReport};

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
    let (recipients, listed_twice) = storm_recipients(&w, n).await;
    fail_the_stores_at_random(&w);
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

    let storm = Storm::run(&w, started).await;
    let status = w.status(OA, &id).await;
    let per_user = w.delivered().await;
    let outcomes = w.outcomes(OA, &id).await;
    assert_eq!(outcomes.len(), n);
    let tally = Tally::of(&outcomes, &per_user);
    storm.print(&w, n, &tally, &per_user);
    assert_eq!(tally.duplicates, 0, "no recipient got two messages");
    assert_eq!(tally.false_sent, 0, "no `sent` without a delivery");
    // Every recipient not `sent` is `unknown`: WeChat's answer never came back; it may or
    // may not have delivered.
    assert_eq!(tally.sent + tally.unknown, n);
    assert!(per_user.len() >= tally.sent);
    assert!(storm.store_faults > 0 && storm.wechat_faults > 0);
    assert!(
        storm.report.duplicates > 0,
        "duplicate deliveries were tried"
    );
    the_counts_add_up(&status, n, &tally);
    every_unknown_is_listed_with_its_message(&w, &id, tally.unknown).await;
    claims_hold_the_message_of_the_person_reached(&w, &id, n).await;
    a_late_redelivery_of_every_job_sends_nothing(&w, &id, n, tally.sent).await;
}

/// `n` followers in the emulator, listed as the storm's recipients: the last tenth by
/// unionid (routed through the store), and one of each ten openids twice. Returns the list
/// and how many are listed twice.
async fn storm_recipients(w: &World, n: usize) -> (Vec<Value>, usize) {
    w.add_users("r", n).await;
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
    (recipients, listed_twice)
}

/// The store: throttling, conflicts and answers lost after a commit on claims, message
/// records, progress and failures; claim reads throttled; the token store likewise.
fn fail_the_stores_at_random(w: &World) {
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
}

/// WeChat's storm while the workers run: -1, 503, and deliveries whose answers are lost
/// (502, an unreadable 200, a timeout); the token revoked half-way. Ends when `stop` is set
/// or after 2 500 faults; returns how many it injected.
fn wechat_storm(base: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
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
}

/// What the storm did.
struct Storm {
    report: DriveReport,
    elapsed: Duration,
    wechat_faults: usize,
    store_faults: u64,
}

impl Storm {
    /// The workers run through WeChat's storm until the queue is dry; then every fault is
    /// cleared and late deliveries land.
    async fn run(w: &World, started: Instant) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let chaos = wechat_storm(w.emulator.base.clone(), stop.clone());
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
        let store_faults = w.faults.injected();
        w.faults.clear();
        w.token_faults.clear();
        tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land
        assert!(report.drained, "the queue ran dry: {report:?}");
        assert!(report.dead_lettered.is_empty(), "{report:?}");
        Storm {
            report,
            elapsed,
            wechat_faults,
            store_faults,
        }
    }

    fn print(&self, w: &World, n: usize, t: &Tally, per_user: &HashMap<String, usize>) {
        let Tally {
            sent,
            unknown,
            duplicates,
            false_sent,
        } = t;
        println!(
            "batch storm: {n} recipients in {:.1} s ({:.0}/s); sent {sent}, unknown {unknown}; WeChat faults {}, store faults {}, \
             token store faults {}; job runs {}, failed runs {}, duplicate deliveries {}; template calls {}; delivered {}; duplicates {duplicates}; sent without delivery {false_sent}",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64(),
            self.wechat_faults,
            self.store_faults,
            w.token_faults.injected(),
            self.report.runs,
            self.report.failures,
            self.report.duplicates,
            w.emulator.emu.calls("/cgi-bin/message/template/send"),
            per_user.values().sum::<usize>(),
        );
    }
}

/// The recorded outcomes against the emulator's deliveries.
struct Tally {
    sent: usize,
    unknown: usize,
    /// Recipients who got more than one message.
    duplicates: usize,
    /// Recipients recorded `sent` who did not get exactly one message.
    false_sent: usize,
}

impl Tally {
    fn of(outcomes: &HashMap<String, char>, per_user: &HashMap<String, usize>) -> Tally {
        let (mut sent, mut unknown, mut duplicates, mut false_sent) = (0, 0, 0, 0);
        for (key, outcome) in outcomes {
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
        Tally {
            sent,
            unknown,
            duplicates,
            false_sent,
        }
    }
}

/// The counts add up, and the batch says it is done.
fn the_counts_add_up(status: &Value, n: usize, t: &Tally) {
    assert_eq!(status["done"], true, "{status}");
    assert_eq!(status["total"], json!(n));
    assert_eq!(status["queued"], 0);
    assert_eq!(status["sent"], json!(t.sent));
    assert_eq!(status["unknown"], json!(t.unknown));
    assert_eq!(status["failed"], 0);
    assert_eq!(status["cancelled"], 0);
}

/// Every unknown is listed with its message id; every message readable like a single send.
async fn every_unknown_is_listed_with_its_message(w: &World, id: &str, unknown: usize) {
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
}

/// Claims are per person the batch reaches, however the recipient was listed.
async fn claims_hold_the_message_of_the_person_reached(w: &World, id: &str, n: usize) {
    for i in (0..n).step_by(n / 20) {
        let key = format!("{OA}:r{i}");
        let claim = w
            .store
            .get(&ItemKey::batch_claim(OA, id, &key))
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
}

/// Every job delivered once more (a late SQS redelivery): nothing is sent again.
async fn a_late_redelivery_of_every_job_sends_nothing(w: &World, id: &str, n: usize, sent: usize) {
    let calls_before = w.emulator.emu.calls("/cgi-bin/message/template/send");
    for chunk in 0..n.div_ceil(500) as u32 {
        w.queue
            .enqueue(&Job::BatchChunk {
                appid: OA.into(),
                batch_id: id.to_string(),
                chunk,
                attempt: 0,
            })
            .await
            .unwrap();
    }
    w.queue
        .enqueue(&Job::BatchFanout {
            appid: OA.into(),
            batch_id: id.to_string(),
        })
        .await
        .unwrap();
    let again = w.drive(Drive::default()).await.unwrap();
    assert!(again.drained && again.failures == 0, "{again:?}");
    assert_eq!(
        w.emulator.emu.calls("/cgi-bin/message/template/send"),
        calls_before
    );
    assert_eq!(w.status(OA, id).await["sent"], json!(sent));
}
