//! Lambda entry point of the scheduled token refresh.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wxpush_shared::runtime::AwsDeps;
use wxpush_token_refresh::handle_event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wxpush_shared::telemetry::init_json_logs();
    let deps = AwsDeps::from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let (tokens, window) = (deps.tokens.clone(), deps.refresh_window);
        async move { handle_event(tokens, window, event).await }
    }))
    .await
}
