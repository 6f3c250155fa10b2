//! The stored shapes: attribute values, item keys, and the operations a [`super::StateStore`]
//! applies together.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The longest part of a key kept as it is, in bytes. DynamoDB allows 2 048 bytes of
/// partition key and 1 024 of sort key, and a part that comes from a push is WeChat's to make
/// long (a menu URL in `EventKey` has up to 1 024 bytes; openids, template ids and MsgIDs are
/// not ours to bound), so a longer part becomes [`key_part`]'s short form.
pub const MAX_KEY_PART: usize = 200;
/// How many bytes of a long part its short form keeps (so keys stay readable).
const KEY_PART_PREFIX: usize = 120;

/// `part` as it goes into a key: itself when it has at most [`MAX_KEY_PART`] bytes, else its
/// first [`KEY_PART_PREFIX`] bytes (to a character boundary), `~` and the SHA-1 of the whole
/// part (hex): at most 161 bytes. A short form is its own short form, so a key read back
/// from the table (an outbox row's sort key) names the same item again. Items keyed by a
/// short form keep the whole value in an attribute.
pub fn key_part(part: &str) -> Cow<'_, str> {
    use sha1::Digest;
    if part.len() <= MAX_KEY_PART {
        return Cow::Borrowed(part);
    }
    let mut end = KEY_PART_PREFIX;
    while !part.is_char_boundary(end) {
        end -= 1;
    }
    let digest = hex::encode(sha1::Sha1::digest(part.as_bytes()));
    Cow::Owned(format!("{}~{digest}", &part[..end]))
}

/// A stored attribute value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    S(String),
    N(i64),
    Bool(bool),
}

pub type Attrs = BTreeMap<String, Attr>;

