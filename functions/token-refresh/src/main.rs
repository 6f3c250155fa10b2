//! Lambda entry point of the scheduled token refresh (and, with the callback's firewall on,
//! of WeChat's callback addresses in its WAF IP set).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use wxpush_shared::runtime::{AwsDeps, RuntimeEnv};
use wxpush_token_refresh::callback_ips::CallbackIpSet;
use wxpush_token_refresh::handle_event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let env = RuntimeEnv::from_env()?;
    let sdk = wxpush_shared::aws::load_sdk_config().await;
    let deps = AwsDeps::build(&sdk, &env);
    let ip_set = CallbackIpSet::from_env(&sdk)?.map(Arc::new);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let (tokens, window, ip_set) = (deps.tokens.clone(), deps.refresh_window, ip_set.clone());
        async move { handle_event(tokens, window, ip_set.as_deref(), event).await }
    }))
    .await
}
