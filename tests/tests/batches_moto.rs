//! Batches on moto (DynamoDB, SSM, SQS) + the WeChat emulator: created through the `/v1`
//! handler with API Gateway events, fanned out with `SendMessageBatch`, sent by the
//! batch-worker handler from real SQS event JSON, with deliveries whose delete was lost
//! (SQS delivers them again) and a cancel.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::clock::now_unix;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::{JobQueue, SqsJobQueue};
use wxpush_shared::store::Attr;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request, drive_sqs, job_runner, moto_queue, sdk_config};

struct MotoBatches {
    world: TokenWorld,
    oa: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    runner: JobRunner,
    svc: SendService,
}

impl MotoBatches {
    async fn new(config: BatchConfig) -> MotoBatches {
        let (world, oa, _mp) = TokenWorld::with_oa_and_mp().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
        let queue_url = moto_queue(&sqs, "wxpush-batch-").await;
        let queue: Arc<dyn JobQueue> = Arc::new(SqsJobQueue::new(sqs.clone(), &queue_url));
        let tokens = world.manager(TokenPolicy::default(), 2000);
        let store = world.state_store();
        let svc = SendService::new(tokens.clone(), store.clone(), Duration::from_secs(2));
        let batches = Arc::new(Batches::new(
            svc.sender.clone(),
            store.clone(),
            queue.clone(),
            config,
        ));
        let runner = job_runner(tokens, store, queue).with_batches(batches.clone());
        MotoBatches {
            world,
            oa,
            sqs,
            queue_url,
            runner,
            svc: svc.with_batches(batches),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = handle(
            &self.svc,
            apigw_v1_request(method, path, body.as_ref(), &[]),
        )
        .await;
        (
            resp.status().as_u16(),
            serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null),
        )
    }

    /// Runs the queue through the batch-worker handler ([`drive_sqs`]); the first
    /// `lose_deletes` invocations lose their deletes, so SQS delivers those records again.
    /// Returns (invocations, records delivered again).
    async fn drive(&self, lose_deletes: usize, max_invocations: usize) -> (usize, usize) {
        let d = drive_sqs(
            &self.sqs,
            &self.queue_url,
            &self.runner,
            60_000,
            lose_deletes,
            max_invocations,
        )
        .await;
        (d.invocations, d.redelivered)
    }

    async fn delivered(&self) -> HashMap<String, usize> {
        self.world.emulator.delivered_per_user(&self.oa).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_through_sqs_and_dynamodb_once_per_recipient() {
    let m = MotoBatches::new(BatchConfig {
        chunk_size: 40,
        concurrency: 8,
        default_rate: 200,
        retry_backoff: Duration::from_millis(100),
        reserve: Duration::from_secs(2),
        ..BatchConfig::default()
    })
    .await;
    let now = now_unix();
    let users: Vec<Value> = (0..120)
        .map(|i| json!({"appid": m.oa, "openid": format!("m{i}"), "subscribed": true, "last_interaction": now}))
        .collect();
    m.world.emulator.control("/users", json!(users)).await;
    let mut recipients: Vec<Value> = (0..120)
        .map(|i| json!({"openid": format!("m{i}")}))
        .collect();
    recipients.push(json!({"openid": "m7"}));
    let path = format!("/v1/apps/{}/batches", m.oa);
    let (status, created) = m
        .call(
            "POST",
            &path,
            Some(json!({"message": {"type": "custom", "msgtype": "text", "text": {"content": "停机维护"}}, "recipients": recipients})),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(
        (created["total"].as_i64(), created["duplicates"].as_i64()),
        (Some(120), Some(1))
    );
    let id = created["id"].as_str().unwrap().to_string();
    // The first two receives lose their deletes: those records come back and run again.
    let (invocations, redelivered) = m.drive(2, 200).await;
    assert!(redelivered > 0, "SQS delivered records again");
    let (status, body) = m.call("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["done"], true, "{body}");
    assert_eq!(body["sent"], 120, "{body}");
    assert_eq!(body["queued"], 0);
    assert_eq!(
        body["requested_by"],
        "arn:aws-cn:sts::123456789012:assumed-role/order-service/order-service"
    );
    let per_user = m.delivered().await;
    assert_eq!(per_user.len(), 120);
    assert!(per_user.values().all(|&c| c == 1), "{per_user:?}");
    the_pace_never_passed(&m, 200).await;
    println!(
        "moto batch: 120 recipients, {invocations} worker invocations, {redelivered} redelivered records"
    );

    a_batch_cancelled_before_any_worker_ran_sends_nothing(&m, &path).await;
}

/// The pace lives in DynamoDB: one counter per second, never past `rate`.
async fn the_pace_never_passed(m: &MotoBatches, rate: i64) {
    let pace = m
        .world
        .state_store()
        .query(&format!("pace#{}", m.oa))
        .await
        .unwrap();
    assert!(!pace.is_empty());
    for (_, a) in &pace {
        assert!(
            matches!(a.get("used"), Some(Attr::N(n)) if *n <= rate),
            "{a:?}"
        );
    }
}

/// A batch cancelled before any worker ran: every recipient cancelled, nothing sent (the
/// first batch's 120 messages stay all there are).
async fn a_batch_cancelled_before_any_worker_ran_sends_nothing(m: &MotoBatches, path: &str) {
    let (status, created) = m
        .call(
            "POST",
            path,
            Some(json!({"message": {"type": "custom", "msgtype": "text", "text": {"content": "取消"}}, "recipients": (0..90).map(|i| json!({"openid": format!("m{i}")})).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(status, 202);
    let id = created["id"].as_str().unwrap();
    let (status, cancelled) = m.call("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(
        (cancelled["state"].as_str(), cancelled["cancelled"].as_i64()),
        (Some("cancelled"), Some(90))
    );
    assert_eq!(cancelled["done"], true);
    m.drive(0, 50).await;
    assert_eq!(m.delivered().await.values().sum::<usize>(), 120);
    let (_, after) = m.call("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(
        (after["cancelled"].as_i64(), after["sent"].as_i64()),
        (Some(90), Some(0))
    );
}

/// The largest batch docs/api.md allows is accepted in one request, well inside API
/// Gateway's 29 s: 100 000 recipients checked, 200 chunks written to DynamoDB, one fan-out
/// job queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_000_recipient_batch_is_accepted_in_one_request() {
    let m = MotoBatches::new(BatchConfig::default()).await;
    let recipients: Vec<Value> = (0..100_000)
        .map(|i| json!({"openid": format!("oLargeBatchRecipient{i:08}")}))
        .collect();
    let body = json!({"message": {"type": "template", "template_id": "TPL_all", "data": {"thing1": {"value": "全员通知"}}}, "recipients": recipients});
    let started = std::time::Instant::now();
    let (status, created) = m
        .call("POST", &format!("/v1/apps/{}/batches", m.oa), Some(body))
        .await;
    let took = started.elapsed();
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["total"], 100_000);
    println!("100 000-recipient POST on moto: {} ms", took.as_millis());
    assert!(took < Duration::from_secs(29), "{took:?}");
    let id = created["id"].as_str().unwrap();
    let chunks = m
        .world
        .state_store()
        .query(&format!("bprog#{}#{id}", m.oa))
        .await
        .unwrap();
    assert_eq!(chunks.len(), 200);
    let queued = m
        .sqs
        .get_queue_attributes()
        .queue_url(&m.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    let waiting = queued
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned();
    assert_eq!(waiting.as_deref(), Some("1"), "one fan-out job");
}