pub fn attrs<const N: usize>(pairs: [(&str, Attr); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// An item's key in the wxpush table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> ItemKey {
        ItemKey {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
    /// The (appid, openid) → account item: subscription state and unionid. One `GetItem` by
    /// (appid, openid); `Query pk = acct#{appid}` lists an app's known users (follower sync).
    pub fn account(appid: &str, openid: &str) -> ItemKey {
        ItemKey::new(
            format!("acct#{appid}"),
            format!("openid#{}", key_part(openid)),
        )
    }
    /// One of a unionid's accounts: `Query pk = union#{unionid}` ([`ItemKey::union_pk`])
    /// lists them all.
    pub fn union_account(unionid: &str, appid: &str) -> ItemKey {
        ItemKey::new(ItemKey::union_pk(unionid), format!("acct#{appid}"))
    }
    pub fn union_pk(unionid: &str) -> String {
        format!("union#{}", key_part(unionid))
    }
    /// A template message's delivery status, by WeChat's msgid.
    pub fn delivery(appid: &str, msgid: &str) -> ItemKey {
        ItemKey::new(format!("wxmsg#{appid}#{}", key_part(msgid)), "delivery")
    }
    /// A user's subscribe-message grant for one template.
    pub fn grant(appid: &str, openid: &str, template_id: &str) -> ItemKey {
        ItemKey::new(
            ItemKey::grants_pk(appid, openid),
            format!("tpl#{}", key_part(template_id)),
        )
    }
    /// An `Idempotency-Key` of the send API: the request's hash and, once done, its answer.
    pub fn idempotency(appid: &str, key: &str) -> ItemKey {
        ItemKey::new(format!("idem#{appid}#{key}"), "idempotency")
    }
    /// A message sent through the API, by wxpush's id.
    pub fn message(appid: &str, id: &str) -> ItemKey {
        ItemKey::new(format!("msg#{appid}#{id}"), "message")
    }
    /// A plaintext-mode callback's signature (40 hex characters, checked before it gets
    /// here; it names the token, timestamp and nonce) and the hash of the app, method and body
    /// it first came with.
    pub fn nonce(signature: &str) -> ItemKey {
        ItemKey::new(format!("nonce#{signature}"), "nonce")
    }
    /// A callback event, by its dedupe key (already short: `InboundMessage::dedupe_key`).
    pub fn event(appid: &str, dedupe_key: &str) -> ItemKey {
        ItemKey::new(format!("evt#{appid}#{}", key_part(dedupe_key)), "event")
    }
    /// A batch: its message, state, totals and fan-out cursor.
    pub fn batch(appid: &str, id: &str) -> ItemKey {
        ItemKey::new(format!("batch#{appid}#{id}"), "meta")
    }
    /// The batch an `Idempotency-Key` created: `key_hash` is a SHA-1 of the caller's principal
    /// and the key; the item holds the (random) batch id.
    pub fn batch_idempotency(appid: &str, key_hash: &str) -> ItemKey {
        ItemKey::new(format!("bkey#{appid}#{key_hash}"), "batch")
    }
    /// One chunk of a batch's recipients (written once).
    pub fn batch_recipients(appid: &str, id: &str, chunk: u32) -> ItemKey {
        ItemKey::new(format!("brcpt#{appid}#{id}"), format!("{chunk:06}"))
    }
    /// A batch that may still have recipients to send: `Query pk = batches` lists them for
    /// the sweep (written with the batch's `running` state, deleted once it is done).
    pub fn unfinished_batch(appid: &str, id: &str) -> ItemKey {
        ItemKey::new("batches", format!("{appid}#{id}"))
    }
    /// One chunk's progress: a character per recipient. `Query pk` sums a batch's counts.
    pub fn batch_progress(appid: &str, id: &str, chunk: u32) -> ItemKey {
        ItemKey::new(format!("bprog#{appid}#{id}"), format!("{chunk:06}"))
    }
    /// A batch recipient that failed or whose outcome is unknown; `Query pk` pages them.
    pub fn batch_failure(appid: &str, id: &str, chunk: u32, index: usize) -> ItemKey {
        ItemKey::new(
            format!("bfail#{appid}#{id}"),
            format!("{chunk:06}#{index:05}"),
        )
    }
    /// A batch recipient's send claim (what makes it one message whatever is redelivered).
    pub fn batch_claim(appid: &str, id: &str, recipient_key: &str) -> ItemKey {
        ItemKey::new(format!("bclaim#{appid}#{id}"), recipient_key.to_string())
    }
    /// The send permits an app's batches took in one second (the shared pace).
    pub fn pace(appid: &str, second: i64) -> ItemKey {
        ItemKey::new(format!("pace#{appid}"), second.to_string())
    }
    /// An event recorded but not yet forwarded (the outbox): `Query pk` lists an app's.
    pub fn outbox(appid: &str, dedupe_key: &str) -> ItemKey {
        ItemKey::new(ItemKey::outbox_pk(appid), key_part(dedupe_key))
    }
    pub fn outbox_pk(appid: &str) -> String {
        format!("fwd#{appid}")
    }
    /// An event whose forwarding was given up (to the dead-letter queue), kept for its redrive.
    pub fn outbox_dead(appid: &str, dedupe_key: &str) -> ItemKey {
        ItemKey::new(format!("fwd#dead#{appid}"), key_part(dedupe_key))
    }
    /// Where the outbox sweep of `appid` stopped (it goes on from there).
    pub fn outbox_sweep(appid: &str) -> ItemKey {
        ItemKey::new(format!("fwd#sweep#{appid}"), "cursor")
    }
    /// A new follower whose unionid look-up is still to run: written in the transaction of
    /// its `subscribe` event, deleted with the unionid. `Query pk` lists an app's (the sweep
    /// reads the openid from the row's `openid`: a long one's key is its short form).
    pub fn follow_up(appid: &str, openid: &str) -> ItemKey {
        ItemKey::new(ItemKey::follow_up_pk(appid), key_part(openid))
    }
    pub fn follow_up_pk(appid: &str) -> String {
        format!("fup#{appid}")
    }
    /// Where the follow-up sweep of `appid` stopped (it goes on from there).
    pub fn follow_up_sweep(appid: &str) -> ItemKey {
        ItemKey::new(format!("fup#sweep#{appid}"), "cursor")
    }
    /// An official account's follower sync: its state, counters and cursor.
    pub fn follower_sync(appid: &str) -> ItemKey {
        ItemKey::new(format!("sync#{appid}"), "followers")
    }
    /// A user's customer-service allowances: `Query pk` lists them, one row per kind of
    /// interaction ([`ItemKey::service_window`]).
    pub fn service_window_pk(appid: &str, openid: &str) -> String {
        format!("win#{appid}#{}", key_part(openid))
    }
    /// The allowance the user's last interaction of `kind` opened (a message, a menu click,
    /// ...) and how much of it wxpush used.
    pub fn service_window(appid: &str, openid: &str, kind: &str) -> ItemKey {
        ItemKey::new(ItemKey::service_window_pk(appid, openid), kind)
    }
    /// Messages wxpush sent to a user on one day (China Standard Time), all templates
    /// together (`template` `None`) or of one template: the frequency cap's counter.
    pub fn daily_count(appid: &str, openid: &str, day: &str, template: Option<&str>) -> ItemKey {
        let sk = match template {
            None => day.to_string(),
            Some(t) => format!("{day}#tpl#{}", key_part(t)),
        };
        ItemKey::new(format!("day#{appid}#{}", key_part(openid)), sk)
    }
    /// A user's grants of every template: `Query pk` lists them ([`ItemKey::grant`]).
    pub fn grants_pk(appid: &str, openid: &str) -> String {
        format!("grant#{appid}#{}", key_part(openid))
    }
    /// A message sent with a template, by recipient and time: `Query pk` from
    /// `{openid}#{sent_at}` finds the message an intercepted one (`queryblocktmplmsg`) is.
    pub fn template_sends(appid: &str, template_id: &str) -> String {
        format!("tplsent#{appid}#{}", key_part(template_id))
    }
}

/// The net effect of one event on one template grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantChange {
    /// `accepted` / `rejected`, when the event says.
    pub status: Option<&'static str>,
    /// One-time acceptances added (popup `accept`).
    pub add: i64,
    /// Earlier acceptances cleared (reject, or WeChat reporting no subscription left);
    /// `add` still applies after the clear.
    pub clear: bool,
    /// Acceptances used up by messages WeChat reports sent (`subscribe_msg_sent_event` with
    /// `ErrorCode` 0); never below zero.
    pub used: i64,
    pub sent: Option<(String, i64, String)>,
    /// Uses WeChat reports of messages wxpush had already counted when it sent them (an
    /// acceptance it moved from `available` to `pending`): they leave `pending`, never below
    /// zero, and `available` stays.
    pub confirmed: i64,
}

/// One operation of a set applied together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Put only if absent; when the item exists, nothing of the set is written and the outcome
    /// is [`super::Recorded::Duplicate`].
    Insert {
        key: ItemKey,
        attrs: Attrs,
    },
    /// Written unless the item holds a newer `event_time` (out-of-order retries).
    SetIfNewer {
        key: ItemKey,
        event_time: i64,
        attrs: Attrs,
    },
    /// The whole item replaced by `attrs` (and `event_time`) unless it holds a newer
    /// `event_time`: a cheaper `SetIfNewer` for a writer that knows every attribute of the item.
    PutIfNewer {
        key: ItemKey,
        event_time: i64,
        attrs: Attrs,
    },
    /// Written as is (latest wins).
    Set {
        key: ItemKey,
        attrs: Attrs,
    },
    Grant {
        key: ItemKey,
        change: GrantChange,
    },
    /// Sets `attrs` on an existing item only while its number attribute `field` is still
    /// `expected` (a read-modify-write that must not overwrite a change made since the read).
    /// When it is not (or the item is gone), nothing of the set is written and the outcome is
    /// [`super::Recorded::Conflict`].
    SetIfEquals {
        key: ItemKey,
        attrs: Attrs,
        field: String,
        expected: i64,
    },
    /// Sets `attrs` on an existing item, leaving its other attributes alone (latest wins).
    /// When the item is gone, nothing of the set is written and the outcome is
    /// [`super::Recorded::Conflict`].
    Update {
        key: ItemKey,
        attrs: Attrs,
    },
    /// Removes the item (nothing happens when it is already gone).
    Delete {
        key: ItemKey,
    },
    /// Put only if the item is absent; when it is there, this operation is left out and the
    /// rest of the set still applies (a first state that later ones must not overwrite).
    PutIfAbsent {
        key: ItemKey,
        attrs: Attrs,
    },
    /// Adds each of `deltas` to its number attribute (a missing one counts as 0) and sets
    /// `attrs`, only while the number attribute `at_least.0` is at least `at_least.1` (a
    /// missing one counts as 0). When it is not, nothing of the set is written and the outcome
    /// is [`super::Recorded::Conflict`]. Atomic without a read: a counter many callers move.
    Add {
        key: ItemKey,
        deltas: Vec<(String, i64)>,
        attrs: Attrs,
        at_least: Option<(String, i64)>,
    },
    /// Replaces the whole item only if its `version` attribute is `expected` (`None`: only if
    /// the item is absent). When it is not, nothing of the set is written and the outcome is
    /// [`super::Recorded::Conflict`]. `attrs` carries the new `version`.
    PutIfVersion {
        key: ItemKey,
        attrs: Attrs,
        expected: Option<i64>,
    },
}

