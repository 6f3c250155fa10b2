//! Lambda entry point of the private `/v1` API: clients built once, then `handle_lambda` per
//! request (an event that is not an API Gateway request is an invocation error).

use lambda_http::{Error, Request, service_fn};
use std::sync::Arc;
use wxpush_send::{handle_lambda, service};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let svc = Arc::new(service(deps, BatchConfig::from_env()?));
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { handle_lambda(&svc, req).await }
    }))
    .await
}
