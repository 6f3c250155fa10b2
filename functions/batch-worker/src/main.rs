//! Lambda entry point of the SQS worker: clients built once, then `handle_event` per batch.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use wxpush_batch_worker::{handle_event, max_receives_from_env};
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::forward::Forwarder;
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::runtime::AwsDeps;
use wxpush_shared::send::service::Sender;
use wxpush_shared::wechat::WeChatClientConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let max_receives = max_receives_from_env()?;
    let batch_config = BatchConfig::from_env()?;
    let sync = Arc::new(FollowerSync::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
        deps.queue.clone(),
        SyncConfig::default(),
    ));
    let followers = Arc::new(FollowerCompletion::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
    ));
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
        WeChatClientConfig::from_env().timeout,
    ));
    let batches = Arc::new(Batches::new(
        sender,
        deps.state_store,
        deps.queue,
        batch_config,
    ));
    let mut runner = JobRunner::new(sync, followers).with_batches(batches);
    if let Some(forwarder) = forwarder {
        runner = runner.with_forwarder(forwarder);
    }
    let runner = Arc::new(runner);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let runner = runner.clone();
        async move { Ok::<_, Error>(handle_event(&runner, event, max_receives).await) }
    }))
    .await
}
