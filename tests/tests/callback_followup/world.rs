//! One official account on moto or the embedded store, its callback service and job runner
//! behind a fault plan, and what the tests read back.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::AppKind;
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore, SecretStore};
use wxpush_shared::store::{Attr, Attrs, EmbeddedStateStore, ItemKey, Recorded, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy};
use wxpush_tests::faults::{Faults, FaultyStateStore, RecordingQueue};
use wxpush_tests::{EmulatorServer, TokenWorld, apigw_callback_request, signed_query};

pub const TOKEN: &str = "cbtoken"; // what put_app stores as callback_token
pub const SECRET: &str = "fup-app-secret";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Moto,
    Embedded,
}

pub const BACKENDS: [Backend; 2] = [Backend::Moto, Backend::Embedded];

/// One official account, its callback and job runner over a store that injects `faults`.
pub struct World {
    pub appid: String,
    pub emulator: EmulatorServer,
    pub tokens: Arc<TokenManager>,
    pub secrets: Arc<dyn SecretStore>,
    /// The store underneath the faults, for looking.
    pub store: Arc<dyn StateStore>,
    pub faulty: Arc<dyn StateStore>,
    pub faults: Arc<Faults>,
    pub jobs: Arc<RecordingQueue>,
    pub svc: CallbackService,
}

pub async fn world(backend: Backend) -> World {
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
    pub async fn wechat_knows(&self, openid: &str, unionid: &str) {
        self.emulator
            .control(
                "/users",
                json!({"appid": self.appid, "openid": openid, "unionid": unionid}),
            )
            .await;
    }

    pub fn user_info_calls(&self) -> u64 {
        self.emulator.emu.calls("/cgi-bin/user/info")
    }

    /// The follow-up of this world: its sweep queues on the world's queue.
    pub fn completion(&self) -> FollowerCompletion {
        FollowerCompletion::new(self.tokens.clone(), self.faulty.clone())
            .with_queue(self.jobs.clone())
    }

    /// A job runner as the batch-worker builds one (no forwarder): the sweep's grace
    /// `sweep_after` seconds, so the wall clock can run it.
    pub fn runner(&self, sweep_after: i64) -> JobRunner {
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
    pub async fn push_http(&self, xml: &str) -> (u16, String) {
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
    pub async fn push_at(&self, xml: &str, now: i64) -> Result<Recorded, wxpush_shared::ApiError> {
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        self.svc.receive(&self.appid, &q, xml.as_bytes(), now).await
    }

    pub async fn item(&self, key: ItemKey) -> Option<Attrs> {
        self.store.get(&key).await.unwrap()
    }

    pub async fn follow_ups(&self) -> Vec<String> {
        let rows = self.store.query(&ItemKey::follow_up_pk(&self.appid)).await;
        rows.unwrap()
            .into_iter()
            .map(|(openid, _)| openid)
            .collect()
    }

    /// The openids of the queued look-ups (the queue is left empty); every job queued is one.
    pub fn queued_look_ups(&self) -> Vec<String> {
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
    pub async fn run_look_ups(&self, runner: &JobRunner) -> Vec<String> {
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
    pub async fn assert_completed(&self, openid: &str, unionid: &str) {
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

pub fn subscribe(from: &str, time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
         <EventKey><![CDATA[]]></EventKey></xml>"
    )
}

pub fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}
