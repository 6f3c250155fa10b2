//! A new follower's `subscribe` is never lost to the jobs queue: the follow-up row
//! (`fup#{appid}` / openid) is recorded with the event, the unionid look-up is queued after
//! it (a refusal only logged, WeChat still told `success`), and the scheduled sweep queues
//! every look-up that was never queued. Each test runs on moto's DynamoDB and on the
//! embedded store, through a [`FaultyStateStore`] for the store's faults.

use async_trait::async_trait;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxpush_shared::AppKind;
use wxpush_shared::callback::followup::{
    FOLLOW_UP_SWEEP_AFTER_SECS, FOLLOW_UP_TTL_SECS, FollowerCompletion, follow_up_op,
};
use wxpush_shared::callback::message::parse_message;
use wxpush_shared::callback::service::{CallbackService, FORWARD_HOLD_SECS};
use wxpush_shared::clock::now_unix;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::forward::{EventSink, ForwardedEvent, Forwarder, SWEEP_AFTER_SECS};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{Attr, Attrs, EmbeddedStateStore, ItemKey, Recorded, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};
use wxpush_tests::faults::{Call, Fault, Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{EmulatorServer, TokenWorld, apigw_callback_request, signed_query};

const TOKEN: &str = "cbtoken"; // what put_app stores as callback_token
const SECRET: &str = "fup-app-secret";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Moto,
    Embedded,
}

const BACKENDS: [Backend; 2] = [Backend::Moto, Backend::Embedded];

/// One official account, its callback and job runner over a store that injects `faults`.
struct World {
    appid: String,
    emulator: EmulatorServer,
    tokens: Arc<TokenManager>,
    secrets: Arc<dyn SecretStore>,
    /// The store underneath the faults, for looking.
    store: Arc<dyn StateStore>,
    faulty: Arc<dyn StateStore>,
    faults: Arc<Faults>,
    jobs: Arc<RecordingQueue>,
    svc: CallbackService,
}

async fn world(backend: Backend) -> World {
    let (emulator, appid, tokens, secrets, store) = match backend {
        Backend::Moto => {
            let (world, appid) = TokenWorld::with_app(SECRET, None).await;
            let tokens = world.manager(TokenPolicy::default(), 2000);
            let (secrets, store) = (world.secrets(), world.state_store());
            (world.emulator, appid, tokens, secrets, store)
        }
        Backend::Embedded => {
            let appid = wxpush_tests::random_appid();
            let emulator = EmulatorServer::start(vec![wxpush_tests::emulated(
                &appid,
                SECRET,
                AppKind::OfficialAccount,
            )])
            .await;
            let file = AppsFile {
                apps: vec![AppEntry {
                    appid: appid.clone(),
                    kind: "official_account".into(),
                    app_secret: SECRET.into(),
                    callback_token: Some(TOKEN.into()),
                    ..AppEntry::default()
                }],
            };
            wxpush_tests::remember_secrets([TOKEN.to_string(), SECRET.to_string()]);
            let secrets: Arc<dyn SecretStore> = Arc::new(FileSecretStore::from_file(file).unwrap());
            let db = wxpush_tests::memory_db();
            let tokens = Arc::new(TokenManager::new(
                Arc::new(EmbeddedTokenStore::new(db.clone())),
                secrets.clone(),
                emulator.client(2000),
                TokenPolicy::default(),
            ));
            let store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(db));
            (emulator, appid, tokens, secrets, store)
        }
    };
    let faults = Faults::new(11);
    let faulty: Arc<dyn StateStore> = FaultyStateStore::new(store.clone(), faults.clone());
    let jobs = RecordingQueue::new();
    let svc = CallbackService::new(secrets.clone(), faulty.clone(), jobs.clone());
    World {
        appid,
        emulator,
        tokens,
        secrets,
        store,
        faulty,
        faults,
        jobs,
        svc,
    }
}

