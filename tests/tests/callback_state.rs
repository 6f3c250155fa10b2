//! Each callback event kind ends in the right stored state (real moto DynamoDB), retries are
//! processed once, and a store that cannot write is never acknowledged.

use serde_json::json;
use std::sync::Arc;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::store::{Attr, ItemKey};
use wxpush_shared::store::{DynamoStateStore, Recorded, StateStore};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::faults::RecordingQueue;
use wxpush_tests::{TokenWorld, job_runner, run_jobs, signed_query};

const TOKEN: &str = "cbtoken"; // what put_app stores as callback_token

struct World {
    world: TokenWorld,
    appid: String,
    store: Arc<dyn StateStore>,
    svc: CallbackService,
    jobs: Arc<RecordingQueue>,
    runner: JobRunner,
}

async fn world() -> World {
    let (world, appid) = TokenWorld::with_app("cb-app-secret", None).await;
    let store: Arc<dyn StateStore> = Arc::new(DynamoStateStore::new(
        world.dynamo.clone(),
        world.table.clone(),
    ));
    let jobs = RecordingQueue::new();
    let svc = CallbackService::new(world.secrets(), store.clone(), jobs.clone());
    let runner = job_runner(
        world.manager(TokenPolicy::default(), 2000),
        store.clone(),
        jobs.clone(),
    );
    World {
        world,
        appid,
        store,
        svc,
        jobs,
        runner,
    }
}

impl World {
    async fn push(&self, xml: &str) -> Result<Recorded, wxpush_shared::ApiError> {
        let now = now_unix();
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        self.svc.receive(&self.appid, &q, xml.as_bytes(), now).await
    }
    async fn grant(&self, template_id: &str) -> wxpush_shared::store::Attrs {
        self.item(ItemKey::grant(&self.appid, "mpuser", template_id))
            .await
            .unwrap()
    }
    async fn item(&self, key: ItemKey) -> Option<wxpush_shared::store::Attrs> {
        self.store.get(&key).await.unwrap()
    }
    /// Runs the queued follow-up jobs as the batch-worker would.
    async fn run_jobs(&self) -> usize {
        run_jobs(&self.jobs, &self.runner).await
    }
}

fn event(from: &str, time: i64, event: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )
}

#[tokio::test]
async fn subscribe_and_unsubscribe_keep_follower_state_and_the_unionid_mapping() {
    let w = world().await;
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.appid, "openid": "fan1", "unionid": "union-1"}),
        )
        .await;
    let t = now_unix();
    a_subscribe_is_completed_once_by_its_job(&w, t).await;
    an_unsubscribe_outlives_a_late_subscribe(&w, t).await;
    a_failing_user_info_loses_no_event(&w, t).await;
}

/// A subscribe is answered without waiting for WeChat, recorded pending with its follow-up
/// row; its job looks the unionid up once, whatever WeChat retries, and deletes the row.
async fn a_subscribe_is_completed_once_by_its_job(w: &World, t: i64) {
    let sub = event(
        "fan1",
        t,
        "subscribe",
        "<EventKey><![CDATA[qrscene_42]]></EventKey>",
    );
    assert_eq!(w.push(&sub).await.unwrap(), Recorded::New);
    assert_eq!(
        w.world.emulator.emu.calls("/cgi-bin/user/info"),
        0,
        "the callback never waits for WeChat"
    );
    let pending = w.item(ItemKey::account(&w.appid, "fan1")).await.unwrap();
    assert_eq!(pending["unionid_pending"], Attr::Bool(true));
    let follow_up = ItemKey::follow_up(&w.appid, "fan1");
    assert!(
        w.item(follow_up.clone()).await.is_some(),
        "recorded with the event"
    );
    assert_eq!(w.run_jobs().await, 1);
    assert!(
        w.item(follow_up).await.is_none(),
        "deleted with the unionid"
    );
    assert_eq!(
        w.push(&sub).await.unwrap(),
        Recorded::Duplicate,
        "WeChat's retry"
    );
    assert_eq!(
        w.run_jobs().await,
        0,
        "a completed follower is not queued again"
    );
    assert_eq!(
        w.world.emulator.emu.calls("/cgi-bin/user/info"),
        1,
        "user/info once, not per retry"
    );
    let account = w.item(ItemKey::account(&w.appid, "fan1")).await.unwrap();
    assert_eq!(account["subscribed"], Attr::Bool(true));
    assert_eq!(account["unionid"], Attr::S("union-1".into()));
    let accounts = w.store.query("union#union-1").await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].1["openid"], Attr::S("fan1".into()));
}

