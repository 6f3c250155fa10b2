//! Logging: JSON lines (one event per line) as CloudWatch Logs Insights reads them.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; `RUST_LOG` overrides the default `info` level.
///
/// Dependencies' debug logs are kept at `warn`: HTTP client internals may print request
/// URLs, and WeChat puts the access_token in the query string.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,hyper=warn,hyper_util=warn,reqwest=warn,aws_smithy_runtime=warn,aws_config=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(true)
        .try_init();
}

/// Human-readable logs for the operator's terminal (`wxpush serve`).
pub fn init_pretty_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hyper=warn,hyper_util=warn,reqwest=warn,aws_smithy_runtime=warn")
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
