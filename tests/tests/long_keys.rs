//! Long key parts: every field of a push that reaches an item key (`FromUserName`, a menu URL
//! in `EventKey`, `MsgId`/`MsgID`, template ids) at the longest WeChat sends — an `EventKey`
//! of 1 024 bytes, and the others as long — on moto's DynamoDB, with DynamoDB's key limits
//! (2 048 bytes of partition key, 1 024 of sort key) enforced on every call
//! ([`KeyLimitStore`]: moto checks them only on a put). Each push is answered `success`, its
//! event recorded once with all its effects, and forwarded once; a retry changes nothing.

use async_trait::async_trait;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::callback::message::parse_message;
use wxpush_shared::callback::service::{CallbackService, FORWARD_HOLD_SECS};
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{EventSink, ForwardedEvent, Forwarder, SWEEP_AFTER_SECS, event_id};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;
use wxpush_shared::store::{Attr, ItemKey, StateStore};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::faults::RecordingQueue;
use wxpush_tests::key_limits::{KeyLimitStore, MAX_PARTITION_KEY, MAX_SORT_KEY};
use wxpush_tests::{TokenWorld, apigw_callback_request, signed_query};

const TOKEN: &str = "cbtoken"; // what put_app stores as callback_token
const SECRET: &str = "long-keys-app-secret";

/// A sink that keeps every event it gets.
#[derive(Default)]
struct Sink(Mutex<Vec<ForwardedEvent>>);

#[async_trait]
impl EventSink for Sink {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// `n` bytes of `unit` repeated (`unit`'s characters may be several bytes: the result ends
/// on a character boundary, at most `n` bytes).
fn long(unit: &str, n: usize) -> String {
    let mut s = String::new();
    while s.len() + unit.len() <= n {
        s.push_str(unit);
    }
    s
}

fn event(from: &str, t: i64, inner: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType>{inner}</xml>"
    )
}

/// Every push whose fields reach a key, each at the longest WeChat sends, from `openid`.
fn pushes(openid: &str, t: i64, tpl: &[String; 3], msgid: &str) -> Vec<String> {
    // A menu URL of 1 024 bytes (WeChat's limit for a VIEW button), with multi-byte text.
    let url = format!("https://example.com/页面?q={}", long("路径x", 1024 - 31));
    let url = format!("{url}{}", long("z", 1024 - url.len()));
    assert_eq!(url.len(), 1024);
    let ticket = long("T", 1024);
    let items = |inner: &dyn Fn(&str) -> String| tpl.iter().map(|t| inner(t)).collect::<String>();
    vec![
        event(
            openid,
            t,
            &format!(
                "<Event>subscribe</Event><EventKey><![CDATA[qrscene_{}]]></EventKey><Ticket>{ticket}</Ticket>",
                long("s", 1024 - 8)
            ),
        ),
        event(
            openid,
            t + 1,
            &format!("<Event>VIEW</Event><EventKey><![CDATA[{url}]]></EventKey><MenuId>1</MenuId>"),
        ),
        event(
            openid,
            t + 2,
            &format!(
                "<Event>SCAN</Event><EventKey><![CDATA[{}]]></EventKey><Ticket>{ticket}</Ticket>",
                long("k", 1024)
            ),
        ),
        event(
            openid,
            t + 3,
            &format!(
                "<Event>TEMPLATESENDJOBFINISH</Event><MsgID>{msgid}</MsgID><Status>success</Status>"
            ),
        ),
        event(
            openid,
            t + 4,
            &format!(
                "<Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent>{}</SubscribeMsgPopupEvent>",
                items(&|t| format!(
                    "<List><TemplateId>{t}</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List>"
                ))
            ),
        ),
        event(
            openid,
            t + 5,
            &format!(
                "<Event>subscribe_msg_sent_event</Event><SubscribeMsgSentEvent><List><TemplateId>{}</TemplateId><MsgID>{msgid}</MsgID><ErrorCode>0</ErrorCode><ErrorStatus>success</ErrorStatus></List></SubscribeMsgSentEvent>",
                tpl[0]
            ),
        ),
        format!(
            "<xml><ToUserName>gh_1</ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>{msgid}</MsgId></xml>",
            t + 6
        ),
    ]
}

