//! Lambda entry point of the private `/v1` API: clients built once, then `handle` per request.

use lambda_http::{Error, Request, service_fn};
use std::convert::Infallible;
use std::sync::Arc;
use wxpush_send::{handle, service};
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let svc = Arc::new(service(deps, BatchConfig::from_env()?));
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { Ok::<_, Infallible>(handle(&svc, req).await) }
    }))
    .await
}