impl World {
    /// The follower's unionid as WeChat's `user/info` answers it.
    async fn wechat_knows(&self, openid: &str, unionid: &str) {
        self.emulator
            .control(
                "/users",
                json!({"appid": self.appid, "openid": openid, "unionid": unionid}),
            )
            .await;
    }

    fn user_info_calls(&self) -> u64 {
        self.emulator.emu.calls("/cgi-bin/user/info")
    }

    /// The follow-up of this world: its sweep queues on the world's queue.
    fn completion(&self) -> FollowerCompletion {
        FollowerCompletion::new(self.tokens.clone(), self.faulty.clone())
            .with_queue(self.jobs.clone())
    }

    /// A job runner as the batch-worker builds one (no forwarder): the sweep's grace
    /// `sweep_after` seconds, so the wall clock can run it.
    fn runner(&self, sweep_after: i64) -> JobRunner {
        let sync = FollowerSync::new(
            self.tokens.clone(),
            self.faulty.clone(),
            self.jobs.clone(),
            SyncConfig::default(),
        );
        JobRunner::new(
            Arc::new(sync),
            Arc::new(self.completion().with_sweep_after(sweep_after)),
        )
    }

    /// WeChat's push at `now`, through the callback Lambda's handler: its status and body.
    async fn push_http(&self, xml: &str) -> (u16, String) {
        let now = now_unix().to_string();
        let q = signed_query(TOKEN, &now, &wxpush_tests::nonce(), &[]);
        let resp = wxpush_callback::handle(
            &self.svc,
            apigw_callback_request("POST", &self.appid, &q, xml.as_bytes(), false),
        )
        .await;
        let body = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
        (resp.status().as_u16(), body)
    }

    /// WeChat's push, as the service sees it at `now`.
    async fn push_at(&self, xml: &str, now: i64) -> Result<Recorded, wxpush_shared::ApiError> {
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        self.svc.receive(&self.appid, &q, xml.as_bytes(), now).await
    }

    async fn item(&self, key: ItemKey) -> Option<Attrs> {
        self.store.get(&key).await.unwrap()
    }

    async fn follow_ups(&self) -> Vec<String> {
        let rows = self.store.query(&ItemKey::follow_up_pk(&self.appid)).await;
        rows.unwrap()
            .into_iter()
            .map(|(openid, _)| openid)
            .collect()
    }

    /// The openids of the queued look-ups (the queue is left empty); every job queued is one.
    fn queued_look_ups(&self) -> Vec<String> {
        let jobs = self.jobs.take();
        jobs.into_iter()
            .map(|job| match job {
                Job::CompleteFollower { appid, openid } if appid == self.appid => openid,
                other => panic!("not a look-up of this app: {other:?}"),
            })
            .collect()
    }

    /// Runs the queued look-ups with `runner`, as the worker would (each must succeed), and
    /// answers whose they were.
    async fn run_look_ups(&self, runner: &JobRunner) -> Vec<String> {
        let openids = self.queued_look_ups();
        for openid in &openids {
            let job = Job::CompleteFollower {
                appid: self.appid.clone(),
                openid: openid.clone(),
            };
            runner.run(&job, far()).await.unwrap();
        }
        openids
    }

    /// The follower is complete: unionid stored, not pending, its union entry written, and
    /// its follow-up row gone.
    async fn assert_completed(&self, openid: &str, unionid: &str) {
        let account = self
            .item(ItemKey::account(&self.appid, openid))
            .await
            .unwrap();
        assert_eq!(account["unionid"], Attr::S(unionid.into()), "{account:?}");
        assert_eq!(account["unionid_pending"], Attr::Bool(false));
        let union = self.store.query(&format!("union#{unionid}")).await.unwrap();
        assert_eq!(union.len(), 1);
        assert_eq!(union[0].1["openid"], Attr::S(openid.into()));
        let row = self.item(ItemKey::follow_up(&self.appid, openid)).await;
        assert!(row.is_none(), "the follow-up row is deleted: {row:?}");
    }
}