/// An unsubscribe is kept under the openid and the unionid; an older subscribe delivered
/// late is recorded, but does not undo it.
async fn an_unsubscribe_outlives_a_late_subscribe(w: &World, t: i64) {
    let unsub = event(
        "fan1",
        t + 5,
        "unsubscribe",
        "<EventKey><![CDATA[]]></EventKey>",
    );
    assert_eq!(w.push(&unsub).await.unwrap(), Recorded::New);
    assert_eq!(
        w.item(ItemKey::account(&w.appid, "fan1")).await.unwrap()["subscribed"],
        Attr::Bool(false)
    );
    assert_eq!(
        w.store.query("union#union-1").await.unwrap()[0].1["subscribed"],
        Attr::Bool(false)
    );
    assert_eq!(
        w.world.emulator.emu.calls("/cgi-bin/user/info"),
        1,
        "the unionid came from the store"
    );

    let late = event("fan1", t - 60, "subscribe", "");
    assert_eq!(w.push(&late).await.unwrap(), Recorded::New);
    assert_eq!(
        w.item(ItemKey::account(&w.appid, "fan1")).await.unwrap()["subscribed"],
        Attr::Bool(false)
    );
}

/// user/info failing does not lose the event: the follower is recorded without a unionid.
async fn a_failing_user_info_loses_no_event(w: &World, t: i64) {
    w.world
        .emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/user/info", "errcode": -1}),
        )
        .await;
    assert_eq!(
        w.push(&event("fan2", t, "subscribe", "")).await.unwrap(),
        Recorded::New
    );
    let fan2 = w.item(ItemKey::account(&w.appid, "fan2")).await.unwrap();
    assert_eq!(fan2["subscribed"], Attr::Bool(true));
    assert!(!fan2.contains_key("unionid"));
    // The job fails while WeChat does (SQS would deliver it again), and then succeeds.
    let job = w.jobs.take();
    assert_eq!(job.len(), 1);
    assert!(w.runner.run(&job[0], far()).await.is_err());
    let follow_up = ItemKey::follow_up(&w.appid, "fan2");
    assert!(
        w.item(follow_up.clone()).await.is_some(),
        "kept for another try"
    );
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.appid, "openid": "fan2", "unionid": "union-2"}),
        )
        .await;
    w.runner.run(&job[0], far()).await.unwrap();
    let fan2 = w.item(ItemKey::account(&w.appid, "fan2")).await.unwrap();
    assert_eq!(fan2["unionid"], Attr::S("union-2".into()));
    assert_eq!(fan2["unionid_pending"], Attr::Bool(false));
    assert!(w.item(follow_up).await.is_none());
}

/// The scheduled sweep on a worker whose follow-up has no queue (and no forwarder): it runs
/// the look-ups that were never queued itself, while its deadline allows.
#[tokio::test]
async fn a_worker_without_a_queue_runs_the_swept_look_ups_itself() {
    let w = world().await;
    w.world
        .emulator
        .control(
            "/users",
            json!({"appid": w.appid, "openid": "fan3", "unionid": "union-3"}),
        )
        .await;
    // Recorded two minutes ago, while the queue refused the look-up.
    w.jobs.fail_next(1);
    let then = now_unix() - 120;
    let q = signed_query(TOKEN, &then.to_string(), &wxpush_tests::nonce(), &[]);
    let sub = event("fan3", then, "subscribe", "");
    let recorded = w.svc.receive(&w.appid, &q, sub.as_bytes(), then).await;
    assert_eq!(recorded.unwrap(), Recorded::New);
    assert!(w.jobs.is_empty());
    // A worker whose follow-up look-ups have no queue.
    let tokens = w.world.manager(TokenPolicy::default(), 2000);
    let runner = JobRunner::new(
        Arc::new(wxpush_shared::followers::FollowerSync::new(
            tokens.clone(),
            w.store.clone(),
            w.jobs.clone(),
            wxpush_shared::followers::SyncConfig::default(),
        )),
        Arc::new(wxpush_shared::callback::followup::FollowerCompletion::new(
            tokens,
            w.store.clone(),
        )),
    );
    // No time left: nothing runs, the row is kept; then the sweep completes the follower.
    let sweep = wxpush_shared::queue::Job::SweepOutbox;
    runner.run(&sweep, std::time::Instant::now()).await.unwrap();
    let follow_up = ItemKey::follow_up(&w.appid, "fan3");
    assert!(w.item(follow_up.clone()).await.is_some());
    runner.run(&sweep, far()).await.unwrap();
    assert!(w.jobs.is_empty(), "nothing queued");
    let account = w.item(ItemKey::account(&w.appid, "fan3")).await.unwrap();
    assert_eq!(account["unionid"], Attr::S("union-3".into()));
    assert!(w.item(follow_up).await.is_none());
}

fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(60)
}

#[tokio::test]
async fn template_job_finish_sets_the_delivery_status() {
    let w = world().await;
    let t = now_unix();
    for (msgid, status, state) in [
        ("1001", "success", "delivered"),
        ("1002", "failed:user block", "user_blocked"),
        ("1003", "failed: system failed", "failed"),
    ] {
        let xml = event(
            "fan",
            t,
            "TEMPLATESENDJOBFINISH",
            &format!("<MsgID>{msgid}</MsgID><Status><![CDATA[{status}]]></Status>"),
        );
        assert_eq!(w.push(&xml).await.unwrap(), Recorded::New, "{status}");
        let d = w.item(ItemKey::delivery(&w.appid, msgid)).await.unwrap();
        assert_eq!(
            (d["state"].clone(), d["status_raw"].clone()),
            (Attr::S(state.into()), Attr::S(status.into()))
        );
    }
}

