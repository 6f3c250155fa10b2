//! Completing what a callback recorded without waiting for WeChat: a new follower's unionid.
//!
//! The callback must answer within WeChat's 5 s, and a `user/info` call (perhaps behind a
//! token refresh) can take longer. So the callback records the follower at once, marked
//! `unionid_pending`, and queues a [`crate::queue::Job::CompleteFollower`]; this runs it
//! (in the batch-worker Lambda, or the local server's worker): one `user/info`, then the
//! account and its unionid entry, written only if no newer event changed the account since
//! it was read.

use crate::clock::now_unix;
use crate::store::{Attr, ItemKey, Op, Recorded, StateStore, attrs};
use crate::token::{StoreError, TokenError, TokenManager};
use crate::wechat::{ErrorClass, WeChatCallError};
use std::sync::Arc;
use thiserror::Error;

/// What a completion job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The unionid is stored (with its `union#` entry).
    Mapped { unionid: String },
    /// WeChat has no unionid for this follower (the account is not bound to an open
    /// platform, or the user left): the mark is cleared.
    WithoutUnionid,
    /// Nothing to do: the account has its unionid already, is not pending, or is unknown.
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

pub struct FollowerCompletion {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
}

fn text(a: &crate::store::Attrs, k: &str) -> Option<String> {
    match a.get(k) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}

impl FollowerCompletion {
    pub fn new(tokens: Arc<TokenManager>, store: Arc<dyn StateStore>) -> FollowerCompletion {
        FollowerCompletion { tokens, store }
    }

    /// Looks the follower's unionid up and stores it. An error leaves the account pending, so
    /// the job can run again (SQS redelivers it; it is idempotent).
    pub async fn complete(&self, appid: &str, openid: &str) -> Result<Completion, CompletionError> {
        let key = ItemKey::account(appid, openid);
        let mut looked_up = None;
        // A newer event between the read and the write makes the write a conflict: read again.
        for _ in 0..3 {
            let Some(account) = self.store.get(&key).await? else {
                return Ok(Completion::NothingToDo);
            };
            let pending = matches!(account.get("unionid_pending"), Some(Attr::Bool(true)));
            if !pending || text(&account, "unionid").is_some() {
                return Ok(Completion::NothingToDo);
            }
            let Some(Attr::N(event_time)) = account.get("event_time").cloned() else {
                return Ok(Completion::NothingToDo);
            };
            let subscribed = matches!(account.get("subscribed"), Some(Attr::Bool(true)));
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