fn subscribe(from: &str, time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
         <EventKey><![CDATA[]]></EventKey></xml>"
    )
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// (a) SQS refuses every enqueue while WeChat tries a new follower's `subscribe` (its first
/// try, and two more as if the answers were lost): each try is answered 200 `success`, the
/// event and the pending follower are recorded once. Then SQS is back: the scheduled sweep,
/// run by the job runner as the worker runs it, queues the look-up, which fills the unionid
/// and deletes the follow-up row.
#[tokio::test]
async fn a_subscribe_is_recorded_and_completed_though_the_queue_is_down_for_all_three_tries() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.wechat_knows("fan-a", "U-a").await;
        w.jobs.fail_next(u32::MAX);
        let sub = subscribe("fan-a", now_unix());
        for attempt in 1..=3 {
            assert_eq!(
                w.push_http(&sub).await,
                (200, "success".to_string()),
                "{backend:?}: try {attempt}"
            );
        }
        assert!(w.jobs.is_empty());
        assert!(
            w.jobs.refused.load(Ordering::SeqCst) >= 3,
            "{backend:?}: the queue was asked"
        );
        assert_eq!(
            w.user_info_calls(),
            0,
            "the callback never waits for WeChat"
        );
        let account = w.item(ItemKey::account(&w.appid, "fan-a")).await.unwrap();
        assert_eq!(account["unionid_pending"], Attr::Bool(true));
        assert_eq!(account["subscribed"], Attr::Bool(true));
        assert_eq!(w.follow_ups().await, ["fan-a"], "{backend:?}");

        // The queue is back; the sweep's schedule queues it (the job comes from SQS).
        w.jobs.fail_next(0);
        let runner = w.runner(0);
        runner.run(&Job::SweepOutbox, far()).await.unwrap();
        assert_eq!(w.run_look_ups(&runner).await, ["fan-a"], "{backend:?}");
        w.assert_completed("fan-a", "U-a").await;
        assert_eq!(w.user_info_calls(), 1);
        // Nothing is left to sweep.
        runner.run(&Job::SweepOutbox, far()).await.unwrap();
        assert!(w.jobs.is_empty(), "{backend:?}");
    }
}

/// (b) Faults in a row for one new follower: the queue refuses throughout, and the first
/// try's transaction fails — before it is applied, or after (the answer lost). WeChat's
/// next try records it once or finds it recorded, and is told `success`; the look-up still
/// runs (from the sweep) and the follower completes.
#[tokio::test]
async fn a_failed_first_record_and_a_refusing_queue_still_end_recorded_once_and_completed() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let runner = w.runner(0);
        // WeChat's tries 5 s apart, all before the sweep runs (on the wall clock).
        let t = now_unix() - 30;
        // (follower, the first try's fault, what the second try finds, when the event was
        // written)
        for (openid, fault, second, written_at) in [
            (
                "fan-before",
                Fault::Before("TransactionConflict"),
                Recorded::New,
                t + 5,
            ),
            (
                "fan-after",
                Fault::After("timeout after commit"),
                Recorded::Duplicate,
                t,
            ),
        ] {
            let unionid = format!("U-{openid}");
            w.wechat_knows(openid, &unionid).await;
            w.jobs.fail_next(u32::MAX);
            w.faults.script(Call::Record, "evt#", fault.clone(), 0, 1);
            let sub = subscribe(openid, t);
            let first = w.push_at(&sub, t).await.unwrap_err();
            assert_eq!(first.status().as_u16(), 503, "{backend:?} {fault:?}");
            // WeChat's second try: recorded now, or found recorded.
            assert_eq!(
                w.push_at(&sub, t + 5).await.unwrap(),
                second,
                "{backend:?} {fault:?}"
            );
            assert!(w.jobs.is_empty());
            // Recorded once: the event as the one try that wrote it left it.
            let key = parse_message(&sub).unwrap().dedupe_key();
            let event = w.item(ItemKey::event(&w.appid, &key)).await.unwrap();
            assert_eq!(
                event["received_at"],
                Attr::N(written_at),
                "{backend:?} {fault:?}"
            );
            assert!(w.follow_ups().await.contains(&openid.to_string()));

            w.jobs.fail_next(0);
            runner.run(&Job::SweepOutbox, far()).await.unwrap();
            assert_eq!(
                w.run_look_ups(&runner).await,
                [openid],
                "{backend:?} {fault:?}"
            );
            w.assert_completed(openid, &unionid).await;
            // A third try (or a redelivered job) changes nothing and asks WeChat nothing.
            let calls = w.user_info_calls();
            assert_eq!(w.push_at(&sub, t + 10).await.unwrap(), Recorded::Duplicate);
            assert!(w.run_look_ups(&runner).await.is_empty());
            assert_eq!(w.user_info_calls(), calls);
        }
        assert_eq!(
            w.user_info_calls(),
            2,
            "{backend:?}: one look-up per follower"
        );
    }
}

