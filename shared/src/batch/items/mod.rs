//! What is stored for a batch. A batch `id` of app `appid` is, in the state table:
//! - `batch#{appid}#{id}` / `meta` — the message, who asked, state, totals, fan-out cursor,
//!   pause; changed by compare-and-swap on `version` (a pause is set without one: it only
//!   ever moves `paused_until`). See [`Meta`] and [`BatchState`].
//! - `brcpt#…` / `{chunk}` — a chunk's recipients (`o:{openid}` / `u:{unionid}`, one a line),
//!   written once.
//! - `bprog#…` / `{chunk}` — one character per recipient of the chunk: `.` queued, `s` sent,
//!   `f` failed, `u` unknown (may have been delivered), `c` cancelled, `n` given up, `d` the
//!   same person as another recipient, `g` no grant and `k` capped (held back before WeChat
//!   for what wxpush knows of the recipient). Written by
//!   compare-and-swap with a merge, so two workers on one chunk never lose an outcome. The
//!   counts of `GET` are the sum of these. See [`Progress`].
//! - `bfail#…` / `{chunk}#{index}` — a failed or unknown recipient, with why (`failure.rs`).
//! - `bkey#{appid}#{sha1(principal, key)}` / `batch` — an `Idempotency-Key`'s batch id
//!   (ids are random; this item is how a retry finds its batch), written with the batch's
//!   first claim.
//! - `bclaim#…` / `{recipient}` — the recipient's send claim, the same claim a single send's
//!   `Idempotency-Key` takes ([`Sender::send_claimed`](crate::send::service::Sender::send_claimed)):
//!   a redelivered job, a crashed worker or a duplicate job finds it and replays its outcome
//!   instead of sending again.
//! - `batches` / `{appid}#{id}` — the batch in the sweep's list of unfinished batches.

mod failure;
mod meta;
mod progress;
mod state;

pub(super) use failure::{failure_json, failure_row};
pub(super) use meta::Meta;
pub(super) use progress::*;
pub(super) use state::Audience;
pub use state::BatchState;

use crate::send::service::MESSAGE_TTL_SECS;
use crate::store::{Attr, ItemKey, Op, attrs};

/// The batch's row in the sweep's list of unfinished batches.
pub(super) fn unfinished_op(appid: &str, id: &str, now: i64) -> Op {
    Op::Set {
        key: ItemKey::unfinished_batch(appid, id),
        attrs: attrs([
            ("listed_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]),
    }
}
