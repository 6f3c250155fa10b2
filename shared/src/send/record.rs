//! The message record: written with the finished claim in one transaction once the send is
//! answered, read back by a retry that took an `attempting` claim over, and served by
//! `GET /v1/apps/{appid}/messages/{id}`.

use super::claim::{CLAIM_LEASE_MARGIN_SECS, ClaimState};
use super::outcome::SendOutcome;
use super::route::Routed;
use super::service::Sender;
use super::validate::MessageKind;
use crate::clock::{now_unix, now_unix_millis};
use crate::error::ApiError;
use crate::listing;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, Recorded, attrs};
use http::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// How long message records are kept.
pub const MESSAGE_TTL_SECS: i64 = 30 * 86_400;

/// A new message id: `msg_`, then 32 lowercase hex digits of which the first 12 are the
/// creation time in unix milliseconds and the other 20 random (80 bits), so that ids sort by
/// creation time (the app's message list) and never collide.
pub(super) fn new_message_id() -> String {
    let random = rand::random::<u128>() & ((1u128 << 80) - 1);
    format!(
        "msg_{:012x}{random:020x}",
        now_unix_millis() & 0xffff_ffff_ffff
    )
}

/// When a message id was made (unix milliseconds), from its first 12 hex digits; an id made
/// before ids carried their time (random digits) is placed at the record's `created_at`.
pub(super) fn message_id_time_ms(id: &str, created_at: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let created_ms = created_at.saturating_mul(1000);
    match id.get(4..16).and_then(|t| i64::from_str_radix(t, 16).ok()) {
        Some(ms) if (ms - created_ms).abs() <= DAY_MS => ms,
        _ => created_ms,
    }
}

/// The message's row in its app's newest-first list ([`crate::listing`]), written with
/// every write of its record.
fn list_row(record: &Attrs) -> Option<Op> {
    let (id, appid, ttl, created_at) = (
        record.text("id")?,
        record.text("appid")?,
        record.num("ttl")?,
        record.num("created_at")?,
    );
    Some(listing::index_op_for_id(
        listing::MESSAGES,
        appid,
        message_id_time_ms(id, created_at),
        id,
        ttl,
    ))
}

/// A message's record as it stands before its answer is known: who sent what to whom, and
/// `extra` attributes of the caller (a batch's id).
pub(super) fn message_record(
    id: &str,
    routed: &Routed,
    kind: MessageKind,
    caller: &str,
    extra: &[(&str, &str)],
) -> Attrs {
    let now = now_unix();
    let mut record = attrs([
        ("id", id.into()),
        ("appid", routed.app.as_str().into()),
        ("via_appid", routed.via.appid.as_str().into()),
        ("type", kind.as_str().into()),
        ("openid", routed.openid.as_str().into()),
        ("requested_by", caller.into()),
        ("created_at", Attr::N(now)),
        ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
    ]);
    if let Some(u) = &routed.unionid {
        record.insert("unionid".into(), u.as_str().into());
    }
    for (k, v) in extra {
        record.insert(k.to_string(), (*v).into());
    }
    record
}

/// A sent message of a template, indexed by its recipient and time under the sending app's
/// template: what finds the message WeChat's `queryblocktmplmsg` lists as intercepted.
fn template_send_index(key: &ItemKey, record: &Attrs) -> Option<Op> {
    if record.text("status") != Some("sent") {
        return None;
    }
    let (via, template, openid) = (
        record.text("via_appid")?,
        record.text("template_id")?,
        record.text("openid")?,
    );
    let (id, sent_at) = (record.text("id")?, record.num("created_at")?);
    let mut attrs = attrs([
        ("id", id.into()),
        ("openid", openid.into()),
        ("message_pk", key.pk.as_str().into()),
        ("sent_at", Attr::N(sent_at)),
        ("ttl", Attr::N(sent_at + MESSAGE_TTL_SECS)),
    ]);
    if let Some(msgid) = record.text("wechat_msgid") {
        attrs.insert("wechat_msgid".into(), msgid.into());
    }
    Some(Op::Set {
        key: ItemKey::new(
            ItemKey::template_sends(via, template),
            template_send_sk(openid, sent_at, id),
        ),
        attrs,
    })
}

/// The sort key of [`template_send_index`]: by recipient, then time.
pub fn template_send_sk(openid: &str, sent_at: i64, id: &str) -> String {
    format!(
        "{}{:012}#{id}",
        template_send_prefix(openid),
        sent_at.max(0)
    )
}

/// What every [`template_send_sk`] of one recipient starts with.
pub fn template_send_prefix(openid: &str) -> String {
    format!("{}#", crate::store::key_part(openid))
}

