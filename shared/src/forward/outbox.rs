//! The outbox row: what the callback's transaction writes for each event to forward
//! ([`OutboxEntry`]), before any job runs.

use crate::store::{Attr, ItemKey, Op, attrs, key_part};

/// `wechat.<MsgType>`, or `wechat.event.<Event>` for events.
pub fn detail_type(msg_type: &str, event: Option<&str>) -> String {
    match event {
        Some(e) if msg_type == "event" => format!("wechat.event.{e}"),
        _ => format!("wechat.{msg_type}"),
    }
}

/// One event's outbox row, as plain fields: the callback fills it in from the message it
/// parsed, and its plan writes it ([`OutboxEntry::into_op`]) in the event's own transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub appid: String,
    /// The event's dedupe key, whole: the row's key holds its short form when it is long
    /// ([`key_part`]), and the row the whole key.
    pub dedupe_key: String,
    pub openid: String,
    /// The follower's unionid, when the callback knew it.
    pub unionid: Option<String>,
    pub create_time: i64,
    /// [`detail_type`] of the message.
    pub detail_type: String,
    /// The push as received (decrypted).
    pub body: String,
    pub created_at: i64,
    /// When the outbox sweep may first take the row up (its `next_attempt_at`, which the
    /// sweep reads as the time a retry is due); `None`: from [`OutboxEntry::created_at`].
    pub hold_until: Option<i64>,
}

impl OutboxEntry {
    /// The row's write: an insert, so a retried event finds it there.
    pub fn into_op(self) -> Op {
        let key = ItemKey::outbox(&self.appid, &self.dedupe_key);
        let mut row = attrs([
            ("appid", self.appid.into()),
            ("openid", self.openid.into()),
            ("create_time", self.create_time.into()),
            ("detail_type", self.detail_type.into()),
            ("body", self.body.into()),
            ("created_at", self.created_at.into()),
            ("attempts", Attr::N(0)),
        ]);
        if let Some(u) = self.unionid {
            row.insert("unionid".into(), u.into());
        }
        if key_part(&self.dedupe_key) != self.dedupe_key {
            // The row's sort key is a short form ([`key_part`]): the whole key here.
            row.insert("dedupe_key".into(), self.dedupe_key.into());
        }
        if let Some(until) = self.hold_until {
            row.insert("next_attempt_at".into(), until.into());
        }
        Op::Insert { key, attrs: row }
    }
}
