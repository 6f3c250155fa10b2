//! Storms: 10 000 sends and 10 000 callbacks through everything that can go wrong at once,
//! checked recipient by recipient and event by event.
//!
//! Sends: template and customer-service messages, each recipient with its own
//! Idempotency-Key, a client that retries 5xx, 429 and `409 in_progress` with the same key;
//! WeChat answering -1, 503, 45009, late (timeouts, before or after delivering), 502 or an
//! unreadable 200 after delivering, and revoking the token mid-way; the state and token
//! stores throttled, conflicting, or losing answers after committing. Then: no recipient
//! with two messages, no `sent` without a delivery, every outcome readable by id.
//!
//! Callbacks: WeChat's own behaviour (3 attempts, the same body), with each event's writes
//! failing before or after they commit, reads failing, and the follow-up queue refusing.
//! Then: every event recorded, its effects applied exactly once.
//!
//! Both run on the embedded store behind the fault-injecting wrapper: the faults, not the
//! backend, are what is under test here (the same paths run on moto in `guarantees.rs`).
//! `WXPUSH_STORM` sets the size (default 10 000). The summary lines are what BENCHMARKS.md
//! quotes.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wxpush_send::SendService;
use wxpush_shared::AppKind;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{Attr, EmbeddedStateStore, ItemKey, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};
use wxpush_tests::faults::{
    Call, Fault, Faults, FaultyStateStore, FaultyTokenStore, RecordingQueue,
};
use wxpush_tests::{EmulatorServer, emulated, job_runner, memory_db, signed_query};

fn size() -> usize {
    std::env::var("WXPUSH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

const OA: &str = "wx5707a0000000000a";
const SECRET: &str = "storm-secret";
const TIMEOUT_MS: u64 = 250;

struct Stack {
    emulator: EmulatorServer,
    store: Arc<dyn StateStore>,
    state_faults: Arc<Faults>,
    token_faults: Arc<Faults>,
    tokens: Arc<TokenManager>,
    secrets: Arc<dyn SecretStore>,
}

async fn stack() -> Stack {
    let emulator =
        EmulatorServer::start(vec![emulated(OA, SECRET, AppKind::OfficialAccount)]).await;
    let secrets: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::from_file(AppsFile {
            apps: vec![AppEntry {
                appid: OA.into(),
                kind: "official_account".into(),
                app_secret: SECRET.into(),
                callback_token: Some("cbtoken".into()),
                ..AppEntry::default()
            }],
        })
        .unwrap(),
    );
    let db = memory_db();
    let state_faults = Faults::new(1);
    let token_faults = Faults::new(2);
    let store: Arc<dyn StateStore> = FaultyStateStore::new(
        Arc::new(EmbeddedStateStore::new(db.clone())),
        state_faults.clone(),
    );
    let tokens = Arc::new(TokenManager::new(
        FaultyTokenStore::new(Arc::new(EmbeddedTokenStore::new(db)), token_faults.clone()),
        secrets.clone(),
        emulator.client(TIMEOUT_MS),
        TokenPolicy::for_wechat_timeout(Duration::from_millis(TIMEOUT_MS)),
    ));
    Stack {
        emulator,
        store,
        state_faults,
        token_faults,
        tokens,
        secrets,
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sends_through_a_storm_no_duplicate_no_false_sent() {
    let n = size();
    let s = stack().await;
    let now = now_unix();
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"appid": OA, "openid": format!("u{i}"), "last_interaction": now}))
        .collect();
    s.emulator.control("/users", json!(users)).await;
    // The store: throttling, conflicts and answers lost after a commit, on claims, records
    // and reads of claims; the token store likewise.
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
    let svc = Arc::new(SendService::new(
        s.tokens.clone(),
        s.store.clone(),
        Duration::from_millis(TIMEOUT_MS),
    ));

    // WeChat's storm, fed while the sends run: one fault every few milliseconds.
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (base, done, stop) = (s.emulator.base.clone(), done.clone(), stop.clone());
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
    };

    let started = Instant::now();
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
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (wechat_faults, revoked) = chaos.await.unwrap();
    s.emulator.clear_faults().await;
    tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land

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
    let finals = std::mem::take(&mut *finals.lock().unwrap());
    let (mut sent, mut unknown, mut refused, mut gave_up) = (0, 0, 0, 0);
    let (mut duplicates, mut false_sent, mut unreadable, mut tries) = (0, 0, 0, 0);
    for (i, f) in &finals {
        let got = per_user.get(&format!("u{i}")).copied().unwrap_or(0);
        tries += f.tries;
        if got > 1 {
            duplicates += 1;
        }
        let expected = match f.status {
            200 => {
                sent += 1;
                if got != 1 {
                    false_sent += 1;
                }
                Some("sent")
            }
            202 => {
                unknown += 1;
                Some("unknown")
            }
            _ if f.tries > 120 => {
                gave_up += 1;
                None
            }
            _ => {
                refused += 1;
                assert_eq!(got, 0, "u{i} refused ({f:?}) but delivered");
                None
            }
        };
        if let (Some(want), Some(id)) = (expected, f.body["id"].as_str()) {
            match svc.sender.message(OA, id).await {
                Ok(rec) if rec["status"] == want => {}
                other => {
                    unreadable += 1;
                    eprintln!("u{i}: answered {want}, record {other:?}");
                }
            }
        }
    }
    println!(
        "send storm: {n} recipients in {:.1} s ({:.0}/s); sent {sent}, unknown {unknown}, refused {refused}, gave up {gave_up}; \
         client tries {tries}; WeChat faults {wechat_faults}, token revoked {revoked}, store faults {} + token store faults {}; \
         WeChat calls template {} custom {} stable_token {}; delivered {}; duplicates {duplicates}; sent without delivery {false_sent}; outcomes not readable {unreadable}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        s.state_faults.injected(),
        s.token_faults.injected(),
        s.emulator.emu.calls("/cgi-bin/message/template/send"),
        s.emulator.emu.calls("/cgi-bin/message/custom/send"),
        s.emulator.emu.calls("/cgi-bin/stable_token"),
        delivered.as_array().unwrap().len(),
    );
    assert_eq!(finals.len(), n);
    assert_eq!(duplicates, 0, "no recipient got two messages");
    assert_eq!(false_sent, 0, "no `sent` without a delivery");
    assert_eq!(unreadable, 0, "every outcome readable by its id");
    assert_eq!(gave_up, 0, "every send reached an answer");
    assert!(revoked, "the token was revoked mid-way");
    assert!(wechat_faults > 100 && s.state_faults.injected() > 50);
}

