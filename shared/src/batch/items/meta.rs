//! [`Meta`]: a batch's `meta` item, read.

use super::{Audience, BatchState};
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op};

/// The batch's `meta` item, read.
#[derive(Clone, Debug)]
pub(in crate::batch) struct Meta {
    pub version: i64,
    pub state: BatchState,
    pub audience: Audience,
    pub message: String,
    pub hash: String,
    pub requested_by: String,
    pub created_at: i64,
    pub total: i64,
    pub duplicates: i64,
    pub chunks: u32,
    pub queued_chunks: u32,
    pub fanout_done: bool,
    pub cursor: Option<String>,
    pub paused_until: i64,
    pub pause_reason: Option<String>,
    /// When the fan-out last recorded a step.
    pub fanout_at: i64,
}

impl Meta {
    /// Reads a `meta` item; a missing number reads as 0. `None` when it has no state this
    /// crate writes: then it is no batch (a pause recorded after the batch expired leaves
    /// such an item).
    pub fn read(item: &Attrs) -> Option<Meta> {
        let num = |name: &str| item.num(name).unwrap_or(0);
        Some(Meta {
            version: num("version"),
            state: BatchState::parse(item.text("state")?)?,
            audience: match item.text("audience") {
                Some("followers") => Audience::Followers,
                _ => Audience::Recipients,
            },
            message: item.string("message").unwrap_or_default(),
            hash: item.string("hash").unwrap_or_default(),
            requested_by: item.string("requested_by").unwrap_or_default(),
            created_at: num("created_at"),
            total: num("total"),
            duplicates: num("duplicates"),
            chunks: num("chunks") as u32,
            queued_chunks: num("queued_chunks") as u32,
            fanout_done: item.flag("fanout_done"),
            cursor: item.string("cursor"),
            paused_until: num("paused_until"),
            pause_reason: item.string("pause_reason"),
            fanout_at: num("fanout_at"),
        })
    }

    /// `changes` to the batch, by compare-and-swap on the version this was read at (the
    /// version moves on): lost to any change made since.
    pub fn change_op(&self, appid: &str, id: &str, mut changes: Attrs) -> Op {
        changes.insert("version".into(), Attr::N(self.version + 1));
        Op::SetIfEquals {
            key: ItemKey::batch(appid, id),
            attrs: changes,
            field: "version".into(),
            expected: self.version,
        }
    }
}
