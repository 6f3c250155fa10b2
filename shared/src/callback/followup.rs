//! Completing what a callback recorded without waiting for WeChat: a new follower's unionid.
//!
//! The callback must answer within WeChat's 5 s, and a `user/info` call (perhaps behind a
//! token refresh) can take longer. So the callback records the follower at once, marked
//! `unionid_pending`, with a follow-up row (`fup#{appid}` / openid, [`follow_up_op`]) in the
//! same transaction, and then queues a [`Job::CompleteFollower`]; a refused job is only
//! logged. This runs the job (in the batch-worker Lambda, or the local server's worker): one
//! `user/info`, then the account and its unionid entry, written only if no newer event changed
//! the account since it was read, and the follow-up row deleted in the same write. The
//! scheduled sweep ([`FollowerCompletion::sweep`], run by [`Job::SweepOutbox`]) queues the
//! job again for every row older than [`FOLLOW_UP_SWEEP_AFTER_SECS`]: a look-up whose job was
//! never queued, was lost, or failed for good still runs.

use crate::clock::now_unix;
use crate::queue::{Job, JobQueue};
use crate::store::StoreError;
use crate::store::{Attr, Attrs, ItemKey, Op, Recorded, StateStore, attrs};
use crate::token::{TokenError, TokenManager};
use crate::wechat::{ErrorClass, WeChatCallError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{info, warn};

/// How old a follow-up row must be before the sweep queues its look-up again: well past the
/// callback's completion delay and the time the queued job takes.
pub const FOLLOW_UP_SWEEP_AFTER_SECS: i64 = 60;
/// Follow-up rows the sweep reads per app per run at most (it runs every few minutes).
pub const FOLLOW_UP_SWEEP_ROWS: usize = 1_000;
/// How long a follow-up row is kept when its look-up never succeeds (its `ttl`; the sweep
/// passes over an expired row DynamoDB has not removed yet). A follower sync completes the
/// follower after that.
pub const FOLLOW_UP_TTL_SECS: i64 = 7 * 86_400;
/// Time a sweep without a queue keeps in hand when it runs the look-ups itself.
const INLINE_MARGIN: Duration = Duration::from_secs(10);

/// The follow-up row of a new follower of `appid` recorded without its unionid, written in
/// the transaction of its `subscribe` event (`created_at`: when the look-up became due).
pub fn follow_up_op(appid: &str, openid: &str, now: i64) -> Op {
    Op::Set {
        key: ItemKey::follow_up(appid, openid),
        attrs: attrs([
            ("appid", Attr::S(appid.to_string())),
            ("openid", Attr::S(openid.to_string())),
            ("created_at", Attr::N(now)),
            ("ttl", Attr::N(now + FOLLOW_UP_TTL_SECS)),
        ]),
    }
}

/// What a completion job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The unionid is stored (with its `union#` entry).
    Mapped { unionid: String },
    /// WeChat has no unionid for this follower (the account is not bound to an open
    /// platform, or the user left): the mark is cleared.
    WithoutUnionid,
    /// Nothing to do: the account has its unionid already, is not pending, or is unknown
    /// (its follow-up row, if one was left, is deleted).
    NothingToDo,
}

#[derive(Debug, Error)]
pub enum CompletionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("user/info for app {appid} failed: {source}")]
    WeChat {
        appid: String,
        source: WeChatCallError,
    },
    #[error("the account of {openid} in app {appid} kept changing while it was completed")]
    Contended { appid: String, openid: String },
}

/// Runs new followers' unionid look-ups ([`Job::CompleteFollower`]) and their sweep.
pub struct FollowerCompletion {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    /// Where the sweep queues its look-ups; without one it runs them itself.
    queue: Option<Arc<dyn JobQueue>>,
    /// Follow-up rows one sweep reads per app at most ([`FOLLOW_UP_SWEEP_ROWS`]).
    sweep_rows: usize,
    /// How old a row must be for the sweep ([`FOLLOW_UP_SWEEP_AFTER_SECS`]).
    sweep_after: i64,
}

