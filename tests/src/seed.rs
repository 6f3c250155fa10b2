//! Message records with their list rows written straight into a state store, as a send
//! writes them: for tests and measurements of the lists at scale (100 000 messages would take
//! minutes through WeChat's emulator).

use wxpush_shared::listing;
use wxpush_shared::store::{Attr, ItemKey, Op, StateStore, StoreError, attrs};

/// Messages stored per transaction.
const SEED_CHUNK: usize = 2_000;

/// The id of the `i`th seeded message, made at `ms` (unix milliseconds).
pub fn seeded_message_id(ms: i64, i: usize) -> String {
    format!("msg_{ms:012x}{i:020x}")
}

/// `count` template messages of `appid` to `o_{i}`, `sent`, one a millisecond from
/// `start_ms`: each record and its list row in the message's transaction.
pub async fn seed_messages(
    store: &dyn StateStore,
    appid: &str,
    count: usize,
    start_ms: i64,
) -> Result<(), StoreError> {
    let s = |v: &str| Attr::S(v.to_string());
    for first in (0..count).step_by(SEED_CHUNK) {
        let mut ops = Vec::with_capacity(SEED_CHUNK * 2);
        for i in first..count.min(first + SEED_CHUNK) {
            let ms = start_ms + i as i64;
            let id = seeded_message_id(ms, i);
            let ttl = ms / 1000 + 30 * 86_400;
            ops.push(Op::Set {
                key: ItemKey::message(appid, &id),
                attrs: attrs([
                    ("id", s(&id)),
                    ("appid", s(appid)),
                    ("via_appid", s(appid)),
                    ("type", s("template")),
                    ("openid", s(&format!("o_{i}"))),
                    ("requested_by", s("seed")),
                    ("created_at", Attr::N(ms / 1000)),
                    ("ttl", Attr::N(ttl)),
                    ("status", s("sent")),
                    (
                        "wechat_msgid",
                        s(&(3_000_000_000i64 + i as i64).to_string()),
                    ),
                ]),
            });
            ops.push(listing::index_op_for_id(
                listing::MESSAGES,
                appid,
                ms,
                &id,
                ttl,
            ));
        }
        store.record(&ops, 0).await?;
    }
    Ok(())
}
