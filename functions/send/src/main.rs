//! Lambda entry point of the private `/v1` API: clients built once, then `handle` per request.

use lambda_http::{Error, Request, service_fn};
use std::convert::Infallible;
use std::sync::Arc;
use wxpush_send::{SendService, handle};
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::followers::{FollowerSync, SyncConfig};
use wxpush_shared::runtime::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    let timeout = wxpush_shared::wechat::WeChatClientConfig::from_env().timeout;
    let followers = Arc::new(FollowerSync::new(
        deps.tokens.clone(),
        deps.state_store.clone(),
        deps.queue.clone(),
        SyncConfig::default(),
    ));
    let svc =
        SendService::new(deps.tokens, deps.state_store.clone(), timeout).with_followers(followers);
    let batches = Arc::new(Batches::new(
        svc.sender.clone(),
        deps.state_store,
        deps.queue,
        BatchConfig::from_env()?,
    ));
    let svc = Arc::new(svc.with_batches(batches));
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { Ok::<_, Infallible>(handle(&svc, req).await) }
    }))
    .await
}