#[tokio::test]
async fn subscribe_message_events_keep_per_template_grants() {
    let w = world().await;
    let t = now_unix();
    let popup = |time: i64, list: &str| {
        event(
            "mpuser",
            time,
            "subscribe_msg_popup_event",
            &format!("<SubscribeMsgPopupEvent>{list}</SubscribeMsgPopupEvent>"),
        )
    };
    let item = |tpl: &str, status: &str| {
        format!(
            "<List><TemplateId><![CDATA[{tpl}]]></TemplateId><SubscribeStatusString><![CDATA[{status}]]></SubscribeStatusString><PopupScene>0</PopupScene></List>"
        )
    };
    assert_eq!(
        w.push(&popup(
            t,
            &format!("{}{}", item("T1", "accept"), item("T2", "reject"))
        ))
        .await
        .unwrap(),
        Recorded::New
    );
    let t1 = w.grant("T1").await;
    assert_eq!(
        (t1["status"].clone(), t1["available"].clone()),
        (Attr::S("accepted".into()), Attr::N(1))
    );
    let t2 = w.grant("T2").await;
    assert_eq!(
        (t2["status"].clone(), t2["available"].clone()),
        (Attr::S("rejected".into()), Attr::N(0))
    );

    // A second one-time acceptance adds up; its retry does not.
    let again = popup(t + 1, &item("T1", "accept"));
    assert_eq!(w.push(&again).await.unwrap(), Recorded::New);
    assert_eq!(w.push(&again).await.unwrap(), Recorded::Duplicate);
    assert_eq!(w.grant("T1").await["available"], Attr::N(2));

    // WeChat reports a send: recorded against the template.
    let sent = event(
        "mpuser",
        t + 2,
        "subscribe_msg_sent_event",
        "<SubscribeMsgSentEvent><List><TemplateId>T1</TemplateId><MsgID>777</MsgID><ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>",
    );
    assert_eq!(w.push(&sent).await.unwrap(), Recorded::New);
    let t1 = w.grant("T1").await;
    assert_eq!(
        (t1["last_msgid"].clone(), t1["last_error_code"].clone()),
        (Attr::S("777".into()), Attr::N(0))
    );

    // The user turns the template off in settings.
    let change = event(
        "mpuser",
        t + 3,
        "subscribe_msg_change_event",
        "<SubscribeMsgChangeEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>reject</SubscribeStatusString></List></SubscribeMsgChangeEvent>",
    );
    assert_eq!(w.push(&change).await.unwrap(), Recorded::New);
    let t1 = w.grant("T1").await;
    assert_eq!(
        (t1["status"].clone(), t1["available"].clone()),
        (Attr::S("rejected".into()), Attr::N(0))
    );
}

#[tokio::test]
async fn retries_are_processed_once_and_same_second_events_both_are() {
    let w = world().await;
    let t = now_unix();
    let text = |id: u64| {
        format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>{t}</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>{id}</MsgId></xml>"
        )
    };
    assert_eq!(
        w.push(&text(24_000_000_000_000_001)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.push(&text(24_000_000_000_000_001)).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(
        w.push(&text(24_000_000_000_000_002)).await.unwrap(),
        Recorded::New,
        "same second, other MsgId"
    );
    // Two different events of one user in the same second.
    assert_eq!(
        w.push(&event("u", t, "CLICK", "<EventKey>MENU_A</EventKey>"))
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.push(&event("u", t, "CLICK", "<EventKey>MENU_B</EventKey>"))
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.push(&event("u", t, "VIEW", "<EventKey>MENU_A</EventKey>"))
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        w.push(&event("u", t, "CLICK", "<EventKey>MENU_A</EventKey>"))
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    // Unknown events are recorded and acknowledged, never refused.
    let unknown = event("u", t, "some_future_event", "<Whatever>1</Whatever>");
    assert_eq!(w.push(&unknown).await.unwrap(), Recorded::New);
}

#[tokio::test]
async fn a_store_that_cannot_write_is_never_acknowledged() {
    let w = world().await;
    let broken: Arc<dyn StateStore> = Arc::new(DynamoStateStore::new(
        w.world.dynamo.clone(),
        "no-such-table",
    ));
    let svc = CallbackService::new(w.world.secrets(), broken, RecordingQueue::new());
    let now = now_unix();
    let q = signed_query(TOKEN, &now.to_string(), "1", &[]);
    let err = svc
        .receive(&w.appid, &q, event("u", now, "CLICK", "").as_bytes(), now)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (503, "store_unavailable")
    );
    // The same event still goes through once the store works (nothing half-written blocks it).
    assert_eq!(
        w.push(&event("u", now, "CLICK", "")).await.unwrap(),
        Recorded::New
    );
}
