//! The scheduled token refresh: on each EventBridge schedule tick, every configured app whose
//! token expires within the window is refreshed. One app's failure is reported and does not
//! stop the others. With the callback's firewall on, the same tick keeps WeChat's callback
//! addresses in the WAF IP set ([`callback_ips`]).

pub mod callback_ips;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use callback_ips::CallbackIpSet;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, info};
use wxpush_shared::token::{RefreshOutcome, TokenManager};

/// Apps refreshed at the same time at most.
pub const CONCURRENCY: usize = 8;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RefreshReport {
    pub refreshed: Vec<String>,
    pub not_due: Vec<String>,
    pub busy: Vec<String>,
    pub failed: Vec<FailedApp>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FailedApp {
    pub appid: String,
    pub error: String,
}

/// Refreshes every app that is due. Never fails as a whole: failures are in the report.
pub async fn refresh_all(tokens: Arc<TokenManager>, window: Duration) -> RefreshReport {
    let mut report = RefreshReport::default();
    let appids = match tokens.secrets().list_apps().await {
        Ok(a) => a,
        Err(e) => {
            report.failed.push(FailedApp {
                appid: "*".into(),
                error: format!("could not list apps: {e}"),
            });
            return report;
        }
    };
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for appid in appids {
        let (tokens, permits) = (tokens.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = tokens.refresh_if_due(&appid, window).await;
            (appid, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((
                appid,
                Ok(RefreshOutcome::Refreshed {
                    expires_at,
                    version,
                }),
            )) => {
                info!(appid, expires_at, version, "token refreshed");
                report.refreshed.push(appid);
            }
            Ok((appid, Ok(RefreshOutcome::NotDue { .. }))) => report.not_due.push(appid),
            Ok((appid, Ok(RefreshOutcome::Busy { .. }))) => report.busy.push(appid),
            Ok((appid, Err(e))) => {
                error!(appid, error = %e, "token refresh failed");
                report.failed.push(FailedApp {
                    appid,
                    error: e.to_string(),
                });
            }
            Err(e) => report.failed.push(FailedApp {
                appid: "?".into(),
                error: format!("refresh task failed: {e}"),
            }),
        }
    }
    for list in [&mut report.refreshed, &mut report.not_due, &mut report.busy] {
        list.sort();
    }
    report.failed.sort_by(|a, b| a.appid.cmp(&b.appid));
    let m = |result: &str, n: usize| {
        wxpush_shared::metrics::count("TokenRefreshes", n as f64, &[("Result", result)])
    };
    m("refreshed", report.refreshed.len());
    m("failed", report.failed.len());
    report
}

/// The Lambda handler for the EventBridge schedule. Returns the report; when any app failed,
/// or WeChat's callback addresses could not be refreshed into `ip_set`, the invocation fails
/// (so the Lambda `Errors` metric can alarm) after everything was tried.
pub async fn handle_event(
    tokens: Arc<TokenManager>,
    window: Duration,
    ip_set: Option<&CallbackIpSet>,
    event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
) -> Result<RefreshReport, Error> {
    info!(
        request_id = %event.context.request_id,
        detail_type = %event.payload.detail_type,
        source = %event.payload.source,
        "scheduled token refresh"
    );
    let report = refresh_all(tokens.clone(), window).await;
    let ip_failure = match ip_set {
        Some(set) => {
            callback_ips::refresh_with_metric(set, &tokens, wxpush_shared::clock::now_unix())
                .await
                .err()
        }
        None => None,
    };
    info!(
        refreshed = report.refreshed.len(),
        not_due = report.not_due.len(),
        busy = report.busy.len(),
        failed = report.failed.len(),
        "scheduled token refresh done"
    );
    if let Some(e) = ip_failure.filter(|_| report.failed.is_empty()) {
        return Err(format!("WeChat's callback addresses not refreshed: {e}").into());
    }
    if report.failed.is_empty() {
        Ok(report)
    } else {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.appid, f.error))
            .collect();
        Err(format!(
            "token refresh failed for {} app(s): {}",
            report.failed.len(),
            list.join("; ")
        )
        .into())
    }
}
