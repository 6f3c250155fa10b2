//! Lambda entry point of the SQS worker: clients built once, then `handle_event` per batch.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use wxpush_batch_worker::handle_event;
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let sync = Arc::new(FollowerSync::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
        deps.queue,
        SyncConfig::default(),
    ));
    let followers = Arc::new(FollowerCompletion::new(deps.tokens, deps.state_store));
    let runner = Arc::new(JobRunner::new(sync, followers));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let runner = runner.clone();
        async move { Ok::<_, Error>(handle_event(&runner, event).await) }
    }))
    .await
}
