//! The claim of an `Idempotency-Key` (or of a batch recipient): taken before anything else,
//! leased until the invocation's deadline, moved to `attempting` just before the first
//! WeChat call, and given back when nothing reached WeChat. Every write is a
//! compare-and-swap on the claim's `version`.

use super::before::FallbackReason;
use super::deliver::Failure;
use super::outcome::SendOutcome;
use super::record::new_message_id;
use super::service::Sender;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, Recorded, attrs};
use http::StatusCode;
use serde_json::Value;
use std::time::Instant;
use tracing::{info, warn};

/// How long a finished Idempotency-Key answers with its first result.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long past the invocation's deadline an Idempotency-Key claim stays leased. Lambda
/// ends the invocation at its deadline, so after this nobody can still be working on it and
/// a retry may take the claim over.
pub const CLAIM_LEASE_MARGIN_SECS: i64 = 5;

/// An Idempotency-Key this invocation holds: the stored claim as it was last written.
#[derive(Clone, Debug)]
pub(super) struct ClaimState {
    pub(super) key: ItemKey,
    pub(super) idempotency_key: String,
    pub(super) message_id: String,
    hash: String,
    /// The claim item's `version`: every change is a compare-and-swap on it.
    pub(super) version: i64,
    pub(super) created_at: i64,
    /// Unix seconds until which nobody else may take the claim over.
    pub(super) lease_until: i64,
    /// An earlier holder may have reached WeChat with this message id (`attempting` state).
    pub(super) after_attempt: bool,
    /// Unix seconds of the first request to WeChat under this claim.
    pub(super) attempted_at: Option<i64>,
    /// Why a custom message's fallback is what goes out under this claim (stored with the
    /// attempt, so a takeover resends the fallback and never the custom message).
    pub(super) fallback: Option<FallbackReason>,
    /// Unix seconds after which the store may delete the claim (its `ttl`): a day for an
    /// Idempotency-Key, the batch's life for a batch recipient's claim.
    expires_at: i64,
}

impl ClaimState {
    /// The claim item in `state` at `version`, with `extra` attributes (the final answer).
    fn item(&self, state: &str, version: i64, extra: &[(&str, Attr)]) -> Attrs {
        let mut a = attrs([
            ("hash", self.hash.as_str().into()),
            ("state", state.into()),
            ("message_id", self.message_id.as_str().into()),
            ("version", Attr::N(version)),
            ("lease_until", Attr::N(self.lease_until)),
            ("created_at", Attr::N(self.created_at)),
            ("label", self.idempotency_key.as_str().into()),
            ("ttl", Attr::N(self.expires_at)),
        ]);
        if let Some(t) = self.attempted_at {
            a.insert("attempted_at".into(), Attr::N(t));
        }
        if let Some(f) = self.fallback {
            a.insert("fallback".into(), f.as_str().into());
        }
        for (k, v) in extra {
            a.insert(k.to_string(), v.clone());
        }
        a
    }

    /// Compare-and-swap to `state`: written only while the claim is still ours.
    pub(super) fn op(&self, state: &str, extra: &[(&str, Attr)]) -> Op {
        Op::PutIfVersion {
            key: self.key.clone(),
            attrs: self.item(state, self.version + 1, extra),
            expected: Some(self.version),
        }
    }
}

/// What [`Sender::claim`] got.
pub(super) enum Claim {
    /// A finished claim's answer, and the label of the request that took the claim.
    Replay(SendOutcome, String),
    Claimed(ClaimState),
}

/// The claim a [`Sender::send_claimed`] sends under.
#[derive(Clone, Debug)]
pub struct ClaimSpec {
    pub item: ItemKey,
    /// Names the claim in logs and errors; stored on it.
    pub label: String,
    /// What the claim is for: another `hash` under the same item is a conflict.
    pub hash: String,
    /// Unix seconds until which the claim is kept.
    pub expires_at: i64,
}

/// What [`Sender::send_claimed`] answers.
#[derive(Clone, Debug)]
pub struct ClaimedOutcome {
    pub outcome: SendOutcome,
    /// For a replayed claim: the label that first took it (another recipient of a batch
    /// that resolved to the same person, or a redelivery of this one).
    pub replay_of: Option<String>,
}

