//! The guarantees under faults, one path each (moto DynamoDB/SSM + the emulator, with the
//! fault-injecting store where contention or a failed write is needed): no send twice after
//! a possibly delivered attempt, an Idempotency-Key that survives a killed invocation and
//! cannot be claimed twice, the truth answered when the record cannot be written, no
//! callback waiting for WeChat, no event deduped away that WeChat sent twice, and a token
//! lease that belongs to one refresh.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_send::SendService;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::send::service::claim_key;
use wxpush_shared::store::{Attr, ItemKey, Op, Recorded, StateStore};
use wxpush_shared::token::{TokenManager, TokenPolicy};
use wxpush_tests::faults::{
    Call, Fault, Faults, FaultyStateStore, FaultyTokenStore, RecordingQueue,
};
use wxpush_tests::{TokenWorld, job_runner, run_jobs, signed_query};

struct World {
    world: TokenWorld,
    oa: String,
    mp: String,
    faults: Arc<Faults>,
    store: Arc<dyn StateStore>,
    tokens: Arc<TokenManager>,
    svc: Arc<SendService>,
}

/// The send service over moto behind the fault-injecting store, WeChat timeout `timeout_ms`.
async fn world(timeout_ms: u64) -> World {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let faults = Faults::new(11);
    let store: Arc<dyn StateStore> = FaultyStateStore::new(world.state_store(), faults.clone());
    let tokens = world.manager(TokenPolicy::default(), timeout_ms);
    let svc = Arc::new(SendService::new(
        tokens.clone(),
        store.clone(),
        Duration::from_millis(timeout_ms),
    ));
    let now = now_unix();
    for (appid, openid) in [(&oa, "fan"), (&mp, "mpuser")] {
        world
            .emulator
            .control(
                "/users",
                json!({"appid": appid, "openid": openid, "last_interaction": now}),
            )
            .await;
    }
    World {
        world,
        oa,
        mp,
        faults,
        store,
        tokens,
        svc,
    }
}

