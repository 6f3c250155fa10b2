//! The SQS worker: each record is one [`Job`]; a record whose job fails on the store or the
//! queue is reported back (partial batch response) so SQS delivers it again, the others are
//! deleted. A record that is not a job is logged and dropped (retrying cannot fix it).
//!
//! A record on its last delivery (`ApproximateReceiveCount` at the queue's
//! `maxReceiveCount`, given as `WXPUSH_JOB_MAX_RECEIVES`) is run knowing it: a batch chunk
//! then fails what it could not send, so the batch shows it, before the record goes to the
//! dead-letter queue.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use wxpush_shared::clock::now_unix_millis;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;

/// When the invocation must be done by (the Lambda deadline; `fallback` from now without one).
pub fn deadline_of(deadline_ms: u64, fallback: Duration) -> Instant {
    let now = Instant::now();
    if deadline_ms == 0 {
        return now + fallback;
    }
    let left = (deadline_ms as i64 - now_unix_millis()).max(0) as u64;
    now + Duration::from_millis(left)
}

/// The queue's `maxReceiveCount` unless `WXPUSH_JOB_MAX_RECEIVES` says otherwise.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// `WXPUSH_JOB_MAX_RECEIVES` is set to something other than a whole number from 1.
#[derive(Debug, thiserror::Error)]
#[error("WXPUSH_JOB_MAX_RECEIVES must be a whole number from 1")]
pub struct MaxReceivesError;

/// `WXPUSH_JOB_MAX_RECEIVES`, or [`DEFAULT_MAX_RECEIVES`].
pub fn max_receives_from_env() -> Result<u32, MaxReceivesError> {
    match std::env::var("WXPUSH_JOB_MAX_RECEIVES") {
        Err(_) => Ok(DEFAULT_MAX_RECEIVES),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(MaxReceivesError),
    }
}

pub async fn handle_event(
    runner: &JobRunner,
    event: LambdaEvent<SqsEvent>,
    max_receives: u32,
) -> SqsBatchResponse {
    let deadline = deadline_of(event.context.deadline, Duration::from_secs(900));
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let job = match record.body.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(job)) => job,
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no body".to_string(),
                };
                error!(message_id = %id, error = %why, "not a wxpush job; dropped");
                continue;
            }
        };
        let received: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if let Err(e) = runner
            .run_delivery(&job, deadline, received >= max_receives)
            .await
        {
            warn!(message_id = %id, ?job, error = %e, "job failed; SQS will deliver it again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        } else {
            info!(message_id = %id, "job done");
        }
    }
    response
}

/// The worker's job runner over its clients (what `main` runs): the follower sync and
/// completion, batches, and event forwarding when a bus is configured.
pub fn runner(
    deps: wxpush_shared::runtime::AwsDeps,
    batch_config: wxpush_shared::batch::BatchConfig,
) -> wxpush_shared::jobs::JobRunner {
    use std::sync::Arc;
    use wxpush_shared::batch::Batches;
    use wxpush_shared::callback::followup::FollowerCompletion;
    use wxpush_shared::followers::{FollowerSync, SyncConfig};
    use wxpush_shared::forward::Forwarder;
    use wxpush_shared::send::service::Sender;
    let sync = Arc::new(FollowerSync::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
        deps.queue.clone(),
        SyncConfig::default(),
    ));
    let followers = Arc::new(
        FollowerCompletion::new(deps.tokens.clone(), deps.state_store.clone())
            .with_queue(deps.queue.clone()),
    );
    let forwarder = deps.event_sink.clone().map(|sink| {
        Arc::new(Forwarder::new(
            deps.state_store.clone(),
            deps.queue.clone(),
            deps.secrets.clone(),
            sink,
        ))
    });
    let sender = Arc::new(Sender::new(
        deps.tokens,
        deps.state_store.clone(),
        deps.wechat_timeout,
    ));
    let batches = Arc::new(Batches::new(
        sender,
        deps.state_store,
        deps.queue,
        batch_config,
    ));
    let mut runner = wxpush_shared::jobs::JobRunner::new(sync, followers).with_batches(batches);
    if let Some(forwarder) = forwarder {
        runner = runner.with_forwarder(forwarder);
    }
    runner
}
