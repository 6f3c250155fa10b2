//! The send storm: template and customer-service messages, each recipient with its own
//! Idempotency-Key and a client that retries, through WeChat's faults and the stores'.

use crate::{OA, Stack, TIMEOUT_MS, size, stack};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use wxpush_send::SendService;
use wxpush_shared::clock::now_unix;
use wxpush_tests::faults::{Call, Fault};

/// What the client finally heard for one recipient.
#[derive(Debug)]
struct Final {
    status: u16,
    body: Value,
    tries: usize,
}

/// The company's service: sends with its own key, retries what a careful client retries.
async fn client(svc: &SendService, body: &Value, key: &str) -> Final {
    let bytes = body.to_string();
    let mut last = (0, Value::Null);
    for tries in 1..=120 {
        let deadline = Instant::now() + Duration::from_secs(3);
        let (status, answer) = match svc
            .sender
            .send(OA, bytes.as_bytes(), Some(key), "storm-client", deadline)
            .await
        {
            Ok(o) => (o.status.as_u16(), o.body),
            Err(e) => (e.status().as_u16(), e.body()),
        };
        let retry = match status {
            409 if answer["error"]["code"] == "in_progress" => Some(Duration::from_millis(300)),
            429 | 500..=599 => Some(Duration::from_millis(20 * tries.min(10) as u64)),
            _ => None,
        };
        match retry {
            None => {
                return Final {
                    status,
                    body: answer,
                    tries,
                };
            }
            Some(pause) => {
                last = (status, answer);
                tokio::time::sleep(pause).await;
            }
        }
    }
    Final {
        status: last.0,
        body: last.1,
        tries: 121,
    }
}

/// The store: throttling, conflicts and answers lost after a commit, on claims, records
/// and reads of claims; the token store likewise.
fn store_faults(s: &Stack) {
    let store_faults = vec![
        Fault::Before("ThrottlingException"),
        Fault::Before("TransactionConflict"),
        Fault::After("timeout after commit"),
    ];
    s.state_faults
        .random(Call::Record, "idem#", 0.02, store_faults.clone());
    s.state_faults
        .random(Call::Record, "msg#", 0.02, store_faults.clone());
    s.state_faults.random(
        Call::Get,
        "idem#",
        0.01,
        vec![Fault::Before("ThrottlingException")],
    );
    for call in [Call::TokenLoad, Call::TokenLease, Call::TokenStore] {
        s.token_faults.random(call, "", 0.02, store_faults.clone());
    }
}

/// WeChat's storm, fed while the sends run: one fault every few milliseconds, and the token
/// revoked once half the sends are `done`. Answers (faults injected, token revoked).
fn wechat_storm(
    base: String,
    n: usize,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(usize, bool)> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let kinds = [
            json!({"errcode": -1}),
            json!({"errcode": 45009}),
            json!({"http_status": 503}),
            json!({"http_status": 502, "after_delivery": true}),
            json!({"http_status": 200, "after_delivery": true}),
            json!({"delay_ms": 600, "after_delivery": true}),
            json!({"delay_ms": 600}),
        ];
        let mut injected = 0usize;
        let mut revoked = false;
        for i in 0..20_000usize {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if !revoked && done.load(Ordering::SeqCst) >= n / 2 {
                revoked = true;
                http.post(format!("{base}/sandbox/tokens/invalidate"))
                    .json(&json!({"appid": OA}))
                    .send()
                    .await
                    .unwrap();
            }
            let path = if i % 2 == 0 {
                "/cgi-bin/message/template/send"
            } else {
                "/cgi-bin/message/custom/send"
            };
            let mut fault = kinds[rand::random_range(0..kinds.len())].clone();
            fault["path"] = json!(path);
            http.post(format!("{base}/sandbox/faults"))
                .json(&fault)
                .send()
                .await
                .unwrap();
            injected += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (injected, revoked)
    })
}