/// The message a claim is (re)written for: a fresh one, or the one of a claim found in the
/// way that may be taken (released with the same body, or its holder's lease over).
struct Candidate {
    message_id: String,
    /// An earlier holder may have reached WeChat with `message_id`.
    after_attempt: bool,
    attempted_at: Option<i64>,
    fallback: Option<FallbackReason>,
}

impl Candidate {
    fn fresh() -> Candidate {
        Candidate {
            message_id: new_message_id(),
            after_attempt: false,
            attempted_at: None,
            fallback: None,
        }
    }
}

/// What the claim item found in the way of a claim says to do.
enum Found {
    /// A finished claim: its answer, and the label of the request that took it.
    Replay(SendOutcome, String),
    /// Claimable: try again with this candidate.
    Claimable(Candidate),
}

pub(super) fn in_progress(key: &str, message_id: &str) -> ApiError {
    ApiError::WeChat {
        code: "in_progress",
        status: StatusCode::CONFLICT,
        message: format!(
            "a request with Idempotency-Key {key} is still being processed (message {message_id}); retry later"
        ),
        errcode: None,
    }
}

/// Unix seconds until which a claim taken now is leased: the invocation's `deadline` (an
/// `Instant`, as other instances cannot read it) plus [`CLAIM_LEASE_MARGIN_SECS`].
pub(super) fn lease_until(deadline: Instant) -> i64 {
    now_unix()
        + deadline.saturating_duration_since(Instant::now()).as_secs() as i64
        + 1
        + CLAIM_LEASE_MARGIN_SECS
}

/// The claim item `existing`, found where `key` was to be claimed for the body `hash`:
/// expired (DynamoDB deletes by TTL lazily) counts as absent, and released too, keeping its
/// message id for the same body; a `done` one replays; another body is a conflict; a live
/// lease is `in_progress`; a lease that ran out is taken over, keeping its message id and
/// knowing whether its holder may have reached WeChat.
fn judge_existing(existing: &Attrs, key: &str, hash: &str, now: i64) -> Result<Found, ApiError> {
    let their_id = existing.string("message_id").unwrap_or_default();
    let same_body = existing.text("hash") == Some(hash);
    let state = existing.text("state").unwrap_or_default();
    if existing.num("ttl").is_some_and(|t| t < now) {
        return Ok(Found::Claimable(Candidate::fresh()));
    }
    if state == "released" {
        return Ok(Found::Claimable(if same_body {
            Candidate {
                message_id: their_id,
                ..Candidate::fresh()
            }
        } else {
            Candidate::fresh()
        }));
    }
    if !same_body {
        return Err(ApiError::WeChat {
            code: "idempotency_key_reused",
            status: StatusCode::CONFLICT,
            message: format!("Idempotency-Key {key} was used with a different request body"),
            errcode: None,
        });
    }
    match (state, existing.num("status"), existing.text("response")) {
        ("done", Some(status), Some(response)) => Ok(Found::Replay(
            SendOutcome {
                status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                body: serde_json::from_str(response).unwrap_or(Value::Null),
            },
            existing.string("label").unwrap_or_else(|| key.to_string()),
        )),
        _ if existing.num("lease_until").unwrap_or(i64::MAX) >= now => {
            Err(in_progress(key, &their_id))
        }
        (state, _, _) => {
            // The holder's invocation is over: take its claim over.
            let after_attempt = state != "in_progress";
            Ok(Found::Claimable(Candidate {
                message_id: their_id,
                after_attempt,
                // A claim from before `attempted_at` was kept: its creation bounds it.
                attempted_at: after_attempt.then(|| {
                    existing
                        .num("attempted_at")
                        .unwrap_or_else(|| existing.num("created_at").unwrap_or(0))
                }),
                fallback: existing.text("fallback").and_then(FallbackReason::parse),
            }))
        }
    }
}