/// The longest values of the fields that reach a key. An openid as long as the EventKey,
/// template ids and MsgIDs too; the unionid WeChat's user/info gives is at the API's own
/// limit (64: it is not part of a push).
struct Longest {
    openid: String,
    unionid: String,
    tpl: [String; 3],
    msgid: String,
}

impl Longest {
    fn new() -> Longest {
        Longest {
            openid: long("o", 1024),
            unionid: long("u", 64),
            tpl: ["A", "B", "C"].map(|c| long(c, 1024)),
            msgid: long("9", 1024),
        }
    }
}

/// One official account on moto (DynamoDB behind [`KeyLimitStore`], SSM), its callback with
/// forwarding, and a worker's job runner; every job goes to `queue`.
struct World {
    world: TokenWorld,
    appid: String,
    limits: Arc<KeyLimitStore>,
    store: Arc<dyn StateStore>,
    queue: Arc<RecordingQueue>,
    sink: Arc<Sink>,
    svc: CallbackService,
    forwarder: Arc<Forwarder>,
    runner: JobRunner,
}

async fn world() -> World {
    let (world, appid) = TokenWorld::with_app(SECRET, None).await;
    let limits = KeyLimitStore::new(world.state_store());
    let store: Arc<dyn StateStore> = limits.clone();
    let (queue, sink) = (RecordingQueue::new(), Arc::new(Sink::default()));
    let secrets = world.secrets();
    let svc =
        CallbackService::new(secrets.clone(), store.clone(), queue.clone()).with_forwarding(true);
    let forwarder = Arc::new(Forwarder::new(
        store.clone(),
        queue.clone(),
        secrets,
        sink.clone(),
    ));
    let runner = wxpush_tests::job_runner(
        world.manager(TokenPolicy::default(), 2000),
        store.clone(),
        queue.clone(),
    )
    .with_forwarder(forwarder.clone());
    World {
        world,
        appid,
        limits,
        store,
        queue,
        sink,
        svc,
        forwarder,
        runner,
    }
}

impl World {
    /// WeChat's push of `xml` through the callback Lambda's handler: status and body.
    async fn push(&self, xml: &str, now: i64) -> (u16, String) {
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        let req = apigw_callback_request("POST", &self.appid, &q, xml.as_bytes(), false);
        let resp = wxpush_callback::handle(&self.svc, req).await;
        let body = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
        (resp.status().as_u16(), body)
    }

    fn assert_within_limits(&self) {
        assert_eq!(
            self.limits.refused(),
            Vec::<String>::new(),
            "a key over a limit"
        );
    }

    /// The follow-up sweep queues the new follower's look-up by its whole openid (the row's
    /// key is its short form).
    async fn follow_up_sweep_finds(&self, openid: &str, now: i64) {
        let sweep_queue = RecordingQueue::new();
        let tokens = self.world.manager(TokenPolicy::default(), 2000);
        FollowerCompletion::new(tokens, self.store.clone())
            .with_queue(sweep_queue.clone())
            .with_sweep_after(0)
            .sweep(now + 1, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let look_ups = sweep_queue.take();
        assert!(
            matches!(&look_ups[..], [Job::CompleteFollower { openid: o, .. }] if o == openid),
            "{look_ups:?}"
        );
    }

    /// Each push's event is recorded (with its body) and was forwarded exactly once; the
    /// outbox is empty.
    async fn assert_recorded_and_forwarded_once(&self, xmls: &[String]) {
        let got = self.sink.0.lock().unwrap().clone();
        let ids: HashSet<&str> = got.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            (got.len(), ids.len()),
            (xmls.len(), xmls.len()),
            "each event once"
        );
        for xml in xmls {
            let key = parse_message(xml).unwrap().dedupe_key();
            let item = self.store.get(&ItemKey::event(&self.appid, &key)).await;
            let item = item
                .unwrap()
                .unwrap_or_else(|| panic!("not recorded: {}", &xml[..200]));
            assert_eq!(item.get("body"), Some(&Attr::S(xml.clone())));
            assert!(
                ids.contains(event_id(&self.appid, &key).as_str()),
                "forwarded"
            );
        }
        let outbox = self.store.query(&ItemKey::outbox_pk(&self.appid)).await;
        assert!(outbox.unwrap().is_empty(), "the outbox is empty");
    }

