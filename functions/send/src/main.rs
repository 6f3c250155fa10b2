//! Lambda entry point of the private `/v1` API: clients built once, then `handle` per request.

use lambda_http::{Error, Request, service_fn};
use std::convert::Infallible;
use std::sync::Arc;
use wxpush_send::{SendService, handle};
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
        deps.queue,
        SyncConfig::default(),
    ));
    let svc = Arc::new(
        SendService::new(deps.tokens, deps.state_store, timeout).with_followers(followers),
    );
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { Ok::<_, Infallible>(handle(&svc, req).await) }
    }))
    .await
}