impl Sender {
    /// The answer an earlier holder of `claim` (one that may have reached WeChat) recorded
    /// under `key`, written onto the claim. The earlier holder may have finished without
    /// writing the claim: its record says, unless it is a template's `unknown` that may still
    /// be resent (`dedupes`).
    pub(super) async fn earlier_outcome(
        &self,
        key: &ItemKey,
        claim: &ClaimState,
        dedupes: bool,
        deadline: Instant,
    ) -> Result<Option<SendOutcome>, ApiError> {
        if let Some((outcome, resend_until)) = self.recorded_outcome(key).await?
            && !(dedupes && resend_until.is_some_and(|t| t > now_unix()))
        {
            self.write_outcome(Vec::new(), Some(claim), &outcome, deadline)
                .await;
            return Ok(Some(outcome));
        }
        Ok(None)
    }

    /// Writes `record` with the answer `outcome` on it, and the finished claim with it;
    /// `false` when the store stayed down (see [`Sender::write_outcome`]).
    pub(super) async fn record_answer(
        &self,
        key: ItemKey,
        mut record: Attrs,
        claim: Option<&ClaimState>,
        outcome: &SendOutcome,
        deadline: Instant,
    ) -> bool {
        record.insert(
            "answer_status".into(),
            Attr::N(outcome.status.as_u16() as i64),
        );
        record.insert("answer".into(), outcome.body.to_string().into());
        let mut writes = Vec::with_capacity(3);
        if let Some(index) = template_send_index(&key, &record) {
            writes.push(index);
        }
        writes.extend(list_row(&record));
        writes.push(Op::Set { key, attrs: record });
        self.write_outcome(writes, claim, outcome, deadline).await
    }

    /// Writes the message record and the finished claim together, retrying a failing store
    /// until the claim's lease ends. A template's `unknown` that may still be resent leaves
    /// the claim `attempting` with its lease ended, so the next retry resends. When the store
    /// stays down the claim stays `attempting` and `false` is returned.
    pub(super) async fn write_outcome(
        &self,
        records: Vec<Op>,
        claim: Option<&ClaimState>,
        outcome: &SendOutcome,
        deadline: Instant,
    ) -> bool {
        let mut with_claim = claim.is_some();
        let resendable = outcome
            .body
            .get("retry_until")
            .and_then(Value::as_i64)
            .is_some_and(|t| t > now_unix());
        let lease_end = deadline + Duration::from_secs(CLAIM_LEASE_MARGIN_SECS as u64);
        // Bounded: every turn sleeps, and the lease's end stops it.
        for attempt in 1..=64u32 {
            let mut ops = records.clone();
            if let (Some(c), true) = (claim, with_claim) {
                ops.push(if resendable {
                    let mut open = c.clone();
                    open.lease_until = now_unix() - 1;
                    open.op("attempting", &[])
                } else {
                    c.op(
                        "done",
                        &[
                            ("status", Attr::N(outcome.status.as_u16() as i64)),
                            ("response", outcome.body.to_string().into()),
                        ],
                    )
                });
            }
            if ops.is_empty() {
                return true;
            }
            match self.store.record(&ops, now_unix()).await {
                Ok(Recorded::New) => return true,
                Ok(_) => {
                    // The claim was taken over (this invocation outlived its lease): the record
                    // is still ours to write.
                    warn!(key = ?claim.map(|c| &c.idempotency_key), "Idempotency-Key was taken over; writing the message record alone");
                    with_claim = false;
                }
                Err(e) => {
                    let pause = Duration::from_millis(50 << attempt.min(5));
                    if Instant::now() + pause > lease_end {
                        error!(id = ?outcome.body.get("id"), error = %e, "could not record a send's outcome");
                        return false;
                    }
                    warn!(attempt, error = %e, "recording a send's outcome failed; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        false
    }

    /// The answer an earlier invocation recorded for this message, if it got that far, and
    /// until when it may be resent (a template's `unknown`).
    async fn recorded_outcome(
        &self,
        key: &ItemKey,
    ) -> Result<Option<(SendOutcome, Option<i64>)>, ApiError> {
        let Some(rec) = self.store.get(key).await? else {
            return Ok(None);
        };
        Ok(match (rec.num("answer_status"), rec.text("answer")) {
            (Some(status), Some(answer)) => Some((
                SendOutcome {
                    status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                    body: serde_json::from_str(answer).unwrap_or(Value::Null),
                },
                rec.num("resend_until"),
            )),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_lists_at_its_time_and_an_older_random_id_at_its_record() {
        let now = now_unix();
        let id = new_message_id();
        let at = message_id_time_ms(&id, now);
        assert!((at - now * 1000).abs() < 5_000, "{id}: {at}");
        // An id made before ids carried their time: 12 random hex digits, far from the record.
        let random = "msg_ffffffffffff00000000000000000000";
        assert_eq!(message_id_time_ms(random, now), now * 1000);
        assert_eq!(message_id_time_ms("msg_", now), now * 1000);
    }
}
