//! SQS in moto: a jobs queue, and delivering it to the batch-worker handler as SQS would.

use crate::moto::unique;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::Message;
use aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount;
use std::time::Duration;

/// A jobs queue in moto, with SQS's visibility timeout at 1 s so failed records come back
/// quickly.
pub async fn moto_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("create the queue in moto")
        .queue_url
        .expect("a queue url")
}

/// What [`drive_sqs`] did.
#[derive(Debug, Default)]
pub struct SqsDrive {
    pub invocations: usize,
    /// Records delivered with an `ApproximateReceiveCount` above 1.
    pub redelivered: usize,
}

/// Delivers what is in the moto queue to the batch-worker handler as SQS would: one real SQS
/// event (`tests/data/sqs-event.json`, with each record's id, receipt handle, body and
/// receive count) per receive of up to 10, then deletes the records the handler did not
/// report as failed — except for the first `lose_deletes` invocations, whose deletes are
/// "lost", so SQS delivers those records again. `budget_ms` is each invocation's time left.
/// Stops after `max_invocations`, or when the queue stays empty for four polls.
pub async fn drive_sqs(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    runner: &wxpush_shared::jobs::JobRunner,
    budget_ms: i64,
    lose_deletes: usize,
    max_invocations: usize,
) -> SqsDrive {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../data/sqs-event.json")).unwrap();
    let mut done = SqsDrive::default();
    let mut empty_polls = 0;
    while done.invocations < max_invocations && empty_polls < 4 {
        let messages = receive(sqs, queue_url).await;
        if messages.is_empty() {
            empty_polls += 1;
            tokio::time::sleep(Duration::from_millis(400)).await;
            continue;
        }
        empty_polls = 0;
        let (event, redelivered) = sqs_event(&fixture, &messages);
        done.redelivered += redelivered;
        let response = invoke(runner, event, budget_ms).await;
        done.invocations += 1;
        if done.invocations <= lose_deletes {
            continue;
        }
        delete_handled(sqs, queue_url, &messages, &response).await;
    }
    done
}

/// One receive of up to 10 records, with their receive counts.
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(ApproximateReceiveCount)
        .send()
        .await
        .expect("receive from moto")
        .messages
        .unwrap_or_default()
}

/// The SQS event delivering `messages`, built on the fixture's record; and how many of them
/// were received before.
fn sqs_event(fixture: &serde_json::Value, messages: &[Message]) -> (SqsEvent, usize) {
    let mut redelivered = 0;
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&ApproximateReceiveCount))
                .cloned()
                .unwrap_or_else(|| "1".into());
            if count != "1" {
                redelivered += 1;
            }
            let mut r = fixture["Records"][0].clone();
            r["messageId"] = serde_json::json!(m.message_id());
            r["receiptHandle"] = serde_json::json!(m.receipt_handle());
            r["body"] = serde_json::json!(m.body());
            r["attributes"]["ApproximateReceiveCount"] = serde_json::json!(count);
            r
        })
        .collect();
    let mut event = fixture.clone();
    event["Records"] = serde_json::json!(records);
    (serde_json::from_value(event).unwrap(), redelivered)
}

/// The batch-worker's handler invoked with `event` and `budget_ms` left.
async fn invoke(
    runner: &wxpush_shared::jobs::JobRunner,
    event: SqsEvent,
    budget_ms: i64,
) -> SqsBatchResponse {
    let mut context = lambda_runtime::Context::default();
    context.deadline = (wxpush_shared::clock::now_unix_millis() + budget_ms) as u64;
    wxpush_batch_worker::handle_event(
        runner,
        lambda_runtime::LambdaEvent::new(event, context),
        wxpush_batch_worker::DEFAULT_MAX_RECEIVES,
    )
    .await
}

/// Deletes the records the handler did not report as failed, as SQS's event source does.
async fn delete_handled(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Message],
    response: &SqsBatchResponse,
) {
    for m in messages {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
        if !failed {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}