// ------------------------------------------------------------------ callbacks

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
    // Faults aimed per event, at most two per event (WeChat makes three attempts): a write
    // refused before it commits, a write that commits but answers an error, a failed read,
    // two failures in a row, a queue that refuses the follow-up job.
    let t = now_unix();
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
    let users: Vec<Value> = (0..n)
        .step_by(5)
        .map(|i| json!({"appid": OA, "openid": format!("f{i}"), "unionid": format!("U{i}")}))
        .collect();
    s.emulator.control("/users", json!(users)).await;

    let started = Instant::now();
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
                // WeChat: three attempts in all, the same body each time.
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
    let elapsed = started.elapsed();
    s.state_faults.clear();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let retries: usize = outcomes.iter().map(|(_, a, _)| a - 1).sum();
    let unacked = outcomes.iter().filter(|(_, _, acked)| !acked).count();

    // The follow-up jobs (new followers' unionids), as the batch-worker would run them.
    let runner = job_runner(s.tokens.clone(), s.store.clone(), jobs.clone());
    let queued = jobs.len();
    let mut ran = wxpush_tests::run_jobs(&jobs, &runner).await;
    // The look-ups whose job the queue refused: the scheduled sweep queues them.
    let sweep_at = now_unix() + wxpush_shared::callback::followup::FOLLOW_UP_SWEEP_AFTER_SECS + 1;
    let swept = wxpush_shared::callback::followup::FollowerCompletion::new(
        s.tokens.clone(),
        s.store.clone(),
    )
    .with_queue(jobs.clone())
    .sweep(sweep_at, Instant::now() + Duration::from_secs(60))
    .await
    .unwrap();
    ran += wxpush_tests::run_jobs(&jobs, &runner).await;

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