    /// The effects of the pushes, found by the whole values.
    async fn assert_effects(&self, v: &Longest) {
        let (appid, store) = (&self.appid, &self.store);
        let account = store
            .get(&ItemKey::account(appid, &v.openid))
            .await
            .unwrap();
        let account = account.expect("the follower is recorded");
        assert_eq!(account.get("openid"), Some(&Attr::S(v.openid.clone())));
        assert_eq!(account.get("unionid"), Some(&Attr::S(v.unionid.clone())));
        let union = store.query(&format!("union#{}", v.unionid)).await.unwrap();
        assert_eq!(union.len(), 1, "the unionid's entry");
        let delivery = store
            .get(&ItemKey::delivery(appid, &v.msgid))
            .await
            .unwrap();
        let state = delivery.and_then(|d| d.get("state").cloned());
        assert_eq!(state, Some(Attr::S("delivered".into())));
        for (i, t) in v.tpl.iter().enumerate() {
            let grant = store
                .get(&ItemKey::grant(appid, &v.openid, t))
                .await
                .unwrap();
            let available = grant.and_then(|g| g.get("available").cloned());
            // The first template's acceptance was used by the sent event.
            let want = if i == 0 { 0 } else { 1 };
            assert_eq!(available, Some(Attr::N(want)), "template {i}");
        }
        let follow_ups = store.query(&ItemKey::follow_up_pk(appid)).await.unwrap();
        assert!(
            follow_ups.is_empty(),
            "the follow-up row went with the look-up"
        );
    }
}

#[tokio::test]
async fn the_longest_fields_are_recorded_and_forwarded_once() {
    let w = world().await;
    let v = Longest::new();
    let user = json!({"appid": w.appid, "openid": v.openid, "unionid": v.unionid});
    w.world.emulator.control("/users", user).await;
    let now = now_unix();
    let xmls = pushes(&v.openid, now - 10, &v.tpl, &v.msgid);
    for xml in &xmls {
        // WeChat's push, then its retry: `success` both times.
        for _ in 0..2 {
            let answer = w.push(xml, now).await;
            assert_eq!(
                (answer.0, answer.1.as_str()),
                (200, "success"),
                "{}",
                &xml[..200]
            );
        }
    }
    w.assert_within_limits();
    w.follow_up_sweep_finds(&v.openid, now).await;
    // The outbox sweep queues every row by its (short) sort key, before the callback's own
    // jobs run: both name the same event, which goes out once.
    let swept = w
        .forwarder
        .sweep(now + FORWARD_HOLD_SECS + SWEEP_AFTER_SECS + 1);
    assert_eq!(swept.await.unwrap(), xmls.len());
    wxpush_tests::run_jobs(&w.queue, &w.runner).await;
    w.assert_within_limits();
    w.assert_recorded_and_forwarded_once(&xmls).await;
    w.assert_effects(&v).await;
    // Every key written stays readable and far below the limits.
    let written = w.limits.written();
    let longest = written.iter().map(|k| k.pk.len().max(k.sk.len())).max();
    println!(
        "{} keys written; the longest part {longest:?} bytes (limits: {MAX_PARTITION_KEY} / {MAX_SORT_KEY})",
        written.len()
    );
    assert!(longest.unwrap() <= 300, "{longest:?}");
}
