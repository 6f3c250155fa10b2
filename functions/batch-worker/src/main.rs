//! Lambda entry point of the SQS worker: clients built once, then `handle_event` per batch.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use wxpush_batch_worker::handle_event;
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let sync = Arc::new(FollowerSync::new(
        deps.tokens,
        deps.state_store,
        deps.queue,
        SyncConfig::default(),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let sync = sync.clone();
        async move { Ok::<_, Error>(handle_event(&sync, event).await) }
    }))
    .await
}