impl Sender {
    /// Claims `key` for this request, leased until `lease_until`. An absent, expired or
    /// released key is claimed afresh; a `done` one replays its answer; one whose holder's
    /// lease ran out is taken over (keeping its message id, and knowing whether that holder
    /// may have reached WeChat). Every write is a compare-and-swap on the claim's version, so
    /// of two retries racing for one key exactly one wins.
    pub(super) async fn claim(
        &self,
        appid: &str,
        key: &str,
        item: ItemKey,
        hash: String,
        lease_until: i64,
        expires_at: i64,
    ) -> Result<Claim, ApiError> {
        // What the next write expects to find: absent (None) or this version.
        let mut expected: Option<i64> = None;
        let mut candidate = Candidate::fresh();
        for _ in 0..4 {
            let now = now_unix();
            let claim = ClaimState {
                key: item.clone(),
                idempotency_key: key.to_string(),
                message_id: candidate.message_id.clone(),
                hash: hash.clone(),
                version: expected.unwrap_or(0) + 1,
                created_at: now,
                lease_until,
                after_attempt: candidate.after_attempt,
                attempted_at: candidate.attempted_at,
                fallback: candidate.fallback,
                expires_at,
            };
            let state = if claim.after_attempt {
                "attempting"
            } else {
                "in_progress"
            };
            let op = Op::PutIfVersion {
                key: item.clone(),
                attrs: claim.item(state, claim.version, &[]),
                expected,
            };
            if self.store.record(&[op], now).await? == Recorded::New {
                if expected.is_some() {
                    let (message_id, after_attempt) = (&claim.message_id, claim.after_attempt);
                    info!(
                        appid,
                        key, message_id, after_attempt, "Idempotency-Key taken over"
                    );
                }
                return Ok(Claim::Claimed(claim));
            }
            let Some(existing) = self.store.get(&item).await? else {
                expected = None;
                continue;
            };
            expected = Some(existing.num("version").unwrap_or(0));
            candidate = match judge_existing(&existing, key, &hash, now)? {
                Found::Replay(outcome, label) => return Ok(Claim::Replay(outcome, label)),
                Found::Claimable(c) => c,
            };
        }
        Err(in_progress(key, &candidate.message_id))
    }

    /// `in_progress` → `attempting`, just before the first request to WeChat: from here on a
    /// takeover must assume the message may have gone out. Fails (nothing sent) when another
    /// invocation took the claim over or the store cannot confirm the claim is still ours.
    pub(super) async fn mark_attempting(&self, claim: &mut ClaimState) -> Result<(), Failure> {
        claim.attempted_at = Some(now_unix());
        let op = claim.op("attempting", &[]);
        match self.store.record(&[op], now_unix()).await {
            Ok(Recorded::New) => {
                claim.version += 1;
                Ok(())
            }
            Ok(_) => Err(Failure::Superseded(in_progress(
                &claim.idempotency_key,
                &claim.message_id,
            ))),
            Err(e) => {
                // The write may have committed with its answer lost: the claim says.
                match self.store.get(&claim.key).await {
                    Ok(Some(now_stored))
                        if now_stored.num("version") == Some(claim.version + 1)
                            && now_stored.text("state") == Some("attempting")
                            && now_stored.num("lease_until") == Some(claim.lease_until)
                            && now_stored.num("created_at") == Some(claim.created_at) =>
                    {
                        claim.version += 1;
                        Ok(())
                    }
                    Ok(Some(now_stored)) if now_stored.num("version") == Some(claim.version) => {
                        Err(Failure::NotSent(e.into()))
                    }
                    Ok(_) => Err(Failure::Superseded(in_progress(
                        &claim.idempotency_key,
                        &claim.message_id,
                    ))),
                    Err(_) => Err(Failure::NotSent(e.into())),
                }
            }
        }
    }

    /// Gives a claim back after nothing reached WeChat, so the caller's retry can send: the
    /// holder's own attempts, if any, were all refused outright. A claim taken over from an
    /// `attempting` holder is never given back, whatever fails after the takeover (routing,
    /// the token, WeChat): that holder may have been delivered, and a free key would be sent
    /// again.
    pub(super) async fn release(&self, claim: &ClaimState) {
        if claim.after_attempt {
            warn!(key = %claim.idempotency_key, "not releasing a claim that may have reached WeChat");
            return;
        }
        for _ in 0..2 {
            match self
                .store
                .record(&[claim.op("released", &[])], now_unix())
                .await
            {
                Ok(Recorded::New) => return,
                Ok(_) => {
                    warn!(key = %claim.idempotency_key, "Idempotency-Key changed since it was claimed; not released");
                    return;
                }
                Err(e) => {
                    warn!(key = %claim.idempotency_key, error = %e, "could not release an Idempotency-Key; it frees itself when its lease ends")
                }
            }
        }
    }
}
