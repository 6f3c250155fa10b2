//! The local server's timers, the stand-ins of the deployed stack's EventBridge schedules:
//! the token refresh, the sweep, and WeChat's callback addresses for the guard.

use crate::callback_guard::{CallbackGuard, WECHAT_LIST_EVERY, WECHAT_LIST_RETRY};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wxpush_shared::queue::{Job, JobQueue};
use wxpush_shared::token::TokenManager;

/// The EventBridge schedule's stand-in: every `every`, the tokens expiring within `window`
/// are refreshed.
pub(super) fn spawn_token_refresh(
    tokens: Arc<TokenManager>,
    every: Duration,
    window: Duration,
) -> JoinHandle<()> {
    spawn_every(every, move || {
        let tokens = tokens.clone();
        async move {
            let report = wxpush_token_refresh::refresh_all(tokens, window).await;
            if !report.failed.is_empty() {
                warn!(failed = ?report.failed, "scheduled token refresh had failures");
            }
        }
    })
}

/// The scheduled sweep, forwarding or not (it also requeues follower look-ups and batch
/// chunks that lost their job).
pub(super) fn spawn_sweep(queue: Arc<dyn JobQueue>, every: Duration) -> JoinHandle<()> {
    spawn_every(every, move || {
        let queue = queue.clone();
        async move {
            if let Err(e) = queue.enqueue(&Job::SweepOutbox).await {
                warn!(error = %e, "could not queue the scheduled sweep");
            }
        }
    })
}

/// Runs `step` every `every`, the first time one period after the start; a late step
/// delays the next ones rather than bunching them up.
fn spawn_every<F, Fut>(every: Duration, mut step: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            step().await;
        }
    })
}

/// `--callback-allow-wechat`: WeChat's addresses from `getcallbackip` now, then every day
/// (a failed fetch is tried again after a minute; the last list stays in force meanwhile).
pub(super) async fn keep_wechat_list(guard: Arc<CallbackGuard>, tokens: Arc<TokenManager>) {
    loop {
        let wait = match wxpush_shared::callback_ips::fetch(&tokens).await {
            Ok(nets) => {
                info!(
                    addresses = nets.len(),
                    "WeChat's callback addresses (getcallbackip) allowed on /wechat"
                );
                guard.set_wechat(nets);
                WECHAT_LIST_EVERY
            }
            Err(e) => {
                warn!(error = %e, "could not fetch WeChat's callback addresses; trying again in a minute");
                WECHAT_LIST_RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}