/// (c) The sweep leaves rows younger than its grace to their own jobs, queues each old row
/// once per run, reads a bounded number of rows a run (going on from its cursor), passes
/// over expired rows, and a look-up deletes its row — also a late one for a follower
/// already complete.
#[tokio::test]
async fn the_sweep_leaves_young_rows_and_queues_each_old_row_once_per_run() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let t = now_unix();
        let old: Vec<String> = (1..=5).map(|i| format!("o-old{i}")).collect();
        w.jobs.fail_next(u32::MAX);
        for openid in &old {
            assert_eq!(
                w.push_at(&subscribe(openid, t - 100), t - 100)
                    .await
                    .unwrap(),
                Recorded::New
            );
        }
        w.push_at(&subscribe("o-young", t - 10), t - 10)
            .await
            .unwrap();
        w.jobs.fail_next(0);
        assert!(w.jobs.is_empty());
        assert_eq!(w.follow_ups().await.len(), 6);
        let sweeper = w.completion();

        // Before the grace has passed nothing is queued.
        let grace_ends = t - 100 + FOLLOW_UP_SWEEP_AFTER_SECS;
        assert_eq!(sweeper.sweep(grace_ends - 1, far()).await.unwrap(), 0);
        assert!(w.jobs.is_empty());
        // Each old row once per run, the young one not; again in the next run (their
        // look-ups have not run yet).
        for _ in 0..2 {
            assert_eq!(sweeper.sweep(t, far()).await.unwrap(), 5, "{backend:?}");
            assert_eq!(w.queued_look_ups(), old, "{backend:?}");
        }

        // Two rows a run: three runs reach every row once, going on from the cursor.
        let bounded = w.completion().with_sweep_rows(2);
        let mut reached = vec![];
        for run in 0..3 {
            let queued = bounded.sweep(t, far()).await.unwrap();
            let openids = w.queued_look_ups();
            assert_eq!(queued, openids.len());
            assert!(openids.len() <= 2, "{backend:?} run {run}: {openids:?}");
            reached.extend(openids);
        }
        assert_eq!(reached, old, "{backend:?}: each old row once, in order");

        // An expired row (DynamoDB removes it in its own time) is passed over.
        let old_expired = t - 100 + FOLLOW_UP_TTL_SECS;
        let full = w.completion();
        assert_eq!(full.sweep(old_expired, far()).await.unwrap(), 1);
        assert_eq!(w.queued_look_ups(), ["o-young"]);
        // The young row comes due in its turn.
        assert_eq!(
            full.sweep(t - 10 + FOLLOW_UP_SWEEP_AFTER_SECS, far())
                .await
                .unwrap(),
            6
        );

        // The look-ups run: every row is gone, and the sweep has nothing left.
        for openid in old.iter().chain([&"o-young".to_string()]) {
            w.wechat_knows(openid, &format!("U-{openid}")).await;
        }
        let runner = w.runner(0);
        assert_eq!(w.run_look_ups(&runner).await.len(), 6);
        for openid in &old {
            w.assert_completed(openid, &format!("U-{openid}")).await;
        }
        assert!(w.follow_ups().await.is_empty(), "{backend:?}");
        assert_eq!(full.sweep(t + 3_600, far()).await.unwrap(), 0);

        // A row left for a follower already complete: its look-up only deletes it.
        let calls = w.user_info_calls();
        w.store
            .record(&[follow_up_op(&w.appid, "o-old1", t)], t)
            .await
            .unwrap();
        assert_eq!(full.sweep(t + 3_600, far()).await.unwrap(), 1);
        assert_eq!(w.run_look_ups(&runner).await, ["o-old1"]);
        assert!(w.follow_ups().await.is_empty(), "{backend:?}");
        assert_eq!(w.user_info_calls(), calls, "nothing to look up");
    }
}

