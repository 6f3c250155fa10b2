//! Lambda entry point of the SQS worker: clients built once, then `handle_event` per batch.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use wxpush_batch_worker::{handle_event, max_receives_from_env, runner};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let max_receives = max_receives_from_env()?;
    let runner = Arc::new(runner(deps, BatchConfig::from_env()?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let runner = runner.clone();
        async move { Ok::<_, Error>(handle_event(&runner, event, max_receives).await) }
    }))
    .await
}