/// Recipients `u0..n`, sent by 256 clients at once (even ones a template message, odd ones a
/// customer-service text); counts each final answer in `done`.
async fn send_to_all(
    svc: &Arc<SendService>,
    n: usize,
    done: &Arc<AtomicUsize>,
) -> HashMap<usize, Final> {
    let next = Arc::new(AtomicUsize::new(0));
    let finals: Arc<std::sync::Mutex<HashMap<usize, Final>>> = Default::default();
    let mut workers = vec![];
    for _ in 0..256 {
        let (svc, next, finals, done) = (svc.clone(), next.clone(), finals.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let to = json!({"openid": format!("u{i}")});
                let body = if i % 2 == 0 {
                    json!({"type": "template", "to": to, "template_id": "TPL_notice",
                           "data": {"thing1": {"value": format!("通知 {i}")}}})
                } else {
                    json!({"type": "custom", "to": to, "msgtype": "text",
                           "text": {"content": format!("您好 {i}")}})
                };
                let f = client(&svc, &body, &format!("storm-{i}")).await;
                finals.lock().unwrap().insert(i, f);
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    std::mem::take(&mut *finals.lock().unwrap())
}

/// The final answers against the deliveries and the records.
#[derive(Default)]
struct Tally {
    sent: usize,
    unknown: usize,
    refused: usize,
    gave_up: usize,
    duplicates: usize,
    false_sent: usize,
    unreadable: usize,
    tries: usize,
}

/// Each recipient's final answer against what WeChat delivered to it (`per_user`) and what
/// its record says.
async fn tally(
    svc: &SendService,
    finals: &HashMap<usize, Final>,
    per_user: &HashMap<String, usize>,
) -> Tally {
    let mut t = Tally::default();
    for (i, f) in finals {
        let got = per_user.get(&format!("u{i}")).copied().unwrap_or(0);
        t.tries += f.tries;
        if got > 1 {
            t.duplicates += 1;
        }
        let expected = match f.status {
            200 => {
                t.sent += 1;
                if got != 1 {
                    t.false_sent += 1;
                }
                Some("sent")
            }
            202 => {
                t.unknown += 1;
                Some("unknown")
            }
            _ if f.tries > 120 => {
                t.gave_up += 1;
                None
            }
            _ => {
                t.refused += 1;
                assert_eq!(got, 0, "u{i} refused ({f:?}) but delivered");
                None
            }
        };
        if let (Some(want), Some(id)) = (expected, f.body["id"].as_str()) {
            match svc.sender.message(OA, id).await {
                Ok(rec) if rec["status"] == want => {}
                other => {
                    t.unreadable += 1;
                    eprintln!("u{i}: answered {want}, record {other:?}");
                }
            }
        }
    }
    t
}

/// How many messages the emulator delivered to each openid, and in all.
async fn deliveries(s: &Stack) -> (HashMap<String, usize>, usize) {
    let delivered = s
        .emulator
        .get(&format!("/sandbox/messages?appid={OA}"))
        .await;
    let mut per_user: HashMap<String, usize> = HashMap::new();
    for m in delivered.as_array().unwrap() {
        *per_user
            .entry(m["touser"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    (per_user, delivered.as_array().unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sends_through_a_storm_no_duplicate_no_false_sent() {
    let n = size();
    let s = stack().await;
    let now = now_unix();
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"appid": OA, "openid": format!("u{i}"), "last_interaction": now}))
        .collect();
    s.emulator.control("/users", json!(users)).await;
    store_faults(&s);
    let svc = Arc::new(SendService::new(
        s.tokens.clone(),
        s.store.clone(),
        Duration::from_millis(TIMEOUT_MS),
    ));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = wechat_storm(s.emulator.base.clone(), n, done.clone(), stop.clone());

    let started = Instant::now();
    let finals = send_to_all(&svc, n, &done).await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (wechat_faults, revoked) = chaos.await.unwrap();
    s.emulator.clear_faults().await;
    tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land

    let (per_user, delivered) = deliveries(&s).await;
    let Tally {
        sent,
        unknown,
        refused,
        gave_up,
        duplicates,
        false_sent,
        unreadable,
        tries,
    } = tally(&svc, &finals, &per_user).await;
    println!(
        "send storm: {n} recipients in {:.1} s ({:.0}/s); sent {sent}, unknown {unknown}, refused {refused}, gave up {gave_up}; \
         client tries {tries}; WeChat faults {wechat_faults}, token revoked {revoked}, store faults {} + token store faults {}; \
         WeChat calls template {} custom {} stable_token {}; delivered {delivered}; duplicates {duplicates}; sent without delivery {false_sent}; outcomes not readable {unreadable}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        s.state_faults.injected(),
        s.token_faults.injected(),
        s.emulator.emu.calls("/cgi-bin/message/template/send"),
        s.emulator.emu.calls("/cgi-bin/message/custom/send"),
        s.emulator.emu.calls("/cgi-bin/stable_token"),
    );
    assert_eq!(finals.len(), n);
    assert_eq!(duplicates, 0, "no recipient got two messages");
    assert_eq!(false_sent, 0, "no `sent` without a delivery");
    assert_eq!(unreadable, 0, "every outcome readable by its id");
    assert_eq!(gave_up, 0, "every send reached an answer");
    assert!(revoked, "the token was revoked mid-way");
    assert!(wechat_faults > 100 && s.state_faults.injected() > 50);
}