/// A sink that keeps what it gets.
#[derive(Default)]
struct KeptEvents(Mutex<Vec<ForwardedEvent>>);

#[async_trait]
impl EventSink for KeptEvents {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// With forwarding on and neither the look-up nor the forwarding queued, the sweeps queue
/// the look-up at least one run (5 min) before the forwarding: the forwarded event carries
/// the unionid.
#[tokio::test]
async fn a_new_followers_event_is_forwarded_with_its_unionid_after_the_sweeps() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let svc = CallbackService::new(w.secrets.clone(), w.faulty.clone(), w.jobs.clone())
            .with_forwarding(true);
        let sink = Arc::new(KeptEvents::default());
        let forwarder = Forwarder::new(
            w.faulty.clone(),
            w.jobs.clone(),
            w.secrets.clone(),
            sink.clone(),
        );
        let sweeper = w.completion();
        w.wechat_knows("fan-f", "U-f").await;
        let t = now_unix();
        w.jobs.fail_next(u32::MAX);
        let sub = subscribe("fan-f", t);
        let q = signed_query(TOKEN, &t.to_string(), &wxpush_tests::nonce(), &[]);
        assert_eq!(
            svc.receive(&w.appid, &q, sub.as_bytes(), t).await.unwrap(),
            Recorded::New
        );
        assert_eq!(
            w.jobs.refused.load(Ordering::SeqCst),
            2,
            "the look-up and the forwarding"
        );
        w.jobs.fail_next(0);
        let key = parse_message(&sub).unwrap().dedupe_key();
        let row = w.item(ItemKey::outbox(&w.appid, &key)).await.unwrap();
        assert_eq!(row["next_attempt_at"], Attr::N(t + FORWARD_HOLD_SECS));

        // The run that first finds the follow-up row due, and every run in the next 5 min,
        // queue no forwarding.
        let first = t + FOLLOW_UP_SWEEP_AFTER_SECS;
        assert_eq!(sweeper.sweep(first, far()).await.unwrap(), 1);
        for run in [first, first + 299] {
            assert_eq!(
                forwarder.sweep(run).await.unwrap(),
                0,
                "{backend:?} at {run}"
            );
        }
        let runner = w.runner(FOLLOW_UP_SWEEP_AFTER_SECS);
        assert_eq!(w.run_look_ups(&runner).await, ["fan-f"]);
        w.assert_completed("fan-f", "U-f").await;
        let due = t + FORWARD_HOLD_SECS + SWEEP_AFTER_SECS;
        assert_eq!(forwarder.sweep(due).await.unwrap(), 1);
        let Job::ForwardEvent {
            appid,
            key,
            attempt,
        } = w.jobs.take().remove(0)
        else {
            panic!("a forwarding job")
        };
        forwarder
            .forward(&appid, &key, attempt, false, due)
            .await
            .unwrap();
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].unionid.as_deref(), Some("U-f"), "{backend:?}");
    }
}
