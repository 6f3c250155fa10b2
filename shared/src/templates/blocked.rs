//! `GET /v1/apps/{appid}/templates/{id}/blocked`: the messages of a template WeChat
//! intercepted (errcode 0 at the send, never delivered), one page of `queryblocktmplmsg`
//! (docs/wechat.md, Intercepted template messages). Each one found among wxpush's sends of
//! the template (same recipient, sent within [`MATCH_SECS`]) is marked `blocked`: the
//! message's first final state, which no later receipt overwrites.

use super::changes::management_error;
use super::{Templates, invalid};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::send::service::{MESSAGE_TTL_SECS, template_send_prefix, template_send_sk};
use crate::store::{Attr, ItemKey, ItemRead, Op, attrs};
use crate::token_retry::with_token;
use crate::wechat::BlockedMessage;
use serde_json::{Value, json};
use tracing::info;

/// How far apart WeChat's `send_timestamp` and wxpush's record of the send may be.
pub const MATCH_SECS: i64 = 60;
/// `queryblocktmplmsg`'s largest page.
pub const MAX_PAGE: u32 = 100;

/// `?cursor=` (the largest interception id seen, `0` or absent for the first page) and
/// `?limit=` (1-100, default 100).
fn page_params(cursor: Option<&str>, limit: Option<&str>) -> Result<(i64, u32), ApiError> {
    let after = match cursor {
        None => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| invalid("cursor", "must be the cursor of the previous page"))?,
    };
    let limit = match limit {
        None => MAX_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| invalid("limit", "must be a whole number from 1 to 100"))?,
    };
    Ok((after, limit))
}

impl Templates {
    /// One page of `template_id`'s intercepted messages: `{"messages": [{"openid", "title",
    /// "content", "sent_at", "message_id"?}], "cursor"?}`; `cursor` is there while WeChat may
    /// have more.
    pub async fn blocked(
        &self,
        appid: &str,
        template_id: &str,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let (after, limit) = page_params(cursor, limit)?;
        let page = with_token(&self.tokens, appid, |wechat, token| {
            let t = template_id.to_string();
            async move { wechat.blocked_messages(&token, &t, after, limit).await }
        })
        .await
        .map_err(|e| management_error(appid, e))?;
        let mut messages = Vec::with_capacity(page.len());
        for m in &page {
            let mut v = json!({"openid": m.openid, "title": m.title, "content": m.content,
                               "sent_at": m.sent_at});
            if let Some(id) = self.mark_blocked(appid, template_id, m).await? {
                v["message_id"] = json!(id);
            }
            messages.push(v);
        }
        let mut body = json!({"messages": messages});
        if page.len() as u32 == limit
            && let Some(last) = page.iter().map(|m| m.id).max()
        {
            body["cursor"] = json!(last.to_string());
        }
        Ok(body)
    }

    /// The wxpush message `m` is (the closest send in time of the template to the same
    /// recipient), marked `blocked` unless it already has a final state.
    async fn mark_blocked(
        &self,
        appid: &str,
        template_id: &str,
        m: &BlockedMessage,
    ) -> Result<Option<String>, ApiError> {
        let pk = ItemKey::template_sends(appid, template_id);
        let from = template_send_sk(&m.openid, m.sent_at - MATCH_SECS, "");
        let prefix = template_send_prefix(&m.openid);
        let rows = self.store.query_page(&pk, Some(&from), 50).await?.rows;
        let Some(send) = rows
            .iter()
            .filter(|(sk, _)| sk.starts_with(&prefix))
            .filter(|(_, a)| {
                a.num("sent_at")
                    .is_some_and(|t| t <= m.sent_at + MATCH_SECS)
            })
            .min_by_key(|(_, a)| (a.num("sent_at").unwrap_or(0) - m.sent_at).abs())
            .map(|(_, a)| a)
        else {
            return Ok(None);
        };
        let Some(id) = send.string("id") else {
            return Ok(None);
        };
        let delivery = send.text("wechat_msgid").unwrap_or(&id);
        let now = now_unix();
        let op = Op::PutIfAbsent {
            key: ItemKey::delivery(appid, delivery),
            attrs: attrs([
                ("appid", appid.into()),
                ("state", "blocked".into()),
                ("status_raw", "blocked".into()),
                ("blocked_id", Attr::N(m.id)),
                ("updated_at", Attr::N(now)),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]),
        };
        self.store.record(&[op], now).await?;
        info!(appid, id = %id, template_id, "message found intercepted by WeChat");
        Ok(Some(id))
    }
}
