//! A chunk's stored items: its recipients (`brcpt#…`) and its progress (`bprog#…`), one
//! outcome character per recipient, merged when two runs of the chunk write it.

use crate::clock::now_unix;
use crate::send::service::MESSAGE_TTL_SECS;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, attrs};

pub(in crate::batch) const QUEUED: u8 = b'.';
pub(in crate::batch) const SENT: u8 = b's';
pub(in crate::batch) const FAILED: u8 = b'f';
pub(in crate::batch) const UNKNOWN: u8 = b'u';
pub(in crate::batch) const CANCELLED: u8 = b'c';
/// Failed without a send: the chunk was given up (counted as failed). A real outcome written
/// by another run of the chunk still replaces it.
pub(in crate::batch) const NOT_SENT: u8 = b'n';
/// The same person as another recipient of the batch (an openid and its unionid, say): the
/// other recipient's message is theirs (counted in `duplicates`).
pub(in crate::batch) const DUPLICATE: u8 = b'd';
/// Held back before WeChat: the message needs a grant (`require_grant`) and wxpush knows
/// none (counted in `no_grant`).
pub(in crate::batch) const NO_GRANT: u8 = b'g';
/// Held back before WeChat: the recipient reached the app's daily cap (counted in `capped`).
pub(in crate::batch) const CAPPED: u8 = b'k';

/// Whether `c` is what became of the recipient for good (sent, refused, unknown, did for the
/// same person, or held back for what wxpush knows of them) rather than a passing state
/// (queued, cancelled, given up).
fn is_real(c: u8) -> bool {
    matches!(c, SENT | FAILED | UNKNOWN | DUPLICATE | NO_GRANT | CAPPED)
}

/// Whether a recipient in state `c` has a row in the batch's failures.
pub(in crate::batch) fn has_failure_row(c: u8) -> bool {
    matches!(c, FAILED | UNKNOWN | NOT_SENT)
}

/// Counts the recipients a flush settled, by outcome (`BatchRecipients` metrics): positions
/// that were not yet a real outcome before and are one now.
pub(in crate::batch) fn count_settled(before: &[u8], after: &[u8]) {
    for (outcome, name) in [
        (SENT, "sent"),
        (FAILED, "failed"),
        (UNKNOWN, "unknown"),
        (NO_GRANT, "no_grant"),
        (CAPPED, "capped"),
    ] {
        let n = before
            .iter()
            .zip(after)
            .filter(|&(&b, &a)| !is_real(b) && a == outcome)
            .count();
        crate::metrics::count("BatchRecipients", n as f64, &[("Outcome", name)]);
    }
}

/// Two views of a chunk's outcomes made one: a real outcome beats "queued", "cancelled" and
/// "not sent" (a send in flight when the cancel came still went out), the first real outcome
/// stays, and a decision beats "queued".
pub(in crate::batch) fn merge(stored: &[u8], mine: &[u8]) -> Vec<u8> {
    stored
        .iter()
        .zip(mine)
        .map(|(&a, &b)| match (a, b) {
            (a, _) if is_real(a) => a,
            (_, b) if is_real(b) => b,
            (QUEUED, b) => b,
            (a, _) => a,
        })
        .collect()
}

/// One chunk's progress item, read.
#[derive(Clone, Debug)]
pub(in crate::batch) struct Progress {
    pub version: i64,
    pub results: Vec<u8>,
    pub started: bool,
    /// Unix seconds until which a job that flushed it may still be running.
    pub active_until: i64,
    /// When a job last flushed it.
    pub flushed_at: i64,
    /// Unix seconds when a put-back (or a sweep's requeue) of its job is due.
    pub due_at: i64,
    /// Sweeps that requeued it since a job last flushed it.
    pub sweeps: i64,
}

impl Progress {
    /// Reads a progress item; a missing number reads as 0.
    pub fn read(item: &Attrs) -> Progress {
        let num = |name: &str| item.num(name).unwrap_or(0);
        Progress {
            version: num("version"),
            results: item.string("results").unwrap_or_default().into_bytes(),
            started: item.flag("started"),
            active_until: num("active_until"),
            flushed_at: num("flushed_at"),
            due_at: num("due_at"),
            sweeps: num("sweeps"),
        }
    }
}

/// The recipients of a batch's progress items by state: queued, sent, failed (given up
/// included), unknown, cancelled, the same person as another recipient, no grant, capped.
pub(in crate::batch) fn count_progress(progress: &[(String, Attrs)]) -> [i64; 8] {
    let mut counts = [0i64; 8];
    for (_, p) in progress {
        for c in Progress::read(p).results {
            let slot = match c {
                SENT => 1,
                FAILED | NOT_SENT => 2,
                UNKNOWN => 3,
                CANCELLED => 4,
                DUPLICATE => 5,
                NO_GRANT => 6,
                CAPPED => 7,
                _ => 0,
            };
            counts[slot] += 1;
        }
    }
    counts
}

/// A chunk's progress item, replacing version `expected`. `active_until`: until when the
/// job writing it may still run (the sweep leaves the chunk alone until then).
pub(in crate::batch) fn progress_op(
    key: &ItemKey,
    results: &[u8],
    expected: i64,
    started: bool,
    active_until: i64,
) -> Op {
    let now = now_unix();
    Op::PutIfVersion {
        key: key.clone(),
        attrs: attrs([
            (
                "results",
                String::from_utf8_lossy(results).into_owned().into(),
            ),
            ("count", Attr::N(results.len() as i64)),
            ("started", Attr::Bool(started)),
            ("version", Attr::N(expected + 1)),
            ("active_until", Attr::N(active_until)),
            ("flushed_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]),
        expected: Some(expected),
    }
}

/// The two items of a new chunk: its recipients and its (all queued) progress.
pub(in crate::batch) fn chunk_ops(
    appid: &str,
    id: &str,
    chunk: u32,
    recipients: &[String],
    now: i64,
) -> [Op; 2] {
    [
        Op::Set {
            key: ItemKey::batch_recipients(appid, id, chunk),
            attrs: attrs([
                ("recipients", recipients.join("\n").into()),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]),
        },
        Op::Set {
            key: ItemKey::batch_progress(appid, id, chunk),
            attrs: attrs([
                ("results", ".".repeat(recipients.len()).into()),
                ("count", Attr::N(recipients.len() as i64)),
                ("started", Attr::Bool(false)),
                ("version", Attr::N(0)),
                ("due_at", Attr::N(now)),
                ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
            ]),
        },
    ]
}

/// A chunk's recipients item, read: its recipient keys in order.
pub(in crate::batch) fn read_recipients(item: &Attrs) -> Vec<String> {
    item.text("recipients")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_real_outcomes() {
        assert_eq!(merge(b"..cs", b"sccf"), b"sccs".to_vec());
        assert_eq!(merge(b"c.", b"s."), b"s.".to_vec());
        assert_eq!(merge(b"f", b"s"), b"f".to_vec());
        // A give-up is replaced by what another run of the chunk really did.
        assert_eq!(merge(b"nn.", b"sn."), b"sn.".to_vec());
        assert_eq!(merge(b"s.", b"nn"), b"sn".to_vec());
    }
}
