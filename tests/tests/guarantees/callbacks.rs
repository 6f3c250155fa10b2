//! Callbacks: never held by a slow WeChat, and no event deduped away that WeChat sent twice.

use crate::world::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::store::{Attr, ItemKey, Recorded};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::faults::{Call, Fault, RecordingQueue};
use wxpush_tests::{job_runner, run_jobs, signed_query};

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

/// The callback service of the official account, the queue its jobs go to, and the runner
/// that runs them.
struct Callbacks {
    callback: CallbackService,
    jobs: Arc<RecordingQueue>,
    runner: JobRunner,
}

#[tokio::test]
async fn a_slow_wechat_never_holds_a_callback_past_five_seconds() {
    let w = world(2000).await;
    let jobs = RecordingQueue::new();
    let c = Callbacks {
        callback: CallbackService::new(w.world.secrets(), w.store.clone(), jobs.clone()),
        runner: job_runner(
            w.world.manager(TokenPolicy::default(), 2000),
            w.store.clone(),
            jobs.clone(),
        ),
        jobs,
    };
    the_look_up_waits_for_wechat_not_the_callback(&w, &c).await;
    a_job_the_queue_refuses_is_queued_by_the_sweep(&w, &c).await;
    an_unsubscribe_during_the_look_up_wins(&w, &c).await;
}

/// A subscribe while WeChat's user/info (and a token refresh) would take 8 s is answered at
/// once; the queued job completes the follower once WeChat answers.
async fn the_look_up_waits_for_wechat_not_the_callback(w: &World, c: &Callbacks) {
    w.wechat_knows("newfan", "U-new").await;
    // user/info (and a token refresh) would take 8 s.
    w.fault(json!({"path": "/cgi-bin/user/info", "delay_ms": 8000}))
        .await;
    w.fault(json!({"path": "/cgi-bin/stable_token", "delay_ms": 8000}))
        .await;
    let sub = event("newfan", now_unix(), "subscribe", "");
    let answered =
        tokio::time::timeout(Duration::from_secs(4), push(&c.callback, &w.oa, &sub)).await;
    assert_eq!(
        answered.expect("answered within WeChat's 5 s").unwrap(),
        Recorded::New
    );
    assert_eq!(w.calls("/cgi-bin/user/info"), 0);
    assert_eq!(w.calls("/cgi-bin/stable_token"), 0);
    // The queued job completes the follower once WeChat answers.
    w.world.emulator.clear_faults().await;
    assert_eq!(run_jobs(&c.jobs, &c.runner).await, 1);
    let account = w
        .store
        .get(&ItemKey::account(&w.oa, "newfan"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account["unionid"], Attr::S("U-new".into()));
    assert_eq!(w.store.query("union#U-new").await.unwrap().len(), 1);
}

/// The queue refuses the job: the event is recorded all the same and WeChat is told
/// `success` (the follow-up row in its transaction); the sweep queues the look-up.
async fn a_job_the_queue_refuses_is_queued_by_the_sweep(w: &World, c: &Callbacks) {
    c.jobs.fail_next(1);
    w.wechat_knows("fan9", "U-9").await;
    let sub = event("fan9", now_unix(), "subscribe", "");
    assert_eq!(push(&c.callback, &w.oa, &sub).await.unwrap(), Recorded::New);
    assert!(c.jobs.is_empty());
    let completion = wxpush_shared::callback::followup::FollowerCompletion::new(
        w.world.manager(TokenPolicy::default(), 2000),
        w.store.clone(),
    )
    .with_queue(c.jobs.clone());
    let later = now_unix() + wxpush_shared::callback::followup::FOLLOW_UP_SWEEP_AFTER_SECS + 1;
    let swept = completion
        .sweep(
            later,
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(run_jobs(&c.jobs, &c.runner).await, 1);
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
}

/// An unsubscribe between the look-up's read and its write wins: the job re-reads.
async fn an_unsubscribe_during_the_look_up_wins(w: &World, c: &Callbacks) {
    w.wechat_knows("fan10", "U-10").await;
    let t = now_unix();
    push(&c.callback, &w.oa, &event("fan10", t, "subscribe", ""))
        .await
        .unwrap();
    let job = c.jobs.take();
    // The job's write waits; meanwhile the follower leaves.
    w.faults.script(
        Call::Record,
        "acct#",
        Fault::Delay(Duration::from_millis(600)),
        0,
        1,
    );
    let far = Instant::now() + Duration::from_secs(60);
    let (done, left) = tokio::join!(c.runner.run(&job[0], far), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(
            &c.callback,
            &w.oa,
            &event("fan10", t + 1, "unsubscribe", ""),
        )
        .await
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
