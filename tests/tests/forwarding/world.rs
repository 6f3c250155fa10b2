//! The forwarding world: a callback service and a forwarder over the embedded store (behind a
//! fault plan), a recording queue and a sink that fails while told to; the pushes it receives.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{EventSink, Forwarded, ForwardedEvent, Forwarder};
use wxpush_shared::queue::Job;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{EmbeddedStateStore, ItemKey, Recorded, StateStore};
use wxpush_tests::faults::{Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{memory_db, random_appid, signed_query};

pub const TOKEN: &str = "fwdtoken";

/// A sink that keeps what it gets, and fails while told to.
#[derive(Default)]
pub struct TestSink {
    got: Mutex<Vec<ForwardedEvent>>,
    pub fail_next: AtomicU32,
    pub calls: AtomicU32,
}

impl TestSink {
    pub fn got(&self) -> Vec<ForwardedEvent> {
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

pub struct World {
    pub appid: String,
    pub callback: CallbackService,
    pub forwarder: Forwarder,
    pub store: Arc<dyn StateStore>,
    pub faulty: Arc<dyn StateStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub faults: Arc<Faults>,
    pub queue: Arc<RecordingQueue>,
    pub sink: Arc<TestSink>,
}

pub fn world() -> World {
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

pub fn text_message(from: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[你好 <wxpush>]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

pub fn popup_event(from: &str) -> String {
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
    pub async fn push(&self, xml: &str) -> Result<Recorded, wxpush_shared::ApiError> {
        let now = now_unix();
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        self.callback
            .receive(&self.appid, &q, xml.as_bytes(), now)
            .await
    }

    /// Runs the queued forwarding jobs (and the retries they queue) as the worker would,
    /// `now` as the clock. Returns each job's outcome, in order. Bounded.
    pub async fn drain(&self, now: i64) -> Vec<Result<Forwarded, String>> {
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

    pub async fn outbox(&self) -> Vec<(String, wxpush_shared::store::Attrs)> {
        self.store
            .query(&ItemKey::outbox_pk(&self.appid))
            .await
            .unwrap()
    }

    pub async fn dead(&self) -> Vec<(String, wxpush_shared::store::Attrs)> {
        self.store
            .query(&format!("fwd#dead#{}", self.appid))
            .await
            .unwrap()
    }
}
