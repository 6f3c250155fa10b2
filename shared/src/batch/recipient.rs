//! One recipient of a chunk: routed, paced, sent under its batch claim ([`send_one`]), and
//! what became of it ([`Done`]), also as its claim tells it when the chunk is settled.

use super::Batches;
use super::chunk::{Stop, classify};
use super::items::{DUPLICATE, FAILED, SENT, UNKNOWN};
use crate::app::AppConfig;
use crate::clock::now_unix;
use crate::send::service::{ClaimSpec, SendOutcome};
use crate::send::validate::{Recipient, parse_send_request};
use crate::store::{Attrs, ItemKey, ItemRead};
use http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Instant;
use tokio::sync::Mutex;

/// Everything a chunk's send tasks share.
pub(super) struct ChunkCtx {
    pub batches: Arc<Batches>,
    pub app: Arc<AppConfig>,
    pub batch_id: String,
    pub message: Map<String, Value>,
    /// What every recipient's claim is for: the message, whoever it goes to.
    pub message_hash: String,
    /// Until when recipients' claims are kept: as long as the batch.
    pub claims_expire_at: i64,
    pub caller: String,
    pub deadline: Instant,
    /// Per person of the chunk (the sending app's openid): held while one of its sends runs.
    pub turns: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl ChunkCtx {
    /// The turn of `person` in this chunk (made on first use).
    fn turn_of(&self, person: &str) -> Arc<Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns.entry(person.to_string()).or_default().clone()
    }
}

/// A recipient's outcome, as a chunk records it.
#[derive(Clone, Debug)]
pub(super) struct Done {
    pub outcome: u8,
    pub message_id: Option<String>,
    /// For `failed` and `unknown`: the error body (or the unknown answer).
    pub detail: Option<Value>,
}

impl Done {
    fn duplicate(message_id: Option<String>) -> Done {
        Done {
            outcome: DUPLICATE,
            message_id,
            detail: None,
        }
    }

    /// Held back before WeChat (`NO_GRANT`, `CAPPED`): nothing was sent.
    pub fn held(outcome: u8) -> Done {
        Done {
            outcome,
            message_id: None,
            detail: None,
        }
    }

    pub fn failed(detail: Value) -> Done {
        Done {
            outcome: FAILED,
            message_id: None,
            detail: Some(detail),
        }
    }

    /// An answer of the send path (also a replayed claim's).
    fn of(outcome: &SendOutcome) -> Done {
        let message_id = message_id_of(outcome);
        let (code, detail) = match outcome.status.as_u16() {
            200 => (SENT, None),
            202 => (UNKNOWN, Some(outcome.body.clone())),
            _ => (FAILED, Some(outcome.body.clone())),
        };
        Done {
            outcome: code,
            message_id,
            detail,
        }
    }

    /// What a recipient's claim says became of it: its recorded answer (`done`), or
    /// unknown when a send was under way (`attempting`). `None`: no send started.
    pub fn of_claim(claim: &Attrs) -> Option<Done> {
        match claim.text("state") {
            Some("done") => Some(Done::of(&SendOutcome {
                status: claim
                    .num("status")
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .unwrap_or(StatusCode::OK),
                body: claim
                    .text("response")
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or(Value::Null),
            })),
            Some("attempting") => Some(Done {
                outcome: UNKNOWN,
                message_id: claim.string("message_id"),
                detail: Some(
                    json!({"status": "unknown", "message": "a send was under way when the chunk stopped; it may have been delivered and is not sent again"}),
                ),
            }),
            _ => None,
        }
    }
}

/// One recipient: routed, paced, sent under its batch claim.
pub(super) async fn send_one(ctx: &ChunkCtx, recipient_key: &str) -> Result<Done, Stop> {
    let Some(recipient) = Recipient::from_key(recipient_key) else {
        return Ok(Done::failed(
            super::invalid("recipient", "not a recipient of this batch").body(),
        ));
    };
    let mut body = ctx.message.clone();
    body.insert("to".into(), recipient.to_json());
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let req = match parse_send_request(&bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Done::failed(e.body())),
    };
    let batches = &ctx.batches;
    let routed = match batches.sender.route(&ctx.app, &req).await {
        Ok(r) => r,
        Err(e) => return classify(e, &batches.config),
    };
    // The pace belongs to the app whose quota the send uses (`uniform`: the linked account).
    let rate = routed.via.batch_rate.unwrap_or(batches.config.default_rate);
    match batches
        .pacer
        .acquire(&routed.via.appid, rate, ctx.deadline)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(Stop::Deadline),
        Err(e) => return Err(Stop::Retry(e.to_string())),
    }
    // One claim per person the batch reaches (the sending app's openid), whichever way the
    // recipient was listed: an openid and its unionid get one message.
    let person = format!("{}:{}", routed.via.appid, routed.openid);
    let claim = ClaimSpec {
        item: ItemKey::batch_claim(&ctx.app.appid, &ctx.batch_id, &person),
        label: recipient_key.to_string(),
        hash: ctx.message_hash.clone(),
        expires_at: ctx.claims_expire_at,
    };
    // One send at a time per person in this chunk: the second of an openid and its unionid
    // waits for the first (a send bounded by the deadline) and then replays its answer as a
    // duplicate, instead of finding the claim held and putting the whole chunk back. A claim
    // held by another worker (a stopped one's lease) still puts the chunk back.
    let turn = ctx.turn_of(&person);
    let _turn = turn.lock().await;
    let answer = batches
        .sender
        .send_claimed(
            &req,
            routed,
            claim,
            &ctx.caller,
            &[("batch_id", &ctx.batch_id)],
            ctx.deadline,
        )
        .await;
    match answer {
        Ok(c) if c.replay_of.as_deref().is_some_and(|l| l != recipient_key) => {
            Ok(Done::duplicate(message_id_of(&c.outcome)))
        }
        Ok(c) => match retry_until(&c.outcome) {
            // A template WeChat may or may not have taken: resent (deduped by its
            // client_msg_id) when the chunk runs again, while WeChat still remembers the id.
            Some(until) if until > now_unix() => Err(Stop::Retry(format!(
                "outcome unknown; resent with the same client_msg_id before {until}"
            ))),
            _ => Ok(Done::of(&c.outcome)),
        },
        Err(e) => classify(e, &batches.config),
    }
}

fn message_id_of(outcome: &SendOutcome) -> Option<String> {
    outcome
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Until when an `unknown` answer may be resent (a template's).
fn retry_until(outcome: &SendOutcome) -> Option<i64> {
    outcome.body.get("retry_until").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_keys_read_back() {
        assert_eq!(
            Recipient::from_key("u:abc"),
            Some(Recipient::UnionId("abc".into()))
        );
    }
}
