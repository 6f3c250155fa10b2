//! Only what is recorded is forwarded, once, with all its fields, whatever fails between the
//! record and the sink's answer.

use crate::world::{popup_event, text_message, world};
use serde_json::{Value, json};
use wxpush_shared::clock::now_unix;
use wxpush_shared::forward::{Forwarded, SWEEP_AFTER_SECS};
use wxpush_shared::store::{Attr, ItemKey, Recorded};
use wxpush_tests::faults::{Call, Fault};

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