impl World {
    async fn send(&self, appid: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        send(&self.svc, appid, body, key, Duration::from_secs(20)).await
    }
    async fn fault(&self, fault: Value) {
        self.world.emulator.control("/faults", fault).await;
    }
    async fn delivered(&self, appid: &str) -> Vec<Value> {
        self.world.emulator.delivered(appid).await
    }
    fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }
    async fn record(&self, appid: &str, id: &str) -> Value {
        self.svc.sender.message(appid, id).await.unwrap()
    }
    /// Makes a claim's lease run out, as time would once its invocation ended.
    async fn expire_lease(&self, appid: &str, key: &str) {
        let item = claim_key(appid, "test-caller", key);
        let mut claim = self.store.get(&item).await.unwrap().expect("a claim");
        claim.insert("lease_until".into(), Attr::N(now_unix() - 1));
        self.store
            .record(
                &[Op::Set {
                    key: item,
                    attrs: claim,
                }],
                now_unix(),
            )
            .await
            .unwrap();
    }
    /// Waits (up to 10 s) until the claim of `key` is in `state`: a slow machine must not
    /// turn "killed at this step" into "killed somewhere else".
    async fn await_claim(&self, appid: &str, key: &str, state: &str) {
        for _ in 0..500 {
            if self.claim_state(appid, key).await.as_deref() == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("claim {key} never reached {state}");
    }
    async fn claim_state(&self, appid: &str, key: &str) -> Option<String> {
        let claim = self
            .store
            .get(&claim_key(appid, "test-caller", key))
            .await
            .unwrap()?;
        match claim.get("state") {
            Some(Attr::S(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

use wxpush_tests::send_message as send;

fn template() -> Value {
    json!({"type": "template", "to": {"openid": "fan"}, "template_id": "TPL_order",
           "data": {"thing1": {"value": "订单已发货"}}})
}

fn custom() -> Value {
    json!({"type": "custom", "to": {"openid": "fan"}, "msgtype": "text", "text": {"content": "您好"}})
}

fn subscribe() -> Value {
    json!({"type": "subscribe", "to": {"openid": "mpuser"}, "template_id": "SUB_1",
           "data": {"thing1": {"value": "已发货"}}})
}

const TEMPLATE: &str = "/cgi-bin/message/template/send";
const CUSTOM: &str = "/cgi-bin/message/custom/send";
const SUBSCRIBE: &str = "/cgi-bin/message/subscribe/send";

#[tokio::test]
async fn timeouts_then_a_rejected_token_end_unknown_and_keep_the_key() {
    let w = world(400).await;
    // Three answers lost after WeChat delivered (each resend carries the same client_msg_id),
    // then the token is refused: the loop ends after a possibly delivered attempt.
    w.fault(json!({"path": TEMPLATE, "delay_ms": 900, "after_delivery": true, "times": 3}))
        .await;
    w.fault(json!({"path": TEMPLATE, "errcode": 40001})).await;
    let (status, body) = w.send(&w.oa, &template(), Some("order-7")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.record(&w.oa, &id).await["status"], "unknown");
    // The caller's retry gets the same answer and sends nothing.
    let (again, replay) = w.send(&w.oa, &template(), Some("order-7")).await;
    assert_eq!((again, replay["id"].as_str()), (202, Some(id.as_str())));
    assert_eq!(w.calls(TEMPLATE), 4);
    assert_eq!(w.delivered(&w.oa).await.len(), 1, "delivered once");
}

#[tokio::test]
async fn a_5xx_or_an_unreadable_200_after_delivery_is_never_resent_blindly() {
    let w = world(2000).await;
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1", "count": 3}),
        )
        .await;
    // A proxy answered 502 after WeChat acted: customer-service and subscribe messages are
    // `unknown`, not resent.
    for (appid, path, body) in [(&w.oa, CUSTOM, custom()), (&w.mp, SUBSCRIBE, subscribe())] {
        w.fault(json!({"path": path, "http_status": 502, "after_delivery": true}))
            .await;
        let (status, answer) = w.send(appid, &body, None).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some("unknown")),
            "{path}: {answer}"
        );
        assert_eq!(w.calls(path), 1, "{path} not resent");
        assert_eq!(w.delivered(appid).await.len(), 1, "{path}");
    }
    // An unreadable 200 is not `failed`: it may have been delivered.
    w.fault(json!({"path": CUSTOM, "http_status": 200, "after_delivery": true}))
        .await;
    let (status, answer) = w.send(&w.oa, &custom(), None).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("unknown")),
        "{answer}"
    );
    let id = answer["id"].as_str().unwrap();
    assert_eq!(w.record(&w.oa, id).await["status"], "unknown");
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // A template message is resent with its client_msg_id, which WeChat dedupes.
    w.fault(json!({"path": TEMPLATE, "http_status": 502, "after_delivery": true}))
        .await;
    let (status, answer) = w.send(&w.oa, &template(), None).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("sent")),
        "{answer}"
    );
    assert_eq!(w.calls(TEMPLATE), 2);
    let templates = w
        .delivered(&w.oa)
        .await
        .into_iter()
        .filter(|m| m["path"] == TEMPLATE)
        .count();
    assert_eq!(templates, 1, "the resend was deduped");
    // A 502 before anything happened (no after_delivery) is still `unknown` for a custom
    // message: wxpush cannot tell the two apart, so it never risks a second delivery.
    w.fault(json!({"path": CUSTOM, "http_status": 502})).await;
    let (status, _) = w.send(&w.oa, &custom(), None).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_send_killed_before_wechat_is_taken_over_after_its_lease() {
    let w = world(2000).await;
    w.tokens.get(&w.oa).await.unwrap();
    // The write that would move the claim to `attempting` is slow, and the invocation dies
    // during it: nothing reached WeChat.
    w.faults.script(
        Call::Record,
        "idem#",
        Fault::Delay(Duration::from_millis(5000)),
        1,
        1,
    );
    let svc = w.svc.clone();
    let oa = w.oa.clone();
    let killed = tokio::spawn(async move {
        send(
            &svc,
            &oa,
            &template(),
            Some("k-early"),
            Duration::from_secs(3),
        )
        .await
    });
    w.await_claim(&w.oa, "k-early", "in_progress").await;
    tokio::time::sleep(Duration::from_millis(200)).await; // into the slow write
    killed.abort();
    assert_eq!(
        w.claim_state(&w.oa, "k-early").await.as_deref(),
        Some("in_progress")
    );
    // While the lease holds, a retry is told to come back later.
    let (status, body) = w.send(&w.oa, &template(), Some("k-early")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_progress"))
    );
    // After it, the retry takes the claim over and sends, once.
    w.expire_lease(&w.oa, "k-early").await;
    let (status, body) = w.send(&w.oa, &template(), Some("k-early")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert_eq!(w.calls(TEMPLATE), 1);
    assert_eq!(w.delivered(&w.oa).await.len(), 1);
    assert_eq!(
        w.claim_state(&w.oa, "k-early").await.as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn a_send_killed_at_wechat_is_resent_only_where_wechat_dedupes() {
    let w = world(2000).await;
    // WeChat is slow and acts late; the invocation dies while waiting for it.
    for (path, key, body) in [(TEMPLATE, "k-tpl", template()), (CUSTOM, "k-cs", custom())] {
        w.fault(json!({"path": path, "delay_ms": 1200})).await;
        let (svc, oa, k, b) = (w.svc.clone(), w.oa.clone(), key.to_string(), body.clone());
        let killed =
            tokio::spawn(
                async move { send(&svc, &oa, &b, Some(&k), Duration::from_secs(10)).await },
            );
        // Killed once the request reached WeChat (which answers only after 1.2 s).
        let calls_before = w.calls(path);
        for _ in 0..500 {
            if w.calls(path) > calls_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        killed.abort();
        assert_eq!(
            w.claim_state(&w.oa, key).await.as_deref(),
            Some("attempting")
        );
        w.expire_lease(&w.oa, key).await;
        let (status, answer) = w.send(&w.oa, &body, Some(key)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // the late delivery lands
        let delivered: Vec<Value> = w
            .delivered(&w.oa)
            .await
            .into_iter()
            .filter(|m| m["path"] == path)
            .collect();
        assert_eq!(delivered.len(), 1, "{path}: delivered once");
        if path == TEMPLATE {
            // Resent with the same client_msg_id: WeChat deduped it.
            assert_eq!(
                (status, answer["status"].as_str()),
                (200, Some("sent")),
                "{answer}"
            );
            assert_eq!(w.calls(TEMPLATE), 2);
        } else {
            assert_eq!(
                (status, answer["status"].as_str()),
                (202, Some("unknown")),
                "{answer}"
            );
            assert_eq!(w.calls(CUSTOM), 1, "never resent");
        }
        // And the answer is kept for the next retry.
        let (again, replay) = w.send(&w.oa, &body, Some(key)).await;
        assert_eq!((again, &replay), (status, &answer));
    }
}

#[tokio::test]
async fn two_late_retries_of_an_expired_key_send_once() {
    let w = world(2000).await;
    // A key used a day ago (its TTL passed; DynamoDB has not deleted it yet).
    let first = w.send(&w.oa, &template(), Some("k-old")).await;
    assert_eq!(first.0, 200);
    let item = claim_key(&w.oa, "test-caller", "k-old");
    let mut claim = w.store.get(&item).await.unwrap().unwrap();
    claim.insert("ttl".into(), Attr::N(now_unix() - 10));
    w.store
        .record(
            &[Op::Set {
                key: item,
                attrs: claim,
            }],
            now_unix(),
        )
        .await
        .unwrap();
    // Two retries read the expired claim at the same moment; the second acts on what it
    // read only after the first has claimed the key (a takeover must not trust a stale read).
    w.faults.script(
        Call::Get,
        "idem#",
        Fault::Staggered(2, Duration::from_millis(400)),
        0,
        2,
    );
    let body = template();
    let (a, b) = tokio::join!(
        w.send(&w.oa, &body, Some("k-old")),
        w.send(&w.oa, &body, Some("k-old"))
    );
    // One claims the key and sends; the other is told it is in progress, or (once the
    // first finished) gets the first one's answer replayed: the same message either way.
    match (a.0, b.0) {
        (200, 200) => assert_eq!(a.1["id"], b.1["id"], "one message: {a:?} {b:?}"),
        (200, 409) | (409, 200) => {}
        other => panic!("unexpected answers {other:?}: {a:?} {b:?}"),
    }
    assert_eq!(
        w.delivered(&w.oa).await.len(),
        2,
        "the first send and one of the retries"
    );
}

#[tokio::test]
async fn an_accepted_send_whose_record_write_fails_answers_the_truth() {
    let w = world(2000).await;
    // The record write fails twice (throttled, then a conflict): retried, answered `sent`.
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        1,
    );
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("TransactionConflict"),
        0,
        1,
    );
    let (status, body) = w.send(&w.oa, &template(), Some("k-rec")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.record(&w.oa, &id).await["status"], "sent");

    // The store stays down after WeChat accepted: the answer is still `sent`, not a 503
    // that would make the caller send again.
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        4,
    );
    let (status, body) = w.send(&w.oa, &custom(), Some("k-down")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
    // The claim could not be finished: a retry waits for its lease, then finds what the
    // earlier holder may have done and does not send the custom message again.
    let (status, _) = w.send(&w.oa, &custom(), Some("k-down")).await;
    assert_eq!(status, 409);
    w.expire_lease(&w.oa, "k-down").await;
    let (status, body) = w.send(&w.oa, &custom(), Some("k-down")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("unknown")),
        "{body}"
    );
    assert_eq!(body["id"].as_str(), Some(id.as_str()), "the same message");
    assert_eq!(w.record(&w.oa, &id).await["status"], "unknown");
    assert_eq!(w.delivered(&w.oa).await.len(), 2, "not sent twice");

    // A write that committed but whose answer was lost is found by the retry.
    w.faults
        .script(Call::Record, "msg#", Fault::After("timeout"), 0, 1);
    let (status, body) = w.send(&w.oa, &template(), Some("k-lost")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.record(&w.oa, body["id"].as_str().unwrap()).await["status"],
        "sent"
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 3);
}

#[tokio::test]
async fn a_fence_that_finds_the_claim_taken_sends_nothing() {
    let w = world(2000).await;
    // The `in_progress` → `attempting` write finds another holder (this invocation outlived
    // its lease and was taken over): nothing is sent and nothing recorded.
    w.faults
        .script(Call::Record, "idem#", Fault::ConditionFailed, 1, 1);
    let (status, body) = w.send(&w.oa, &template(), Some("k-fence")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_progress")),
        "{body}"
    );
    assert_eq!(w.calls(TEMPLATE), 0);
    // A store failure at the same step: nothing sent, the key released for the retry.
    w.faults.script(
        Call::Record,
        "idem#",
        Fault::Before("ThrottlingException"),
        1,
        1,
    );
    let (status, body) = w.send(&w.oa, &custom(), Some("k-fence2")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    assert_eq!(w.calls(CUSTOM), 0);
    assert_eq!(
        w.claim_state(&w.oa, "k-fence2").await.as_deref(),
        Some("released")
    );
    let (status, _) = w.send(&w.oa, &custom(), Some("k-fence2")).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await.len(), 1);
    // The `attempting` write commits but its answer is lost: the claim, read back, shows it
    // is ours, and the message goes out (once) instead of ending a false `unknown` later.
    w.faults
        .script(Call::Record, "idem#", Fault::After("timeout"), 1, 1);
    let (status, body) = w.send(&w.oa, &custom(), Some("k-fence3")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert_eq!(w.delivered(&w.oa).await.len(), 2);
}

// ------------------------------------------------------------------ callbacks

const TOKEN: &str = "cbtoken";

fn event(from: &str, time: i64, event: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )
}

async fn push(
    svc: &CallbackService,
    appid: &str,
    xml: &str,
) -> Result<Recorded, wxpush_shared::ApiError> {
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
    svc.receive(appid, &q, xml.as_bytes(), now).await
}

#[tokio::test]
async fn a_slow_wechat_never_holds_a_callback_past_five_seconds() {
    let w = world(2000).await;
    let jobs = RecordingQueue::new();
    let callback = CallbackService::new(w.world.secrets(), w.store.clone(), jobs.clone());
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.oa, "openid": "newfan", "unionid": "U-new"}),
        )
        .await;
    // user/info (and a token refresh) would take 8 s.
    w.fault(json!({"path": "/cgi-bin/user/info", "delay_ms": 8000}))
        .await;
    w.fault(json!({"path": "/cgi-bin/stable_token", "delay_ms": 8000}))
        .await;
    let sub = event("newfan", now_unix(), "subscribe", "");
    let answered = tokio::time::timeout(Duration::from_secs(4), push(&callback, &w.oa, &sub)).await;
    assert_eq!(
        answered.expect("answered within WeChat's 5 s").unwrap(),
        Recorded::New
    );
    assert_eq!(w.calls("/cgi-bin/user/info"), 0);
    assert_eq!(w.calls("/cgi-bin/stable_token"), 0);
    // The queued job completes the follower once WeChat answers.
    w.world.emulator.clear_faults().await;
    let runner = job_runner(
        w.world.manager(TokenPolicy::default(), 2000),
        w.store.clone(),
        jobs.clone(),
    );
    assert_eq!(run_jobs(&jobs, &runner).await, 1);
    let account = w
        .store
        .get(&ItemKey::account(&w.oa, "newfan"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account["unionid"], Attr::S("U-new".into()));
    assert_eq!(w.store.query("union#U-new").await.unwrap().len(), 1);

    // The queue refuses the job: the event is recorded all the same and WeChat is told
    // `success` (the follow-up row in its transaction); the sweep queues the look-up.
    jobs.fail_next(1);
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.oa, "openid": "fan9", "unionid": "U-9"}),
        )
        .await;
    let sub = event("fan9", now_unix(), "subscribe", "");
    assert_eq!(push(&callback, &w.oa, &sub).await.unwrap(), Recorded::New);
    assert!(jobs.is_empty());
    let completion = wxpush_shared::callback::followup::FollowerCompletion::new(
        w.world.manager(TokenPolicy::default(), 2000),
        w.store.clone(),
    )
    .with_queue(jobs.clone());
    let later = now_unix() + wxpush_shared::callback::followup::FOLLOW_UP_SWEEP_AFTER_SECS + 1;
    let swept = completion
        .sweep(
            later,
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(run_jobs(&jobs, &runner).await, 1);
    assert!(
        w.store
            .get(&ItemKey::follow_up(&w.oa, "fan9"))
            .await
            .unwrap()
            .is_none(),
        "the follow-up row goes with the unionid"
    );
    let account = w
        .store
        .get(&ItemKey::account(&w.oa, "fan9"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account["unionid"], Attr::S("U-9".into()));

    // An unsubscribe between the look-up's read and its write wins: the job re-reads.
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.oa, "openid": "fan10", "unionid": "U-10"}),
        )
        .await;
    let t = now_unix();
    push(&callback, &w.oa, &event("fan10", t, "subscribe", ""))
        .await
        .unwrap();
    let job = jobs.take();
    // The job's write waits; meanwhile the follower leaves.
    w.faults.script(
        Call::Record,
        "acct#",
        Fault::Delay(Duration::from_millis(600)),
        0,
        1,
    );
    let far = Instant::now() + Duration::from_secs(60);
    let (done, left) = tokio::join!(runner.run(&job[0], far), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&callback, &w.oa, &event("fan10", t + 1, "unsubscribe", "")).await
    });
    done.unwrap();
    assert_eq!(left.unwrap(), Recorded::New);
    let union = w.store.query("union#U-10").await.unwrap();
    assert_eq!(
        union[0].1["subscribed"],
        Attr::Bool(false),
        "not resurrected by the job"
    );
    let account = w
        .store
        .get(&ItemKey::account(&w.oa, "fan10"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (account["subscribed"].clone(), account["unionid"].clone()),
        (Attr::Bool(false), Attr::S("U-10".into()))
    );
}