fn text(a: &Attrs, k: &str) -> Option<String> {
    match a.get(k) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn num(a: &Attrs, k: &str) -> Option<i64> {
    match a.get(k) {
        Some(Attr::N(n)) => Some(*n),
        _ => None,
    }
}

/// What a pending account holds that the completion's write depends on.
struct Pending {
    event_time: i64,
    subscribed: bool,
}

/// The account still waiting for its unionid look-up, or `None` (unknown, complete, not
/// pending, or without the `event_time` the write is guarded by).
fn pending(account: Option<&Attrs>) -> Option<Pending> {
    let account = account?;
    let waiting = matches!(account.get("unionid_pending"), Some(Attr::Bool(true)));
    if !waiting || text(account, "unionid").is_some() {
        return None;
    }
    Some(Pending {
        event_time: num(account, "event_time")?,
        subscribed: matches!(account.get("subscribed"), Some(Attr::Bool(true))),
    })
}

impl FollowerCompletion {
    pub fn new(tokens: Arc<TokenManager>, store: Arc<dyn StateStore>) -> FollowerCompletion {
        FollowerCompletion {
            tokens,
            store,
            queue: None,
            sweep_rows: FOLLOW_UP_SWEEP_ROWS,
            sweep_after: FOLLOW_UP_SWEEP_AFTER_SECS,
        }
    }

    /// The queue the sweep puts its [`Job::CompleteFollower`]s on (the jobs queue).
    pub fn with_queue(mut self, queue: Arc<dyn JobQueue>) -> FollowerCompletion {
        self.queue = Some(queue);
        self
    }

    /// Reads at most `rows` follow-up rows per app and sweep (tests of the sweep's cursor).
    pub fn with_sweep_rows(mut self, rows: usize) -> FollowerCompletion {
        self.sweep_rows = rows.max(1);
        self
    }

    /// Sweeps rows older than `secs` instead of [`FOLLOW_UP_SWEEP_AFTER_SECS`] (tests that
    /// run the sweep on the wall clock).
    pub fn with_sweep_after(mut self, secs: i64) -> FollowerCompletion {
        self.sweep_after = secs.max(0);
        self
    }

    /// Looks the follower's unionid up and stores it, deleting its follow-up row in the same
    /// write. An error leaves the account pending and the row in place, so the job can run
    /// again (SQS redelivers it, the sweep queues it; it is idempotent).
    pub async fn complete(&self, appid: &str, openid: &str) -> Result<Completion, CompletionError> {
        let key = ItemKey::account(appid, openid);
        let follow_up = ItemKey::follow_up(appid, openid);
        let mut looked_up = None;
        // A newer event between the read and the write makes the write a conflict: read again.
        for _ in 0..3 {
            let account = self.store.get(&key).await?;
            let Some(Pending {
                event_time,
                subscribed,
            }) = pending(account.as_ref())
            else {
                if self.settle(&key, &follow_up, account.as_ref()).await? {
                    return Ok(Completion::NothingToDo);
                }
                continue;
            };
            let unionid = match &looked_up {
                Some(u) => u,
                None => looked_up.insert(self.lookup(appid, openid).await?),
            };
            let now = now_unix();
            let mut done = attrs([
                ("unionid_pending", Attr::Bool(false)),
                ("updated_at", Attr::N(now)),
            ]);
            let mut ops = vec![];
            if let Some(u) = unionid {
                done.insert("unionid".into(), Attr::S(u.clone()));
                ops.push(Op::SetIfNewer {
                    key: ItemKey::union_account(u, appid),
                    event_time,
                    attrs: attrs([
                        ("appid", Attr::S(appid.to_string())),
                        ("openid", Attr::S(openid.to_string())),
                        ("subscribed", Attr::Bool(subscribed)),
                        ("updated_at", Attr::N(now)),
                    ]),
                });
            }
            ops.insert(
                0,
                Op::SetIfEquals {
                    key: key.clone(),
                    attrs: done,
                    field: "event_time".into(),
                    expected: event_time,
                },
            );
            ops.push(Op::Delete {
                key: follow_up.clone(),
            });
            if self.store.record(&ops, now).await? == Recorded::New {
                return Ok(match unionid {
                    Some(u) => Completion::Mapped { unionid: u.clone() },
                    None => Completion::WithoutUnionid,
                });
            }
        }
        Err(CompletionError::Contended {
            appid: appid.to_string(),
            openid: openid.to_string(),
        })
    }

    /// An account with nothing to look up: its follow-up row, if there is one, is deleted.
    /// The delete is guarded by the account's `event_time` (read with `account`), so an
    /// event that made the follower pending again since keeps its row; `false` when one did
    /// (read again).
    async fn settle(
        &self,
        key: &ItemKey,
        follow_up: &ItemKey,
        account: Option<&Attrs>,
    ) -> Result<bool, StoreError> {
        if self.store.get(follow_up).await?.is_none() {
            return Ok(true);
        }
        let mut ops = vec![];
        if let Some(event_time) = account.and_then(|a| num(a, "event_time")) {
            ops.push(Op::SetIfEquals {
                key: key.clone(),
                attrs: attrs([("unionid_pending", Attr::Bool(false))]),
                field: "event_time".into(),
                expected: event_time,
            });
        }
        ops.push(Op::Delete {
            key: follow_up.clone(),
        });
        Ok(self.store.record(&ops, now_unix()).await? == Recorded::New)
    }

    /// `user/info`: the unionid, `None` when WeChat has none for this user. A rejected token
    /// is invalidated and the call made once more.
    async fn lookup(&self, appid: &str, openid: &str) -> Result<Option<String>, CompletionError> {
        let mut token = self.tokens.get(appid).await?;
        for retry in [true, false] {
            match self
                .tokens
                .wechat()
                .user_info(token.token.expose(), openid)
                .await
            {
                Ok(info) => return Ok(info.unionid.filter(|u| !u.is_empty())),
                // An openid WeChat does not know in this app: nothing to complete.
                Err(e) if e.errcode() == Some(40003) => return Ok(None),
                Err(e) if retry && e.class() == ErrorClass::TokenInvalid => {
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = self.tokens.get(appid).await?;
                }
                Err(source) => {
                    return Err(CompletionError::WeChat {
                        appid: appid.to_string(),
                        source,
                    });
                }
            }
        }
        unreachable!("the loop returns on its last pass")
    }

    /// Queues a [`Job::CompleteFollower`] for every follow-up row of every configured app
    /// older than [`FOLLOW_UP_SWEEP_AFTER_SECS`] at `now`: look-ups whose job was never queued (the
    /// queue refused it after the event was recorded), was lost, or failed for good. Each run
    /// reads at most [`FOLLOW_UP_SWEEP_ROWS`] rows per app from where the last run stopped (a
    /// cursor per app), so a long backlog is covered over a few runs. Without a queue
    /// ([`FollowerCompletion::with_queue`] not called) the look-ups run here, one after the
    /// other, until `deadline` nears. Answers how many look-ups it queued or ran.
    pub async fn sweep(&self, now: i64, deadline: Instant) -> Result<usize, String> {
        let appids = self
            .tokens
            .secrets()
            .list_apps()
            .await
            .map_err(|e| e.to_string())?;
        let mut swept = 0;
        for appid in appids {
            swept += self.sweep_app(&appid, now, deadline).await?;
        }
        Ok(swept)
    }

    /// One app's part of [`FollowerCompletion::sweep`].
    async fn sweep_app(&self, appid: &str, now: i64, deadline: Instant) -> Result<usize, String> {
        let cursor_key = ItemKey::follow_up_sweep(appid);
        let start = self
            .store
            .get(&cursor_key)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| text(&c, "after"));
        let (due, mut after) = self
            .due_rows(appid, start.clone(), now)
            .await
            .map_err(|e| e.to_string())?;
        let mut swept = 0;
        match &self.queue {
            Some(queue) if !due.is_empty() => {
                let jobs: Vec<Job> = due
                    .iter()
                    .map(|openid| Job::CompleteFollower {
                        appid: appid.to_string(),
                        openid: openid.clone(),
                    })
                    .collect();
                queue.enqueue_many(&jobs).await.map_err(|e| e.to_string())?;
                swept = jobs.len();
            }
            Some(_) => {}
            None => {
                for openid in &due {
                    if Instant::now() + INLINE_MARGIN >= deadline {
                        // Out of time: the next run reads these rows again.
                        after = start.clone();
                        break;
                    }
                    match self.complete(appid, openid).await {
                        Ok(_) => swept += 1,
                        Err(e) => warn!(appid, error = %e, "follow-up sweep: a look-up failed"),
                    }
                }
            }
        }
        if swept > 0 {
            info!(appid, swept, "follow-up sweep completed or queued look-ups");
        }
        if after != start {
            let cursor = match after {
                Some(sk) => attrs([("after", Attr::S(sk))]),
                None => Attrs::new(),
            };
            let op = Op::Set {
                key: cursor_key,
                attrs: cursor,
            };
            self.store
                .record(&[op], now)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(swept)
    }

    /// The openids of `appid`'s follow-up rows after `after` that are due (old enough, not
    /// expired), reading at most `sweep_rows` rows; and where the next run goes on (`None`:
    /// from the start).
    async fn due_rows(
        &self,
        appid: &str,
        mut after: Option<String>,
        now: i64,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let mut read = 0;
        let mut due = Vec::new();
        // Bounded: `sweep_rows` rows at most; the next sweep goes on from `after`.
        loop {
            let limit = (self.sweep_rows - read.min(self.sweep_rows)).clamp(1, 1_000);
            let page = self
                .store
                .query_page(&ItemKey::follow_up_pk(appid), after.as_deref(), limit)
                .await?;
            read += page.rows.len().max(1);
            for (sk, row) in page.rows {
                let old = num(&row, "created_at").unwrap_or(0) <= now - self.sweep_after;
                let live = num(&row, "ttl").is_none_or(|ttl| ttl > now);
                if old && live {
                    // The key of a long openid is its short form: the row holds the openid.
                    due.push(text(&row, "openid").unwrap_or(sk));
                }
            }
            after = page.next_after;
            if after.is_none() || read >= self.sweep_rows {
                return Ok((due, after));
            }
        }
    }
}
