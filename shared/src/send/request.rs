//! One send, step by step: `POST /v1/apps/{appid}/messages` (claim the key, route, deliver,
//! record) and a batch recipient's send under the claim the batch names.

use super::before::Plan;
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
use crate::store::{Attrs, ItemKey};
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

    /// Delivers a routed message under its claim (if any) and records the outcome: what
    /// wxpush knows of the user decides first what goes out (the message, its fallback, or
    /// nothing), then the WeChat call, then the record.
    async fn finish(
        &self,
        req: &SendRequest,
        routed: Routed,
        mut claim: Option<ClaimState>,
        caller: &str,
        record_extra: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<SendOutcome, ApiError> {
        let id = claim
            .as_ref()
            .map(|c| c.message_id.clone())
            .unwrap_or_else(new_message_id);
        let record_key = ItemKey::message(&routed.app, &id);
        let plan = match claim.as_ref().filter(|c| c.after_attempt) {
            Some(c) => {
                let plan = Plan::resumed(req, c.fallback);
                let dedupes = WxMessage::build(plan.message, &routed.openid, &id).dedupes();
                if let Some(outcome) = self
                    .earlier_outcome(&record_key, c, dedupes, deadline)
                    .await?
                {
                    return Ok(outcome);
                }
                plan
            }
            None => match self.plan(req, &routed).await {
                Ok(plan) => plan,
                Err(e) => {
                    // Held back before WeChat: nothing went out, the key is free.
                    if let Some(c) = &claim {
                        self.release(c).await;
                    }
                    return Err(e);
                }
            },
        };
        let (plan, result) = match self
            .deliver_plan(req, &routed, plan, &id, claim.as_mut(), deadline)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                if let Some(c) = &claim {
                    self.release(c).await;
                }
                return Err(e);
            }
        };
        let mut record = message_record(&id, &routed, req.kind, caller, record_extra);
        plan_on_record(&plan, &mut record);
        let outcome = self
            .answer(&routed, &plan, &id, result, claim.as_ref(), &mut record)
            .await?;
        let dedupes = WxMessage::build(plan.message, &routed.openid, &id).dedupes();
        let recorded = self
            .record_answer(record_key, record, claim.as_ref(), &outcome, deadline)
            .await;
        if !recorded && claim.is_some() && !dedupes {
            // A retry with this key will take the `attempting` claim over and, finding no
            // record, answer `unknown` (this type cannot be resent): so does this answer.
            return Ok(unrecorded_outcome(&id, &outcome));
        }
        Ok(outcome)
    }

    /// Sends what `plan` chose; when WeChat refuses a custom message for its window (45015,
    /// 45047) and it has a fallback, the fallback goes instead, under the same claim (marked
    /// first, so a takeover never sends the custom message again). An error: the fallback
    /// was held back before WeChat, and nothing went out.
    async fn deliver_plan<'a>(
        &self,
        req: &'a SendRequest,
        routed: &Routed,
        plan: Plan<'a>,
        id: &str,
        mut claim: Option<&mut ClaimState>,
        deadline: Instant,
    ) -> Result<(Plan<'a>, Result<Option<i64>, Failure>), ApiError> {
        if let Some(c) = claim.as_deref_mut()
            && !c.after_attempt
        {
            c.fallback = plan.fallback;
        }
        let wx = WxMessage::build(plan.message, &routed.openid, id);
        let result = self
            .deliver(&routed.via, &wx, claim.as_deref_mut(), deadline)
            .await;
        let errcode = match &result {
            Err(Failure::Refused(e)) => e.errcode(),
            _ => None,
        };
        if !plan.falls_back_on(req, errcode) {
            return Ok((plan, result));
        }
        let plan = self
            .fall_back(req, routed, plan, errcode.unwrap_or_default())
            .await?;
        if let Some(c) = claim.as_deref_mut() {
            c.fallback = plan.fallback;
        }
        let wx = WxMessage::build(plan.message, &routed.openid, id);
        let result = self.deliver(&routed.via, &wx, claim, deadline).await;
        Ok((plan, result))
    }

    /// The answer of a delivery, written on the record; what a message that never reached
    /// the user took is given back. An error: nothing was sent and nothing is recorded.
    async fn answer(
        &self,
        routed: &Routed,
        plan: &Plan<'_>,
        id: &str,
        result: Result<Option<i64>, Failure>,
        claim: Option<&ClaimState>,
        record: &mut Attrs,
    ) -> Result<SendOutcome, ApiError> {
        let appid = routed.app.as_str();
        let via = routed.via.appid.as_str();
        let mut outcome = match result {
            Ok(msgid) => sent_outcome(appid, id, via, plan.message, msgid, record),
            Err(Failure::Unknown(why)) => {
                // A template may be resent with its client_msg_id until WeChat forgets it:
                // until then the claim stays open to a retry (a batch puts the recipient
                // back), and the answer says until when.
                let dedupes = WxMessage::build(plan.message, &routed.openid, id).dedupes();
                let resend_until = claim
                    .filter(|_| dedupes)
                    .and_then(|c| c.attempted_at)
                    .map(|t| t + TEMPLATE_RESEND_WINDOW_SECS)
                    .filter(|&t| t > now_unix());
                unknown_outcome(appid, id, &why, resend_until, record)
            }
            Err(Failure::Refused(e)) => {
                let none_left = (e.errcode() == Some(43101))
                    .then(|| plan.message.template_id())
                    .flatten();
                let taken = match e.errcode() {
                    Some(45015 | 45047) => plan.taken_but_window(),
                    _ => plan.taken.clone(),
                };
                self.give_back(routed, &taken, none_left).await;
                refused_outcome(appid, id, via, &e, record)
            }
            Err(Failure::NotSent(err)) => {
                // Nothing went out: release the key so the caller's retry can send.
                self.give_back(routed, &plan.taken, None).await;
                if let Some(c) = claim {
                    self.release(c).await;
                }
                return Err(err);
            }
            Err(Failure::Superseded(err)) => {
                self.give_back(routed, &plan.taken, None).await;
                return Err(err);
            }
        };
        if plan.fallback.is_some() && outcome.body.get("id").is_some() {
            outcome.body["sent_as"] = "fallback".into();
        }
        Ok(outcome)
    }
}

/// What the plan sent, on the message record: its template, and for a fallback what went
/// out instead of the custom message asked for, and why.
fn plan_on_record(plan: &Plan<'_>, record: &mut Attrs) {
    if let Some(t) = plan.message.template_id() {
        record.insert("template_id".into(), t.into());
    }
    if let Some(reason) = plan.fallback {
        record.insert("sent_as".into(), "fallback".into());
        record.insert("sent_type".into(), plan.message.kind.as_str().into());
        record.insert("fallback_reason".into(), reason.as_str().into());
    }
}
