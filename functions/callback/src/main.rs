//! Lambda entry point of the public WeChat callback: clients built once, then `handle`.

use lambda_http::{Error, Request, service_fn};
use std::convert::Infallible;
use std::sync::Arc;
use wxpush_callback::{Service, handle};
use wxpush_shared::runtime::CallbackDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    // Only the callback's own parameters (this public-facing function cannot read an
    // AppSecret), the table and the queue: no WeChat client, no token manager.
    let deps = CallbackDeps::from_env().await?;
    let svc = Arc::new(
        Service::new(deps.secrets, deps.state_store, deps.queue).with_forwarding(deps.forwarding),
    );
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { Ok::<_, Infallible>(handle(&svc, req).await) }
    }))
    .await
}