#[tokio::test]
async fn two_sent_events_in_one_second_are_both_kept_and_use_up_grants() {
    let w = world(2000).await;
    let callback = CallbackService::new(w.world.secrets(), w.store.clone(), RecordingQueue::new());
    let t = now_unix();
    let popup = event(
        "mpuser",
        t,
        "subscribe_msg_popup_event",
        "<SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent>",
    );
    push(&callback, &w.mp, &popup).await.unwrap();
    push(
        &callback,
        &w.mp,
        &popup.replace(&format!(">{t}<"), &format!(">{}<", t + 1)),
    )
    .await
    .unwrap();
    let grant = || async {
        w.store
            .get(&ItemKey::grant(&w.mp, "mpuser", "T1"))
            .await
            .unwrap()
            .unwrap()["available"]
            .clone()
    };
    assert_eq!(grant().await, Attr::N(2));
    let sent = |msgid: &str| {
        event(
            "mpuser",
            t + 5,
            "subscribe_msg_sent_event",
            &format!(
                "<SubscribeMsgSentEvent><List><TemplateId>T1</TemplateId><MsgID>{msgid}</MsgID><ErrorCode>0</ErrorCode><ErrorStatus>success</ErrorStatus></List></SubscribeMsgSentEvent>"
            ),
        )
    };
    assert_eq!(
        push(&callback, &w.mp, &sent("9001")).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        push(&callback, &w.mp, &sent("9002")).await.unwrap(),
        Recorded::New,
        "another message in the same second is another event"
    );
    assert_eq!(
        push(&callback, &w.mp, &sent("9002")).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(
        grant().await,
        Attr::N(0),
        "each sent message used one acceptance"
    );
    // A message WeChat reports sent without a recorded acceptance never goes below zero.
    assert_eq!(
        push(&callback, &w.mp, &sent("9003")).await.unwrap(),
        Recorded::New
    );
    assert_eq!(grant().await, Attr::N(0));
    let last = w
        .store
        .get(&ItemKey::grant(&w.mp, "mpuser", "T1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        last["last_msgid"],
        Attr::S("9003".into()),
        "its details are kept"
    );
}

// ------------------------------------------------------------------ token lease

#[tokio::test]
async fn a_stale_refresh_cannot_store_into_a_newer_lease_of_its_own_process() {
    let (world, appid) = TokenWorld::with_app("lease-secret", Some("classic")).await;
    // An old configuration: a lease shorter than the WeChat call (what for_wechat_timeout
    // prevents); each /cgi-bin/token answer comes 1.2 s after WeChat issued the token, so the
    // first refresh answers while the second (same process, newer lease) still waits.
    let policy = TokenPolicy {
        lease: Duration::from_millis(300),
        ..TokenPolicy::default()
    };
    let manager = world.manager(policy, 5000);
    world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/token", "delay_ms": 1200, "after_delivery": true, "times": 2}),
        )
        .await;
    let m = manager.clone();
    let a = appid.clone();
    let slow = tokio::spawn(async move { m.get(&a).await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The same process's scheduled refresh takes the expired lease and fetches a newer token;
    // the first refresh's answer arrives while it waits.
    let newer = manager
        .refresh_if_due(&appid, Duration::from_secs(900))
        .await
        .unwrap();
    let stale = slow.await.unwrap().unwrap();
    assert!(
        matches!(newer, wxpush_shared::token::RefreshOutcome::Refreshed { version, .. } if version > 0),
        "the newer refresh stored its token: {newer:?}"
    );
    let stored = world.store().load(&appid).await.unwrap().unwrap();
    assert_ne!(
        stored.access_token.as_ref(),
        Some(&stale.token),
        "the older token did not overwrite the newer one"
    );
    assert_eq!(stale.version, 0, "used unstored");
    assert!(stored.lease_owner.is_none());
}

#[tokio::test]
async fn a_failed_token_write_frees_the_lease() {
    let (world, appid) = TokenWorld::with_app("lease-secret", None).await;
    let faults = Faults::new(3);
    let store = FaultyTokenStore::new(world.store(), faults.clone());
    let manager = |store: Arc<dyn wxpush_shared::token::TokenStore>| {
        Arc::new(TokenManager::new(
            store,
            world.secrets(),
            world.emulator.client(2000),
            TokenPolicy::default(),
        ))
    };
    faults.script(
        Call::TokenStore,
        "",
        Fault::Before("ThrottlingException"),
        0,
        1,
    );
    let first = manager(store.clone()).get(&appid).await.unwrap();
    assert_eq!(first.version, 0, "served unstored");
    let record = world.store().load(&appid).await.unwrap().unwrap();
    assert!(record.lease_owner.is_none(), "the lease was released");
    // Another instance refreshes at once instead of waiting out a 10 s lease.
    let second = tokio::time::timeout(Duration::from_secs(3), manager(world.store()).get(&appid))
        .await
        .expect("no wait for a dead lease")
        .unwrap();
    assert!(second.version > 0);
}

#[test]
fn the_lease_outlives_the_wechat_timeout() {
    for ms in [500, 5_000, 30_000] {
        let policy = TokenPolicy::for_wechat_timeout(Duration::from_millis(ms));
        assert!(policy.lease >= Duration::from_millis(ms) + Duration::from_secs(5));
        assert!(
            policy.wait > policy.lease,
            "waiters outlive a dead holder's lease"
        );
    }
}
