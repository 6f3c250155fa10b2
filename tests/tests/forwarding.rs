//! Event forwarding: every recorded callback event reaches the sink at least once, only after
//! it is recorded, whatever fails in between — the store (before and after it wrote), the
//! queue, the sink (for a while, or until the dead-letter queue) — and a redelivery is
//! harmless. Then the real parts: an EventBridge bus on moto that does not exist at first,
//! and `wxpush serve --forward URL` with a webhook that is down at first.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{
    EventBridgeSink, EventSink, FORWARD_ATTEMPTS, Forwarded, ForwardedEvent, Forwarder,
    SWEEP_AFTER_SECS,
};
use wxpush_shared::queue::Job;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{Attr, EmbeddedStateStore, ItemKey, Recorded, StateStore};
use wxpush_tests::faults::{Call, Fault, Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{memory_db, random_appid, signed_query};

const TOKEN: &str = "fwdtoken";

/// A sink that keeps what it gets, and fails while told to.
#[derive(Default)]
struct TestSink {
    got: Mutex<Vec<ForwardedEvent>>,
    fail_next: AtomicU32,
    calls: AtomicU32,
}

impl TestSink {
    fn got(&self) -> Vec<ForwardedEvent> {
        self.got.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventSink for TestSink {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("injected: the bus is down".into());
        }
        self.got.lock().unwrap().push(event.clone());
        Ok(())
    }
}

struct World {
    appid: String,
    callback: CallbackService,
    forwarder: Forwarder,
    store: Arc<dyn StateStore>,
    faulty: Arc<dyn StateStore>,
    secrets: Arc<dyn SecretStore>,
    faults: Arc<Faults>,
    queue: Arc<RecordingQueue>,
    sink: Arc<TestSink>,
}

fn world() -> World {
    let appid = random_appid();
    let file = AppsFile {
        apps: vec![AppEntry {
            appid: appid.clone(),
            kind: "official_account".into(),
            app_secret: "fwd-secret".into(),
            callback_token: Some(TOKEN.into()),
            ..AppEntry::default()
        }],
    };
    wxpush_tests::remember_secrets([TOKEN.to_string(), "fwd-secret".to_string()]);
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecretStore::from_file(file).unwrap());
    let inner: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(memory_db()));
    let faults = Faults::new(7);
    let store: Arc<dyn StateStore> = FaultyStateStore::new(inner.clone(), faults.clone());
    let queue = RecordingQueue::new();
    let sink = Arc::new(TestSink::default());
    World {
        callback: CallbackService::new(secrets.clone(), store.clone(), queue.clone())
            .with_forwarding(true),
        forwarder: Forwarder::new(store.clone(), queue.clone(), secrets.clone(), sink.clone()),
        appid,
        store: inner,
        faulty: store,
        secrets,
        faults,
        queue,
        sink,
    }
}

