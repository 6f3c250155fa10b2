//! One send, step by step: `POST /v1/apps/{appid}/messages` (claim the key, route, deliver,
//! record) and a batch recipient's send under the claim the batch names.

use super::claim::{
    Claim, ClaimSpec, ClaimState, ClaimedOutcome, IDEMPOTENCY_TTL_SECS, lease_until,
};
use super::deliver::{Failure, TEMPLATE_RESEND_WINDOW_SECS, WxMessage};
use super::idempotency_key::{body_hash, check_idempotency_key, claim_key};
use super::outcome::{
    SendOutcome, refused_outcome, sent_outcome, unknown_outcome, unrecorded_outcome,
};
use super::record::{message_record, new_message_id};
use super::route::Routed;
use super::service::Sender;
use super::validate::{SendRequest, parse_send_request};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::ItemKey;
use std::time::Instant;

impl Sender {
    /// `POST /v1/apps/{appid}/messages`.
    ///
    /// With an `Idempotency-Key`, the key is claimed before anything else happens, leased
    /// until the invocation's `deadline` (plus [`CLAIM_LEASE_MARGIN_SECS`](super::claim::CLAIM_LEASE_MARGIN_SECS)), moved to
    /// `attempting` just before the first WeChat call, and ends `done` (with the answer) in
    /// the same write as the message record, or `released` when nothing reached WeChat.
    pub async fn send(
        &self,
        appid: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
        caller: &str,
        deadline: Instant,
    ) -> Result<SendOutcome, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        let req = parse_send_request(body)?;
        // The key first: a retry of a finished request gets its first answer even if the
        // recipient mapping or the store changed since.
        let claim = match idempotency_key {
            None => None,
            Some(key) => {
                check_idempotency_key(key)?;
                let lease_until = lease_until(deadline);
                let item = claim_key(appid, caller, key);
                let expires_at = now_unix() + IDEMPOTENCY_TTL_SECS;
                match self
                    .claim(appid, key, item, body_hash(body), lease_until, expires_at)
                    .await?
                {
                    Claim::Replay(outcome, _) => return Ok(outcome),
                    Claim::Claimed(c) => Some(c),
                }
            }
        };
        let routed = match self.route(&app, &req).await {
            Ok(r) => r,
            Err(e) => {
                // Nothing went out from here: the key is free for a corrected retry, unless an
                // earlier holder may have reached WeChat (then it stays `attempting` for ever:
                // `release` refuses, and the next retry takes it over again).
                if let Some(c) = &claim {
                    self.release(c).await;
                }
                return Err(e);
            }
        };
        self.finish(&req, routed, claim, caller, &[], deadline)
            .await
    }

    /// One send whose recipient is already routed, under a claim the caller names: a batch
    /// recipient's (see [`crate::batch`]). `claim.label` names the claim in logs and errors
    /// and is stored on it; `claim.hash` is what makes a claim for another message a conflict;
    /// the claim lives until `claim.expires_at`; `record_extra` goes on the message record
    /// (the batch id). The rules are those of [`Sender::send`]. A replayed answer says which
    /// label first took the claim.
    pub async fn send_claimed(
        &self,
        req: &SendRequest,
        routed: Routed,
        claim: ClaimSpec,
        caller: &str,
        record_extra: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<ClaimedOutcome, ApiError> {
        let lease_until = lease_until(deadline);
        let appid = routed.app.clone();
        let ClaimSpec {
            item,
            label,
            hash,
            expires_at,
        } = claim;
        match self
            .claim(&appid, &label, item, hash, lease_until, expires_at)
            .await?
        {
            Claim::Replay(outcome, first_label) => Ok(ClaimedOutcome {
                outcome,
                replay_of: Some(first_label),
            }),
            Claim::Claimed(c) => self
                .finish(req, routed, Some(c), caller, record_extra, deadline)
                .await
                .map(|outcome| ClaimedOutcome {
                    outcome,
                    replay_of: None,
                }),
        }
    }

    /// Delivers a routed message under its claim (if any) and records the outcome.
    async fn finish(
        &self,
        req: &SendRequest,
        routed: Routed,
        mut claim: Option<ClaimState>,
        caller: &str,
        record_extra: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<SendOutcome, ApiError> {
        let appid = routed.app.as_str();
        let via = routed.via.appid.as_str();
        let id = claim
            .as_ref()
            .map(|c| c.message_id.clone())
            .unwrap_or_else(new_message_id);
        let record_key = ItemKey::message(appid, &id);
        let wx = WxMessage::build(req, &routed.openid, &id);
        let dedupes = wx.dedupes();
        if let Some(c) = claim.as_ref().filter(|c| c.after_attempt)
            && let Some(outcome) = self
                .earlier_outcome(&record_key, c, dedupes, deadline)
                .await?
        {
            return Ok(outcome);
        }
        let result = self
            .deliver(&routed.via, &wx, claim.as_mut(), deadline)
            .await;
        let mut record = message_record(&id, &routed, req.kind, caller, record_extra);
        let mut outcome = match result {
            Ok(msgid) => sent_outcome(appid, &id, via, req, msgid, &mut record),
            Err(Failure::Unknown(why)) => {
                // A template may be resent with its client_msg_id until WeChat forgets it:
                // until then the claim stays open to a retry (a batch puts the recipient
                // back), and the answer says until when.
                let resend_until = claim
                    .as_ref()
                    .filter(|_| dedupes)
                    .and_then(|c| c.attempted_at)
                    .map(|t| t + TEMPLATE_RESEND_WINDOW_SECS)
                    .filter(|&t| t > now_unix());
                unknown_outcome(appid, &id, &why, resend_until, &mut record)
            }
            Err(Failure::Refused(e)) => refused_outcome(appid, &id, via, &e, &mut record),
            Err(Failure::NotSent(err)) => {
                // Nothing went out: release the key so the caller's retry can send.
                if let Some(c) = &claim {
                    self.release(c).await;
                }
                return Err(err);
            }
            Err(Failure::Superseded(err)) => return Err(err),
        };
        let recorded = self
            .record_answer(record_key, record, claim.as_ref(), &outcome, deadline)
            .await;
        if !recorded && claim.is_some() && !dedupes {
            // A retry with this key will take the `attempting` claim over and, finding no
            // record, answer `unknown` (this type cannot be resent): so does this answer.
            outcome = unrecorded_outcome(&id, &outcome);
        }
        Ok(outcome)
    }
}
