//! Metrics in CloudWatch's embedded metric format (EMF): one JSON line on stdout per data
//! point, which Lambda's log capture turns into a metric in the `wxpush` namespace — no API
//! call, nothing on the request's path but a `println!`. On only inside Lambda
//! (`AWS_LAMBDA_FUNCTION_NAME` is set) or with `WXPUSH_METRICS=emf`; the local server and the
//! tests print nothing.
//!
//! | metric | dimensions | emitted by |
//! |---|---|---|
//! | `Sends` | `Outcome` (sent, failed, unknown, refused) | every single send and batch recipient |
//! | `SendWeChatErrors` | `Errcode` | a send WeChat refused |
//! | `ApiResponses` | `Function`, `StatusClass` (2xx, 4xx, 5xx) | the send and callback handlers |
//! | `Callbacks` | `EventType` (`text`, `event.subscribe`, ...) | each newly recorded callback event |
//! | `TokenRefreshes` | `Result` (refreshed, failed) | the scheduled refresh, per app |
//! | `WeChatTokenCalls` | — | every `/cgi-bin/token` or `stable_token` call |
//! | `EventsForwarded` | `Result` (delivered, retrying, dead) | the event forwarder |
//! | `BatchRecipients` | `Outcome` (sent, failed, unknown) | batch chunks, as their progress is recorded |

use serde_json::{Map, Value, json};
use std::sync::OnceLock;

pub const NAMESPACE: &str = "wxpush";

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var("WXPUSH_METRICS").is_ok_and(|v| v == "emf")
    })
}

/// The EMF line of one count of `metric` with `dimensions` at `timestamp_ms`.
pub fn emf_line(
    metric: &str,
    value: f64,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    root.insert(metric.into(), json!(value));
    Value::Object(root).to_string()
}

/// Counts `value` of `metric` (nothing outside Lambda unless `WXPUSH_METRICS=emf`).
pub fn count(metric: &str, value: f64, dimensions: &[(&str, &str)]) {
    if enabled() && value > 0.0 {
        println!(
            "{}",
            emf_line(metric, value, dimensions, crate::clock::now_unix_millis())
        );
    }
}

/// `2xx`, `4xx` or `5xx` of an HTTP status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        500.. => "5xx",
        400..=499 => "4xx",
        _ => "2xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_emf() {
        let line = emf_line("Sends", 1.0, &[("Outcome", "sent")], 1_700_000_000_000);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "wxpush");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Outcome"]])
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "Sends"
        );
        assert_eq!(v["Outcome"], "sent");
        assert_eq!(v["Sends"], 1.0);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let bare = emf_line("WeChatTokenCalls", 2.0, &[], 1);
        let v: Value = serde_json::from_str(&bare).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(422), "4xx");
        assert_eq!(status_class(204), "2xx");
    }
}