impl Op {
    /// The item this operation writes.
    pub fn key(&self) -> &ItemKey {
        match self {
            Op::Insert { key, .. }
            | Op::SetIfNewer { key, .. }
            | Op::PutIfNewer { key, .. }
            | Op::Set { key, .. }
            | Op::Grant { key, .. }
            | Op::SetIfEquals { key, .. }
            | Op::Update { key, .. }
            | Op::Delete { key }
            | Op::PutIfAbsent { key, .. }
            | Op::Add { key, .. }
            | Op::PutIfVersion { key, .. } => key,
        }
    }
}

/// Applies a grant change to stored attributes (the embedded store; DynamoDB does the same
/// with an update expression).
pub fn apply_grant(existing: &mut Attrs, change: &GrantChange, now: i64) {
    if let Some(status) = change.status {
        existing.insert("status".into(), Attr::S(status.into()));
    }
    let available = match existing.get("available") {
        Some(Attr::N(n)) => *n,
        _ => 0,
    };
    let available = ((if change.clear { 0 } else { available }) + change.add - change.used).max(0);
    existing.insert("available".into(), Attr::N(available));
    if change.confirmed > 0 {
        let pending = match existing.get("pending") {
            Some(Attr::N(n)) => *n,
            _ => 0,
        };
        let pending = (pending - change.confirmed).max(0);
        existing.insert("pending".into(), Attr::N(pending));
    }
    if let Some((msgid, code, status)) = &change.sent {
        existing.insert("last_msgid".into(), Attr::S(msgid.clone()));
        existing.insert("last_error_code".into(), Attr::N(*code));
        existing.insert("last_error_status".into(), Attr::S(status.clone()));
    }
    existing.insert("updated_at".into(), Attr::N(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_key_parts_become_short_readable_and_stable() {
        assert_eq!(
            key_part("o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
            "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
        );
        let at_limit = "x".repeat(MAX_KEY_PART);
        assert_eq!(key_part(&at_limit), at_limit.as_str());
        // A menu URL of 1 024 bytes, multi-byte characters across the cut.
        let url = format!("https://example.com/{}", "页".repeat(334));
        let short = key_part(&url);
        assert!(short.len() <= 161, "{}", short.len());
        assert!(short.starts_with("https://example.com/页"));
        assert_eq!(key_part(&short), short, "a short form is its own");
        // Two long values with the same beginning stay apart.
        let other = format!("{url}x");
        assert_ne!(key_part(&other), short);
        assert_eq!(key_part(&url), short, "the same value, the same key");
        let key = ItemKey::outbox("wx1", &url);
        assert_eq!(key.sk, short);
        assert_eq!(
            ItemKey::outbox("wx1", &key.sk),
            key,
            "a key read back names the row"
        );
        assert!(ItemKey::account("wx1", &url).sk.len() <= 170);
    }
}
