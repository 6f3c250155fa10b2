//! A batch's life: paused by the daily quota and resumed, cancelled, sent to every follower,
//! and a chunk that cannot send given up to the dead-letter queue.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::clock::now_unix;
use wxpush_shared::queue::Job;
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// 45009 (the daily quota) pauses the whole batch: the chunks wait with a delay instead of
/// burning retries, and the batch resumes by itself when the pause is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_pauses_the_batch_and_it_resumes_by_itself() {
    let w = world(BatchConfig {
        chunk_size: 20,
        concurrency: 2,
        ..test_config()
    })
    .await;
    w.add_users("q", 60).await;
    w.emulator
        .control(
            "/quotas",
            json!({"path": "/cgi-bin/message/template/send", "daily_limit": 25}),
        )
        .await;
    let recipients: Vec<Value> = (0..60)
        .map(|i| json!({"openid": format!("q{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("额度测试"), "recipients": recipients}),
        )
        .await;
    let drive = w.drive(Drive {
        workers: 3,
        limit: Duration::from_secs(60),
        ..Drive::default()
    });
    // Paused, and the chunks that hit the quota have recorded what they sent before it.
    let paused = w
        .wait_for(OA, &id, |s| s["state"] == "paused" && s["sent"] == 25)
        .await;
    assert!(
        paused["pause_reason"].as_str().unwrap().contains("45009"),
        "{paused}"
    );
    assert_eq!(paused["sent"], 25, "{paused}");
    assert_eq!(
        paused["failed"], 0,
        "a quota refusal fails no one: {paused}"
    );
    // Waiting chunks were put back with a delay, their retries untouched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = w.queue.jobs();
    assert!(!waiting.is_empty());
    for job in &waiting {
        assert!(matches!(job, Job::BatchChunk { attempt: 0, .. }), "{job:?}");
    }
    // The operator clears the quota; the batch goes on without anyone touching it.
    w.emulator
        .control(
            "/quotas",
            json!({"path": "/cgi-bin/message/template/send", "daily_limit": 100_000}),
        )
        .await;
    let done = w.wait_for(OA, &id, |s| s["done"] == true).await;
    assert_eq!(done["sent"], 60, "{done}");
    assert_eq!(done["state"], "done");
    assert!(drive.await.unwrap().drained);
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 60);
    assert!(per_user.values().all(|&c| c == 1));
}

/// `DELETE` stops what has not been sent: the rest is cancelled, nothing more goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_rest() {
    let w = world(BatchConfig {
        chunk_size: 50,
        concurrency: 4,
        default_rate: 25,
        ..test_config()
    })
    .await;
    w.add_users("x", 200).await;
    let recipients: Vec<Value> = (0..200)
        .map(|i| json!({"openid": format!("x{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("活动取消"), "recipients": recipients}),
        )
        .await;
    let drive = w.drive(Drive {
        workers: 4,
        limit: Duration::from_secs(60),
        ..Drive::default()
    });
    w.wait_for(OA, &id, |s| s["sent"].as_i64().unwrap_or(0) >= 20)
        .await;
    let (status, cancelled) = w
        .call("DELETE", &format!("/v1/apps/{OA}/batches/{id}"), None, &[])
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let done = w.wait_for(OA, &id, |s| s["done"] == true).await;
    assert!(drive.await.unwrap().drained);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_user = w.delivered().await;
    let sent = done["sent"].as_i64().unwrap();
    assert_eq!(per_user.values().sum::<usize>() as i64, sent, "{done}");
    assert!(per_user.values().all(|&c| c == 1));
    assert_eq!(sent + done["cancelled"].as_i64().unwrap(), 200, "{done}");
    assert!(sent < 120, "the cancel stopped the batch early: {done}");
    assert_eq!(
        (done["failed"].as_i64(), done["unknown"].as_i64()),
        (Some(0), Some(0))
    );
    // A second cancel answers the same; the batch stays as it is.
    let (status, again) = w
        .call("DELETE", &format!("/v1/apps/{OA}/batches/{id}"), None, &[])
        .await;
    assert_eq!((status, &again["sent"]), (200, &done["sent"]));
}

/// `"audience": "followers"` reaches every subscribed follower once, and no one who left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followers_audience_reaches_every_subscribed_follower_once() {
    let w = world(test_config()).await;
    w.add_users("f", 230).await;
    // 40 who left: WeChat knows them as not following; the directory says so too.
    let gone: Vec<Value> = (0..40)
        .map(|i| json!({"appid": OA, "openid": format!("gone{i}"), "subscribed": false}))
        .collect();
    w.emulator.control("/users", json!(gone)).await;
    map_unionids(
        &w.store,
        &(0..230)
            .map(|i| (format!("f{i}"), format!("Uf{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    for i in 0..40 {
        let o = format!("gone{i}");
        let op = Op::Set {
            key: ItemKey::account(OA, &o),
            attrs: attrs([
                ("appid", Attr::S(OA.into())),
                ("openid", Attr::S(o.clone())),
                ("subscribed", Attr::Bool(false)),
            ]),
        };
        w.store.record(&[op], now_unix()).await.unwrap();
    }
    let (status, created) = w
        .call(
            "POST",
            &format!("/v1/apps/{OA}/batches"),
            Some(json!({"message": template("关注者通知"), "audience": "followers"})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["audience"], "followers");
    assert_eq!(created["total"], Value::Null, "counted by the workers");
    let id = created["id"].as_str().unwrap();
    let report = w
        .drive(Drive {
            duplicate_rate: 0.3,
            ..Drive::default()
        })
        .await
        .unwrap();
    assert!(report.drained);
    let status = w.status(OA, id).await;
    assert_eq!(status["total"], 230, "{status}");
    assert_eq!(status["sent"], 230, "{status}");
    assert_eq!(status["done"], true);
    let per_user = w.delivered().await;
    assert_eq!(per_user.len(), 230);
    assert!(per_user.values().all(|&c| c == 1));
    assert!(per_user.keys().all(|o| o.starts_with('f')));
    // A mini program has no followers audience.
    let (status, body) = w
        .call(
            "POST",
            &format!("/v1/apps/{MP}/batches"),
            Some(json!({"message": {"type": "subscribe", "template_id": "T", "data": {"thing1": {"value": "x"}}}, "audience": "followers"})),
            &[],
        )
        .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("audience")));
}

/// A chunk that cannot send is put back whichever delivery it is (a job that dies is the
/// sweep's); past its retries it fails its recipients (listed in the batch's failures) and
/// is reported failed, so SQS moves it to the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_chunk_shows_in_the_failures_and_goes_to_the_dead_letter_queue() {
    use aws_lambda_events::sqs::SqsEvent;
    use lambda_runtime::{Context, LambdaEvent};
    let w = world(test_config()).await;
    w.add_users("p", 5).await;
    let recipients: Vec<Value> = (0..5).map(|i| json!({"openid": format!("p{i}")})).collect();
    let id = w
        .create(
            OA,
            json!({"message": template("失败"), "recipients": recipients}),
        )
        .await;
    w.run_fanouts().await;
    let (chunk, _) = w.queue.drain().remove(0);
    // WeChat is busy for every call now.
    w.emulator
        .control(
            "/faults",
            json!({"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 1000}),
        )
        .await;
    let fixture: Value = serde_json::from_str(include_str!("../../data/sqs-event.json")).unwrap();
    let event_for = |receives: &str, job: &Job| {
        let mut e = fixture.clone();
        e["Records"][0]["body"] = json!(serde_json::to_string(job).unwrap());
        e["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(receives);
        let event: SqsEvent = serde_json::from_value(e).unwrap();
        let mut context = Context::default();
        context.deadline = (wxpush_shared::clock::now_unix_millis() + 20_000) as u64;
        LambdaEvent::new(event, context)
    };
    // A delivery that fails on WeChat puts the chunk back with a delay (no failure
    // reported), whichever delivery it is: a job that dies is the sweep's to requeue.
    let first = wxpush_batch_worker::handle_event(&w.runner, event_for("1", &chunk), 5).await;
    assert!(first.batch_item_failures.is_empty());
    assert_eq!(w.status(OA, &id).await["queued"], 5);
    let last = wxpush_batch_worker::handle_event(&w.runner, event_for("5", &chunk), 5).await;
    assert!(last.batch_item_failures.is_empty());
    assert_eq!(w.status(OA, &id).await["queued"], 5);
    // Past its retries the chunk gives its recipients up, and goes to the dead-letter queue.
    let spent = chunk.with_attempt(test_config().max_retries + 1);
    let given_up = wxpush_batch_worker::handle_event(&w.runner, event_for("1", &spent), 5).await;
    assert_eq!(given_up.batch_item_failures.len(), 1);
    let status = w.status(OA, &id).await;
    assert_eq!(
        (status["failed"].as_i64(), status["done"].as_bool()),
        (Some(5), Some(true)),
        "{status}"
    );
    let failures = status["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 5);
    assert_eq!(failures[0]["error"]["error"]["code"], "not_sent");
    assert_eq!(w.delivered().await.len(), 0);
}