fn text_message(from: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[你好 <wxpush>]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

fn popup_event(from: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1700000100</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent>\
         <List><TemplateId><![CDATA[tpl1]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>0</PopupScene></List>\
         <List><TemplateId><![CDATA[tpl2]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>0</PopupScene></List>\
         </SubscribeMsgPopupEvent></xml>"
    )
}

impl World {
    async fn push(&self, xml: &str) -> Result<Recorded, wxpush_shared::ApiError> {
        let now = now_unix();
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        self.callback
            .receive(&self.appid, &q, xml.as_bytes(), now)
            .await
    }

    /// Runs the queued forwarding jobs (and the retries they queue) as the worker would,
    /// `now` as the clock. Returns each job's outcome, in order. Bounded.
    async fn drain(&self, now: i64) -> Vec<Result<Forwarded, String>> {
        let mut outcomes = vec![];
        for _ in 0..100 {
            let jobs = self.queue.take();
            if jobs.is_empty() {
                break;
            }
            for job in jobs {
                if let Job::ForwardEvent {
                    appid,
                    key,
                    attempt,
                } = job
                {
                    outcomes.push(
                        self.forwarder
                            .forward(&appid, &key, attempt, false, now)
                            .await
                            .map_err(|e| e.to_string()),
                    );
                }
            }
        }
        outcomes
    }

    async fn outbox(&self) -> Vec<(String, wxpush_shared::store::Attrs)> {
        self.store
            .query(&ItemKey::outbox_pk(&self.appid))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_recorded_event_is_forwarded_once_with_all_its_fields() {
    let w = world();
    assert_eq!(
        w.push(&text_message("o-text", 1)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.push(&popup_event("o-popup")).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.outbox().await.len(),
        2,
        "one outbox row per recorded event"
    );
    let outcomes = w.drain(now_unix()).await;
    assert_eq!(outcomes, vec![Ok(Forwarded::Delivered); 2]);
    let got = w.sink.got();
    assert_eq!(got.len(), 2);
    let text = got.iter().find(|e| e.openid == "o-text").unwrap();
    assert_eq!(text.detail_type, "wechat.text");
    assert_eq!(text.appid, w.appid);
    assert_eq!(text.create_time, 1_700_000_000);
    assert_eq!(text.message["Content"], "你好 <wxpush>");
    assert_eq!(text.message["MsgId"], "1");
    let popup = got.iter().find(|e| e.openid == "o-popup").unwrap();
    assert_eq!(popup.detail_type, "wechat.event.subscribe_msg_popup_event");
    assert_eq!(
        popup.message["SubscribeMsgPopupEvent"]["List"][1],
        json!({"TemplateId": "tpl2", "SubscribeStatusString": "reject", "PopupScene": "0"})
    );
    let detail: Value = serde_json::from_str(&popup.detail_json()).unwrap();
    assert_eq!(
        detail.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["appid", "create_time", "event_id", "message", "openid"],
        "no unionid key when none is known"
    );
    assert!(w.outbox().await.is_empty(), "forwarded rows are deleted");

    // WeChat retries the push: acknowledged, not recorded again; its forwarding job finds
    // nothing left to do.
    assert_eq!(
        w.push(&text_message("o-text", 1)).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(w.drain(now_unix()).await, vec![Ok(Forwarded::AlreadyDone)]);
    assert_eq!(w.sink.got().len(), 2);
}

#[tokio::test]
async fn the_unionid_is_forwarded_when_wxpush_knows_the_user() {
    let w = world();
    // The follower record as the callbacks or the follower sync keep it.
    let account = wxpush_shared::store::attrs([
        ("appid", Attr::S(w.appid.clone())),
        ("openid", Attr::S("o-known".into())),
        ("unionid", Attr::S("u-known".into())),
        ("subscribed", Attr::Bool(true)),
    ]);
    w.store
        .record(
            &[wxpush_shared::store::Op::Set {
                key: ItemKey::account(&w.appid, "o-known"),
                attrs: account,
            }],
            now_unix(),
        )
        .await
        .unwrap();
    w.push(&text_message("o-known", 2)).await.unwrap();
    w.drain(now_unix()).await;
    assert_eq!(w.sink.got()[0].unionid.as_deref(), Some("u-known"));
}

#[tokio::test]
async fn nothing_is_forwarded_before_it_is_recorded_and_a_lost_answer_loses_nothing() {
    let w = world();
    // 1. The transaction fails before it is applied: WeChat is not told `success`, nothing
    //    is recorded, and nothing is forwarded — not by the job, not by a later sweep.
    w.faults.script(
        Call::Record,
        "evt#",
        Fault::Before("TransactionConflict"),
        0,
        1,
    );
    assert!(w.push(&text_message("o-1", 10)).await.is_err());
    assert!(
        w.queue.is_empty(),
        "no forwarding job for an unrecorded event"
    );
    assert!(w.outbox().await.is_empty());
    assert_eq!(w.forwarder.sweep(now_unix() + 3_600).await.unwrap(), 0);
    assert!(w.sink.got().is_empty());

    // 2. WeChat's retry is recorded, but the answer is lost on the way back (the write
    //    happened): the callback fails again, and no job was queued for it.
    w.faults
        .script(Call::Record, "evt#", Fault::After("timeout"), 0, 1);
    assert!(w.push(&text_message("o-1", 10)).await.is_err());
    assert!(w.queue.is_empty());
    assert_eq!(
        w.outbox().await.len(),
        1,
        "the outbox row came with the event"
    );

    // 3. WeChat's third try finds the event recorded: acknowledged, and its forwarding
    //    queued again; forwarded exactly once.
    assert_eq!(
        w.push(&text_message("o-1", 10)).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(w.drain(now_unix()).await, vec![Ok(Forwarded::Delivered)]);
    assert_eq!(w.sink.got().len(), 1);
    assert_eq!(w.forwarder.sweep(now_unix() + 3_600).await.unwrap(), 0);
}

#[tokio::test]
async fn a_queue_that_refuses_the_job_is_covered_by_the_sweep() {
    let w = world();
    w.queue.fail_next(1);
    // The event is recorded and acknowledged even though its job could not be queued.
    assert_eq!(
        w.push(&text_message("o-q", 20)).await.unwrap(),
        Recorded::New
    );
    assert!(w.queue.is_empty());
    let now = now_unix();
    // A young row is left to its own job; an old one is queued.
    assert_eq!(w.forwarder.sweep(now).await.unwrap(), 0);
    // The sweep's own queueing fails once too: it reports the failure, and runs again.
    w.queue.fail_next(1);
    assert!(w.forwarder.sweep(now + SWEEP_AFTER_SECS).await.is_err());
    assert_eq!(w.forwarder.sweep(now + SWEEP_AFTER_SECS).await.unwrap(), 1);
    assert_eq!(
        w.drain(now + SWEEP_AFTER_SECS).await,
        vec![Ok(Forwarded::Delivered)]
    );
    assert_eq!(w.sink.got().len(), 1);
    assert!(w.outbox().await.is_empty());
}

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

impl World {
    async fn dead(&self) -> Vec<(String, wxpush_shared::store::Attrs)> {
        self.store
            .query(&format!("fwd#dead#{}", self.appid))
            .await
            .unwrap()
    }
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

// ------------------------------------------------------------------ real parts

/// EventBridge on moto: a bus that does not exist yet fails the delivery (the job retries);
/// once it exists, a rule on `wechat.event.subscribe` hands the event to an SQS queue with
/// source `wxpush`, the detail type and the detail as forwarded.
#[tokio::test]
async fn an_eventbridge_bus_gets_the_event_once_it_exists() {
    let sdk = wxpush_tests::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bus = wxpush_tests::unique("wxpush-bus");
    let sink = EventBridgeSink::new(events.clone(), bus.clone());
    let event = ForwardedEvent {
        detail_type: "wechat.event.subscribe".into(),
        event_id: "e1".into(),
        appid: "wx0123456789abcdef".into(),
        openid: "o-bus".into(),
        unionid: Some("u-bus".into()),
        create_time: 1_700_000_000,
        message: serde_json::from_value(json!({"Event": "subscribe", "EventKey": ""})).unwrap(),
    };
    let err = sink.deliver(&event).await.unwrap_err();
    assert!(err.contains("PutEvents"), "{err}");

    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = wxpush_tests::moto_queue(&sqs, "bus-target").await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = wxpush_tests::unique("subscribe");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(
            json!({"source": ["wxpush"], "detail-type": ["wechat.event.subscribe"]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sink.deliver(&event).await.unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let messages = got.messages();
    assert_eq!(messages.len(), 1);
    let envelope: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(envelope["source"], "wxpush");
    assert_eq!(envelope["detail-type"], "wechat.event.subscribe");
    assert_eq!(
        envelope["detail"],
        json!({"event_id": "e1", "appid": "wx0123456789abcdef", "openid": "o-bus",
               "unionid": "u-bus", "create_time": 1_700_000_000,
               "message": {"Event": "subscribe", "EventKey": ""}})
    );
}

/// A webhook that answers 503 to its first `down_for` requests, then keeps what it gets. It
/// checks `Wxpush-Signature` on every request as a receiver would (with the local server's
/// secret): an unsigned or forged one is refused with 401, and every `t` it saw is kept.
struct Webhook {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    calls: Arc<AtomicU32>,
    signed_at: Arc<Mutex<Vec<Result<i64, String>>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self._server.abort();
    }
}

async fn webhook(down_for: u32) -> Webhook {
    use axum::http::{HeaderMap, StatusCode};
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let calls = Arc::new(AtomicU32::new(0));
    let signed_at: Arc<Mutex<Vec<Result<i64, String>>>> = Arc::default();
    let (g, c, sig) = (got.clone(), calls.clone(), signed_at.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (g, c, sig) = (g.clone(), c.clone(), sig.clone());
            async move {
                let header = headers
                    .get("wxpush-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let checked = wxpush_tests::signature::verify(
                    wxpush_tests::FORWARD_SECRET,
                    header,
                    body.as_bytes(),
                    now_unix(),
                );
                sig.lock().unwrap().push(checked.clone());
                if checked.is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                if c.fetch_add(1, Ordering::SeqCst) < down_for {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let kind = headers
                    .get("x-wxpush-detail-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                g.lock()
                    .unwrap()
                    .push((kind, serde_json::from_str(&body).unwrap_or(Value::Null)));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Webhook {
        url: format!("http://{addr}/events"),
        got,
        calls,
        signed_at,
        _server: server,
    }
}

/// `wxpush serve --forward URL`: the webhook is down for the first delivery; the event is
/// acknowledged at once and reaches the webhook on the retry, once.
#[tokio::test]
async fn the_local_server_forwards_to_a_webhook_that_is_down_at_first() {
    let hook = webhook(1).await;
    let appid = random_appid();
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: appid.clone(),
            kind: AppKind::OfficialAccount.as_str().into(),
            app_secret: "serve-secret".into(),
            callback_token: Some(TOKEN.into()),
            ..AppEntry::default()
        }],
    };
    let server = wxpush_tests::local_server_forwarding(
        apps,
        "fwd-api-key",
        Some(hook.url.clone()),
        Duration::from_secs(3600),
    )
    .await;
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/wechat/{appid}?{}",
            server.url(),
            wxpush_tests::query_string(&q)
        ))
        .body(text_message("o-hook", 60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "success");
    // The first attempt is refused; the retry comes 5 s later. Bounded wait.
    for _ in 0..200 {
        if !hook.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(hook.calls.load(Ordering::SeqCst), 2);
    // Both deliveries signed, the retry again with its own (later) t.
    let signed_at = hook.signed_at.lock().unwrap().clone();
    match signed_at.as_slice() {
        [Ok(first), Ok(retry)] => assert!(retry >= &(first + 4), "{signed_at:?}"),
        other => panic!("two signed deliveries: {other:?}"),
    }
    assert_eq!(got[0].0, "wechat.text");
    assert_eq!(got[0].1["appid"], appid.as_str());
    assert_eq!(got[0].1["openid"], "o-hook");
    assert_eq!(got[0].1["message"]["Content"], "你好 <wxpush>");
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `secs` seconds.
async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..secs * 20 {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// `wxpush serve --sandbox --forward URL` end to end, with no hand-made callback: a user
/// follows the demo official account (the emulator pushes an encrypted `subscribe`), which is
/// recorded, completed with its unionid and forwarded; a template message to that unionid is
/// sent, the emulator pushes `TEMPLATESENDJOBFINISH`, and the message reads `delivered`; a
/// mini program subscribe message brings `subscribe_msg_sent_event`; an unfollow shows in the
/// user's accounts.
#[tokio::test]
async fn the_sandbox_pushes_back_and_every_push_is_recorded_and_forwarded() {
    use wxpush_cli::serve::demo_apps;
    let hook = webhook(0).await;
    let apps = demo_apps();
    let (oa, mp) = (apps.apps[0].appid.clone(), apps.apps[1].appid.clone());
    let server = wxpush_tests::local_server_forwarding(
        apps,
        "sandbox-key",
        Some(hook.url.clone()),
        Duration::from_secs(3600),
    )
    .await;
    let base = server.url();
    let http = reqwest::Client::new();
    let control = |path: &str, body: Value| {
        let req = http.post(format!("{base}/sandbox{path}")).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    let api_get = |path: String| {
        let req = http
            .get(format!("{base}/v1{path}"))
            .bearer_auth("sandbox-key");
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let hook_got = |kind: &'static str| {
        let got = hook.got.clone();
        move || {
            let found = got
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>();
            async move { (!found.is_empty()).then_some(found) }
        }
    };

    // 1. Follow: pushed, recorded, the unionid looked up, forwarded.
    control(
        "/users/o-fan/follow",
        json!({"appid": oa, "unionid": "u-fan"}),
    )
    .await;
    let subscribed = eventually(10, hook_got("wechat.event.subscribe"))
        .await
        .expect("the subscribe event reaches the webhook");
    assert_eq!(subscribed[0]["openid"], "o-fan");
    assert_eq!(subscribed[0]["message"]["Event"], "subscribe");
    let accounts = eventually(10, || {
        let f = api_get("/users/u-fan".into());
        async move {
            let u = f.await;
            (u["accounts"][0]["subscribed"] == true).then_some(u)
        }
    })
    .await
    .expect("the follower is mapped to its unionid");
    assert_eq!(accounts["accounts"][0]["openid"], "o-fan");

    // 2. A template message to the unionid; the emulator reports it delivered.
    let sent = http
        .post(format!("{base}/v1/apps/{oa}/messages"))
        .bearer_auth("sandbox-key")
        .json(
            &json!({"type": "template", "to": {"unionid": "u-fan"}, "template_id": "TPL1",
                      "data": {"thing1": {"value": "您的订单已发货"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().await.unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    let delivered = eventually(10, || {
        let f = api_get(format!("/apps/{oa}/messages/{id}"));
        async move {
            let m = f.await;
            (m["status"] == "delivered").then_some(m)
        }
    })
    .await
    .expect("TEMPLATESENDJOBFINISH marks the message delivered");
    assert_eq!(delivered["delivery"]["status"], "success");
    let finished = eventually(10, hook_got("wechat.event.TEMPLATESENDJOBFINISH"))
        .await
        .expect("the delivery report is forwarded too");
    assert_eq!(
        finished[0]["message"]["MsgID"],
        sent["wechat_msgid"].to_string().as_str()
    );

    // 3. A mini program subscribe message: granted, sent, reported sent.
    control(
        "/users",
        json!({"appid": mp, "openid": "m-fan", "unionid": "u-fan"}),
    )
    .await;
    control(
        "/grants",
        json!({"appid": mp, "openid": "m-fan", "template_id": "SUB1"}),
    )
    .await;
    let sub = http
        .post(format!("{base}/v1/apps/{mp}/messages"))
        .bearer_auth("sandbox-key")
        .json(
            &json!({"type": "subscribe", "to": {"openid": "m-fan"}, "template_id": "SUB1",
                      "data": {"phrase1": {"value": "已发货"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 200, "{}", sub.text().await.unwrap());
    let sent_event = eventually(10, hook_got("wechat.event.subscribe_msg_sent_event"))
        .await
        .expect("subscribe_msg_sent_event is pushed and forwarded");
    assert_eq!(
        sent_event[0]["message"]["SubscribeMsgSentEvent"]["List"][0]["TemplateId"],
        "SUB1"
    );

    // 4. Unfollow.
    control("/users/o-fan/unfollow", json!({"appid": oa})).await;
    eventually(10, || {
        let f = api_get("/users/u-fan".into());
        let oa = oa.clone();
        async move {
            let u = f.await;
            let oa_account = u["accounts"]
                .as_array()?
                .iter()
                .find(|a| a["appid"] == oa.as_str())?
                .clone();
            (oa_account["subscribed"] == false).then_some(())
        }
    })
    .await
    .expect("the unsubscribe is recorded");
    eventually(10, hook_got("wechat.event.unsubscribe"))
        .await
        .expect("and forwarded");

    // The grant itself was pushed too (subscribe_msg_popup_event).
    eventually(10, hook_got("wechat.event.subscribe_msg_popup_event"))
        .await
        .expect("the grant is pushed and forwarded");

    // Every push was answered `success` on its first try.
    let pushes: Value = http
        .get(format!("{base}/sandbox/pushes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pushes = pushes.as_array().unwrap();
    assert_eq!(pushes.len(), 5, "{pushes:?}");
    for p in pushes {
        assert_eq!(p["status"], "delivered", "{p}");
        assert_eq!(p["answer"], "success", "{p}");
        assert_eq!(p["attempts"], 1, "{p}");
    }
    // Each event forwarded once.
    assert_eq!(hook.got.lock().unwrap().len(), 5);
}

/// The standalone emulator (`wxpush sandbox --callback-base URL`) retries a push WeChat's way
/// (3 tries in all), signs it with the app's Token, and lists every outcome; without a
/// callback base it lists the push as not sent.
#[tokio::test]
async fn the_emulator_retries_a_push_three_times_and_lists_the_outcome() {
    use wxpush_cli::sandbox::CallbackKeys;
    let appid = random_appid();
    let mut app = wxpush_tests::emulated(&appid, "push-secret", AppKind::OfficialAccount);
    app.callback = Some(CallbackKeys {
        token: "pushtoken".into(),
        encoding_aes_key: None,
        encrypted: false,
    });
    wxpush_tests::remember_secrets(["pushtoken".to_string()]);
    let emulator = wxpush_tests::EmulatorServer::start(vec![app]).await;
    let http = reqwest::Client::new();
    let follow = |openid: &'static str| {
        http.post(format!("{}/sandbox/users/{openid}/follow", emulator.base))
            .json(&json!({"appid": appid}))
            .send()
    };
    let pushes = || async {
        http.get(format!("{}/sandbox/pushes", emulator.base))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    };
    // No callback base yet: listed, not sent.
    assert!(follow("o-a").await.unwrap().status().is_success());
    assert_eq!(pushes().await[0]["status"], "not_pushed");

    // A receiver that fails twice, then answers `success`; it checks the signature itself.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let receiver = axum::Router::new().route(
        "/wechat/{appid}",
        axum::routing::post(
            move |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >,
                  body: String| {
                let c = c.clone();
                async move {
                    let signed = wxpush_shared::callback::signature::verify(
                        &q["signature"],
                        &["pushtoken", &q["timestamp"], &q["nonce"]],
                    );
                    assert!(signed && body.contains("<Event><![CDATA[subscribe]]></Event>"));
                    if c.fetch_add(1, Ordering::SeqCst) < 2 {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                    } else {
                        (axum::http::StatusCode::OK, "success".to_string())
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    emulator
        .emu
        .set_callback_base(Some(format!("http://{addr}/wechat")));
    assert!(follow("o-b").await.unwrap().status().is_success());
    let outcome = eventually(10, || async {
        let all = pushes().await;
        (all.len() == 2).then(|| all[1].clone())
    })
    .await
    .expect("the push ends");
    assert_eq!(outcome["status"], "delivered", "{outcome}");
    assert_eq!(outcome["attempts"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.abort();
    // The receiver is gone: three failed tries, listed as failed.
    assert!(follow("o-c").await.unwrap().status().is_success());
    let failed = eventually(10, || async {
        let all = pushes().await;
        (all.len() == 3).then(|| all[2].clone())
    })
    .await
    .expect("the push ends");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 3);
}
