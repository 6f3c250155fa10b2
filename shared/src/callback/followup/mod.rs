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
//!
//! [`Job::CompleteFollower`]: crate::queue::Job::CompleteFollower
//! [`Job::SweepOutbox`]: crate::queue::Job::SweepOutbox

mod sweep;

pub use sweep::{FOLLOW_UP_SWEEP_AFTER_SECS, FOLLOW_UP_SWEEP_ROWS, FollowUpSweepError};

use crate::clock::now_unix;
use crate::queue::JobQueue;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, Recorded, StateStore, StoreError, attrs};
use crate::token::{TokenError, TokenManager};
use crate::wechat::{ErrorClass, WeChatCallError};
use std::sync::Arc;
use thiserror::Error;

/// How long a follow-up row is kept when its look-up never succeeds (its `ttl`; the sweep
/// passes over an expired row DynamoDB has not removed yet). A follower sync completes the
/// follower after that.
pub const FOLLOW_UP_TTL_SECS: i64 = 7 * 86_400;
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

/// Runs new followers' unionid look-ups ([`Job::CompleteFollower`](crate::queue::Job::CompleteFollower))
/// and their sweep.
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

/// What a pending account holds that the completion's write depends on.
struct Pending {
    event_time: i64,
    subscribed: bool,
}

/// The account still waiting for its unionid look-up, or `None` (unknown, complete, not
/// pending, or without the `event_time` the write is guarded by).
fn pending(account: Option<&Attrs>) -> Option<Pending> {
    let account = account?;
    if !account.flag("unionid_pending") || account.text("unionid").is_some() {
        return None;
    }
    Some(Pending {
        event_time: account.num("event_time")?,
        subscribed: account.flag("subscribed"),
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

    /// The queue the sweep puts its look-up jobs on (the jobs queue).
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
        if let Some(event_time) = account.and_then(|a| a.num("event_time")) {
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
}
