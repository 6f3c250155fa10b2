//! Where a chunk decides to pause: a send that hit WeChat's quota (45009 daily, 45011 per
//! minute) pauses the whole batch ([`classify`], then [`Batches::pause`] records it), and a
//! running chunk looks at its batch every `check_interval` for a pause or a cancel another
//! worker recorded ([`Batches::pause_or_cancel`]).

use super::stop::Stop;
use crate::batch::items::{BatchState, CAPPED, NO_GRANT};
use crate::batch::recipient::Done;
use crate::batch::{BatchConfig, Batches};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{ItemKey, Op, attrs};
use http::StatusCode;
use tracing::warn;

/// A send that ended in an error: a recipient held back for what wxpush knows of them is
/// counted (`no_grant`, `capped`), or failed (`outside_service_window`); quota pauses the
/// batch, a passing failure (WeChat or the store down, a claim still held) puts the chunk
/// back, anything else fails the recipient.
pub(in crate::batch) fn classify(e: ApiError, config: &BatchConfig) -> Result<Done, Stop> {
    if let ApiError::Withheld { code, .. } = &e {
        return Ok(match *code {
            "no_grant" => Done::held(NO_GRANT),
            "recipient_capped" => Done::held(CAPPED),
            _ => Done::failed(e.body()),
        });
    }
    let status = e.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let now = now_unix();
        let until = match e.wechat_errcode() {
            // The daily quota: try again after the longest delay SQS has.
            Some(45009) => now + config.daily_pause.as_secs() as i64,
            // The minute limit (45011 says "retry next minute"): a minute by default.
            _ => now + config.minute_pause.as_secs().max(1) as i64,
        };
        return Err(Stop::Pause {
            until,
            reason: e.to_string(),
        });
    }
    if status == StatusCode::CONFLICT || status.is_server_error() {
        return Err(Stop::Retry(e.to_string()));
    }
    Ok(Done::failed(e.body()))
}

impl Batches {
    /// Pauses the batch until `until` (every worker sees it at its next check).
    pub(super) async fn pause(&self, appid: &str, id: &str, until: i64, reason: &str) {
        warn!(appid, batch = %id, until, reason, "batch paused by WeChat's quota");
        // Only ever later: a minute limit's pause never shortens a daily quota's. (The
        // batch's `event_time` is the latest pause's end.)
        let op = Op::SetIfNewer {
            key: ItemKey::batch(appid, id),
            event_time: until,
            attrs: attrs([
                ("paused_until", until.into()),
                ("pause_reason", reason.into()),
            ]),
        };
        if let Err(e) = self.store.record(&[op], now_unix()).await {
            // The chunk itself still waits; other chunks find the quota on their own.
            warn!(appid, batch = %id, error = %e, "could not record the pause");
        }
    }

    /// The batch as a running chunk's check finds it: cancelled (or no longer running), or
    /// paused by another chunk. A failed read finds nothing; the next check comes soon.
    pub(super) async fn pause_or_cancel(&self, appid: &str, id: &str) -> Option<Stop> {
        let m = self.meta(appid, id).await.ok()??;
        if m.state != BatchState::Running {
            Some(Stop::Cancel)
        } else if m.paused_until > now_unix() {
            Some(Stop::Pause {
                until: m.paused_until,
                reason: m.pause_reason.unwrap_or_default(),
            })
        } else {
            None
        }
    }
}
