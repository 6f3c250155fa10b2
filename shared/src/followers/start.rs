//! Starting a follower sync and reading its progress: the API side of
//! `POST/GET /v1/apps/{appid}/followers/sync`.

use super::{FollowerSync, RunState, SyncState};
use crate::app::AppKind;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::queue::Job;
use serde_json::Value;
use tracing::{info, warn};

fn new_run_id() -> String {
    format!("fs-{}-{:08x}", now_unix(), rand::random::<u32>())
}

impl FollowerSync {
    /// A running sync whose worker died: not written for [`SyncConfig::stale_after`], and no
    /// lease held.
    ///
    /// [`SyncConfig::stale_after`]: super::SyncConfig::stale_after
    fn is_stale(&self, st: &SyncState, now: i64) -> bool {
        now - st.updated_at >= self.config.stale_after.as_secs() as i64 && st.lease_until <= now
    }

    fn in_progress(appid: &str, st: &SyncState) -> ApiError {
        ApiError::Conflict {
            code: "sync_in_progress",
            message: format!(
                "a follower sync of app {appid} is already running (run {}, {} followers so far); \
                 GET /v1/apps/{appid}/followers/sync shows its progress",
                st.run_id, st.followers
            ),
        }
    }

    /// `POST .../followers/sync`: starts a run, or resumes a failed (or abandoned) one from its
    /// cursor; `{"restart": true}` starts over instead. Answers the run's progress.
    pub async fn start(&self, appid: &str, body: &[u8]) -> Result<Value, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        if app.kind != AppKind::OfficialAccount {
            return Err(ApiError::Validation {
                field: "appid".into(),
                message: format!(
                    "app {appid} is not an official account; only those have followers"
                ),
            });
        }
        let restart = parse_start(body)?;
        let now = now_unix();
        let existing = self.load(appid).await?;
        let (mut st, resumed) = match &existing {
            Some(s) if s.state == RunState::Running && !self.is_stale(s, now) => {
                return Err(Self::in_progress(appid, s));
            }
            Some(s) if !restart && s.state != RunState::Done => {
                let mut s = s.clone();
                s.state = RunState::Running;
                s.resumes += 1;
                s.lease_until = 0;
                s.last_error.clear();
                (s, true)
            }
            _ => {
                let mut s = SyncState::new(new_run_id(), now);
                s.version = existing.as_ref().map_or(0, |e| e.version);
                (s, false)
            }
        };
        if !self.save(appid, &mut st).await? {
            let current = self.load(appid).await?;
            return Err(Self::in_progress(appid, current.as_ref().unwrap_or(&st)));
        }
        let job = Job::FollowerSync {
            appid: appid.to_string(),
            run_id: st.run_id.clone(),
        };
        if let Err(e) = self.queue.enqueue(&job).await {
            warn!(appid, error = %e, "could not queue the follower sync");
            st.state = RunState::Failed;
            st.last_error = format!("{e}; start the sync again to resume it");
            let _ = self.save(appid, &mut st).await;
            return Err(ApiError::QueueUnavailable(e.to_string()));
        }
        info!(appid, run_id = %st.run_id, resumed, "follower sync started");
        let mut body = st.progress(appid);
        body["resumed"] = Value::Bool(resumed);
        Ok(body)
    }

    /// `GET .../followers/sync`.
    pub async fn progress(&self, appid: &str) -> Result<Value, ApiError> {
        match self.load(appid).await? {
            Some(st) => Ok(st.progress(appid)),
            None => {
                self.tokens.secrets().app(appid).await?;
                Err(ApiError::Missing {
                    code: "no_sync",
                    message: format!("no follower sync has been started for app {appid}"),
                })
            }
        }
    }
}

/// The start body: empty, or `{"restart": bool}`.
fn parse_start(body: &[u8]) -> Result<bool, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    for key in map.keys() {
        if key != "restart" {
            return Err(ApiError::Validation {
                field: key.clone(),
                message: "unknown field; the only option is \"restart\"".into(),
            });
        }
    }
    match map.get("restart") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::Validation {
            field: "restart".into(),
            message: "must be true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_body() {
        assert!(!parse_start(b"").unwrap());
        assert!(!parse_start(b"{}").unwrap());
        assert!(parse_start(br#"{"restart": true}"#).unwrap());
        assert!(matches!(
            parse_start(br#"{"restart": "yes"}"#),
            Err(ApiError::Validation { .. })
        ));
        assert!(matches!(
            parse_start(br#"{"from": 1}"#),
            Err(ApiError::Validation { .. })
        ));
        assert!(matches!(parse_start(b"[1]"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_start(b"{"), Err(ApiError::BadRequest(_))));
    }
}
