//! Looking followers up (`user/info/batchget`) and storing what WeChat says about each.

use super::run::Stop;
use super::wechat_call::RawStop;
use super::{BATCHGET_MAX, FollowerSync, SyncState};
use crate::store::{ItemKey, ItemRead, Op, Recorded, StoreError, attrs};
use crate::wechat::UserInfo;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::sync::atomic::AtomicI64;
use tracing::warn;

/// Operations per store transaction (DynamoDB's `TransactWriteItems` limit).
const OPS_PER_WRITE: usize = 100;

/// What one lookup step found.
#[derive(Default)]
pub(super) struct Counts {
    pub(super) followers: i64,
    pub(super) mapped: i64,
    pub(super) without_unionid: i64,
    pub(super) unsubscribed: i64,
    pub(super) skipped: i64,
}

impl FollowerSync {
    /// Looks `openids` up (`batchget`, 100 a call, a few calls at once) and stores what WeChat
    /// says about each: following (with or without a unionid) or not any more.
    pub(super) async fn lookup_and_store(
        &self,
        appid: &str,
        st: &SyncState,
        openids: &[String],
        observed_at: i64,
        errors: &AtomicI64,
    ) -> Result<Counts, Stop> {
        let infos = self.lookup_all(appid, openids, errors).await?;
        let mut counts = Counts {
            followers: openids.len() as i64,
            skipped: openids.len() as i64 - infos.len() as i64,
            ..Counts::default()
        };
        // Each account's operations stay together in one transaction.
        let mut per_user: Vec<Vec<Op>> = Vec::with_capacity(infos.len());
        let mut seen = std::collections::HashSet::new();
        for info in &infos {
            if !seen.insert(info.openid.clone()) {
                continue;
            }
            let ops = self
                .follower_ops(appid, st, info, observed_at, &mut counts)
                .await?;
            per_user.push(ops);
        }
        self.write_all(per_user, observed_at).await?;
        Ok(counts)
    }

    /// `openids` looked up, 100 a `batchget`, a few calls at once; in order, without the
    /// openids WeChat does not know.
    async fn lookup_all(
        &self,
        appid: &str,
        openids: &[String],
        errors: &AtomicI64,
    ) -> Result<Vec<UserInfo>, Stop> {
        let batches: Vec<Vec<String>> = openids
            .chunks(BATCHGET_MAX)
            .map(<[String]>::to_vec)
            .collect();
        let lookups = batches.into_iter().map(|batch| {
            let appid = appid.to_string();
            async move { self.lookup_batch(&appid, &batch, errors).await }
        });
        let batches: Vec<Vec<UserInfo>> = stream::iter(lookups)
            .buffered(self.config.lookup_concurrency.max(1))
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// What WeChat says about one follower, as the writes of its account and of its
    /// unionid's directory entry; counted in `counts`. The sync knows every attribute of the
    /// items it writes, so it replaces them whole (`PutIfNewer`), unless a callback recorded
    /// something newer meanwhile.
    async fn follower_ops(
        &self,
        appid: &str,
        st: &SyncState,
        info: &UserInfo,
        observed_at: i64,
        counts: &mut Counts,
    ) -> Result<Vec<Op>, StoreError> {
        let following = info.subscribe == 1;
        let mut account = attrs([
            ("appid", appid.into()),
            ("openid", info.openid.as_str().into()),
            ("subscribed", following.into()),
            ("sync_run", st.run_id.as_str().into()),
            ("updated_at", observed_at.into()),
        ]);
        let mut unionid = info.unionid.clone().filter(|u| !u.is_empty());
        if following {
            if let Some(t) = info.subscribe_time {
                account.insert("subscribe_time".into(), t.into());
            }
            match &unionid {
                Some(_) => counts.mapped += 1,
                None => counts.without_unionid += 1,
            }
        } else {
            counts.unsubscribed += 1;
            // WeChat says nothing more about someone who left; their stored unionid (if any)
            // finds the directory entry to update.
            if unionid.is_none() {
                let stored = self
                    .store
                    .get(&ItemKey::account(appid, &info.openid))
                    .await?;
                unionid = stored.and_then(|a| a.string("unionid"));
            }
        }
        if let Some(u) = &unionid {
            account.insert("unionid".into(), u.as_str().into());
        }
        let mut ops = Vec::with_capacity(2);
        ops.push(Op::PutIfNewer {
            key: ItemKey::account(appid, &info.openid),
            event_time: observed_at,
            attrs: account,
        });
        if let Some(u) = unionid {
            ops.push(Op::PutIfNewer {
                key: ItemKey::union_account(&u, appid),
                event_time: observed_at,
                attrs: attrs([
                    ("appid", appid.into()),
                    ("openid", info.openid.as_str().into()),
                    ("subscribed", following.into()),
                    ("updated_at", observed_at.into()),
                ]),
            });
        }
        Ok(ops)
    }

    /// The followers' writes, each follower's kept in one transaction, packed into
    /// transactions of at most [`OPS_PER_WRITE`] operations, a few written at once.
    async fn write_all(&self, per_user: Vec<Vec<Op>>, now: i64) -> Result<(), StoreError> {
        let mut writes: Vec<Vec<Op>> = vec![];
        for ops in per_user {
            match writes.last_mut() {
                Some(w) if w.len() + ops.len() <= OPS_PER_WRITE => w.extend(ops),
                _ => writes.push(ops),
            }
        }
        let writes = writes
            .into_iter()
            .map(|ops| async move { self.write(&ops, now).await });
        stream::iter(writes)
            .buffer_unordered(self.config.lookup_concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// One set of independent account writes, tried again after a transient store failure
    /// (a transaction cancelled by a concurrent callback on one of the items, say).
    async fn write(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match self.store.record(ops, now).await {
                Err(e) if attempt < ATTEMPTS => {
                    warn!(error = %e, attempt, "follower sync write failed; retrying");
                    tokio::time::sleep(self.config.backoff * attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One `batchget`; when WeChat refuses the list for an openid it does not know (40003),
    /// each openid is asked alone and the unknown ones are left out (counted as skipped).
    async fn lookup_batch(
        &self,
        appid: &str,
        openids: &[String],
        errors: &AtomicI64,
    ) -> Result<Vec<UserInfo>, Stop> {
        let list = openids.to_vec();
        let batch = self
            .call_raw(appid, errors, |token| {
                let (wechat, list) = (self.tokens.wechat().clone(), list.clone());
                async move { wechat.user_info_batch(&token, &list).await }
            })
            .await;
        match batch {
            Ok(infos) => Ok(infos),
            Err(RawStop::WeChat(e)) if e.errcode() == Some(40003) => {
                let mut infos = Vec::with_capacity(openids.len());
                for openid in openids {
                    let one = self
                        .call_raw(appid, errors, |token| {
                            let (wechat, openid) = (self.tokens.wechat().clone(), openid.clone());
                            async move { wechat.user_info(&token, &openid).await }
                        })
                        .await;
                    match one {
                        Ok(info) => infos.push(info),
                        Err(RawStop::WeChat(e)) if e.errcode() == Some(40003) => {
                            warn!(appid, "WeChat does not know an openid it listed; skipped");
                        }
                        Err(other) => return Err(other.into_stop("user/info")),
                    }
                }
                Ok(infos)
            }
            Err(other) => Err(other.into_stop("user/info/batchget")),
        }
    }
}
