//! [`Sender`]: one API send, start to finish — validate, resolve the recipient, claim the
//! Idempotency-Key, call WeChat with the retry rules of the contract, record the message.

use super::validate::{
    MINI_PROGRAM_CUSTOM_MSGTYPES, MessageKind, Payload, Recipient, SendRequest, check_recipient,
    parse_send_request,
};
use crate::app::{AppConfig, AppKind};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, Attrs, ItemKey, Op, Recorded, StateStore, attrs};
use crate::templates::{TemplateKind, Templates, check_data_keys};
use crate::token::{TokenError, TokenManager};
use crate::wechat::{
    BizSubscribeMessage, CustomBody, CustomMessage, ErrorClass, SubscribeMessage, TemplateMessage,
    WeChatCallError,
};
use http::StatusCode;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// Attempts at WeChat per send at most (the first included).
pub const MAX_ATTEMPTS: u32 = 4;
/// How long a finished Idempotency-Key answers with its first result.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long message records are kept.
pub const MESSAGE_TTL_SECS: i64 = 30 * 86_400;
/// Time kept free at the end of the budget for recording the outcome.
const RESERVE: Duration = Duration::from_millis(1500);
/// How long past the invocation's deadline an Idempotency-Key claim stays leased. Lambda
/// ends the invocation at its deadline, so after this nobody can still be working on it and
/// a retry may take the claim over.
pub const CLAIM_LEASE_MARGIN_SECS: i64 = 5;
/// How long after a first attempt a template message may still be resent with the same
/// `client_msg_id`. WeChat's dedupe window is not documented (facts.md: "unverified"; reported
/// as 10 minutes): later than this, a takeover answers `unknown` instead of resending.
pub const TEMPLATE_RESEND_WINDOW_SECS: i64 = 540;

/// The HTTP answer of a send (success, or a refusal worth replaying).
#[derive(Clone, Debug, PartialEq)]
pub struct SendOutcome {
    pub status: StatusCode,
    pub body: Value,
}

pub struct Sender {
    tokens: Arc<TokenManager>,
    /// The apps' template listings, to check `data` keys before WeChat is called.
    templates: Arc<Templates>,
    store: Arc<dyn StateStore>,
    /// Per-attempt WeChat timeout, to know whether another attempt fits in the budget.
    attempt_timeout: Duration,
}

/// The message as WeChat gets it, for the app that sends it.
enum WxMessage {
    Template(TemplateMessage),
    Subscribe(SubscribeMessage),
    BizSubscribe(BizSubscribeMessage),
    Custom(CustomMessage),
}

/// How delivery ended when it did not succeed.
enum Failure {
    /// WeChat refused the message for good (recorded `failed`).
    Refused(WeChatCallError),
    /// Nothing was delivered and a later try may work (token, quota, WeChat down).
    NotSent(ApiError),
    /// A request went out but its answer did not come back, or did not say that nothing was
    /// done: it may have been delivered. Never resent except where WeChat dedupes.
    Unknown(String),
    /// Another invocation took the Idempotency-Key over (this one outlived its lease):
    /// nothing was sent here and nothing is recorded.
    Superseded(ApiError),
}

/// An Idempotency-Key this invocation holds: the stored claim as it was last written.
#[derive(Clone, Debug)]
struct ClaimState {
    key: ItemKey,
    idempotency_key: String,
    message_id: String,
    hash: String,
    /// The claim item's `version`: every change is a compare-and-swap on it.
    version: i64,
    created_at: i64,
    /// Unix seconds until which nobody else may take the claim over.
    lease_until: i64,
    /// An earlier holder may have reached WeChat with this message id (`attempting` state).
    after_attempt: bool,
    /// Unix seconds of the first request to WeChat under this claim.
    attempted_at: Option<i64>,
    /// Unix seconds after which the store may delete the claim (its `ttl`): a day for an
    /// Idempotency-Key, the batch's life for a batch recipient's claim.
    expires_at: i64,
}

impl ClaimState {
    /// The claim item in `state` at `version`, with `extra` attributes (the final answer).
    fn item(&self, state: &str, version: i64, extra: &[(&str, Attr)]) -> Attrs {
        let mut a = attrs([
            ("hash", s(&self.hash)),
            ("state", s(state)),
            ("message_id", s(&self.message_id)),
            ("version", Attr::N(version)),
            ("lease_until", Attr::N(self.lease_until)),
            ("created_at", Attr::N(self.created_at)),
            ("label", s(&self.idempotency_key)),
            ("ttl", Attr::N(self.expires_at)),
        ]);
        if let Some(t) = self.attempted_at {
            a.insert("attempted_at".into(), Attr::N(t));
        }
        for (k, v) in extra {
            a.insert(k.to_string(), v.clone());
        }
        a
    }

    /// Compare-and-swap to `state`: written only while the claim is still ours.
    fn op(&self, state: &str, extra: &[(&str, Attr)]) -> Op {
        Op::PutIfVersion {
            key: self.key.clone(),
            attrs: self.item(state, self.version + 1, extra),
            expected: Some(self.version),
        }
    }
}

fn in_progress(key: &str, message_id: &str) -> ApiError {
    ApiError::WeChat {
        code: "in_progress",
        status: StatusCode::CONFLICT,
        message: format!(
            "a request with Idempotency-Key {key} is still being processed (message {message_id}); retry later"
        ),
        errcode: None,
    }
}

/// Unix seconds of `deadline` (an `Instant`), for leases other instances can read.
fn unix_of(deadline: Instant) -> i64 {
    now_unix() + deadline.saturating_duration_since(Instant::now()).as_secs() as i64 + 1
}

fn new_message_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}

fn s(v: &str) -> Attr {
    Attr::S(v.to_string())
}

fn text(a: &Attrs, k: &str) -> Option<String> {
    match a.get(k) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn num(a: &Attrs, k: &str) -> Option<i64> {
    match a.get(k) {
        Some(Attr::N(n)) => Some(*n),
        _ => None,
    }
}

/// WeChat refusals of a send, as the contract names them; anything else as for any call.
pub fn send_error(appid: &str, err: &WeChatCallError) -> ApiError {
    let mapped = match err.errcode() {
        Some(43101) => Some((
            "subscription_required",
            StatusCode::FORBIDDEN,
            "the user has no (remaining) subscription to this template",
        )),
        Some(43004) => Some((
            "not_following",
            StatusCode::FORBIDDEN,
            "the user does not follow the official account",
        )),
        Some(43019) => Some((
            "user_blocked",
            StatusCode::FORBIDDEN,
            "the user has blocked the account",
        )),
        Some(45015) => Some((
            "outside_service_window",
            StatusCode::FORBIDDEN,
            "customer-service messages need an interaction of the user within the last 48 hours",
        )),
        Some(45047) => Some((
            "reply_limit_reached",
            StatusCode::TOO_MANY_REQUESTS,
            "the customer-service reply quota for this interaction is used up",
        )),
        Some(40003) => Some((
            "invalid_recipient",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat does not know this openid in this app",
        )),
        Some(40037) => Some((
            "invalid_template",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat does not know this template_id",
        )),
        Some(47003) => Some((
            "invalid_data",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat refused the template data",
        )),
        Some(41030) => Some((
            "invalid_page",
            StatusCode::UNPROCESSABLE_ENTITY,
            "the page does not exist in the published mini program",
        )),
        Some(48001) => Some((
            "api_unauthorized",
            StatusCode::FORBIDDEN,
            "the app lacks the permission for this message type",
        )),
        _ => None,
    };
    match mapped {
        Some((code, status, why)) => ApiError::WeChat {
            code,
            status,
            message: format!("app {appid}: {why} ({err})"),
            errcode: err.errcode(),
        },
        None => ApiError::from_wechat(appid, err),
    }
}

impl Sender {
    pub fn new(
        tokens: Arc<TokenManager>,
        store: Arc<dyn StateStore>,
        attempt_timeout: Duration,
    ) -> Sender {
        let templates = Arc::new(Templates::new(tokens.clone(), store.clone()));
        Sender {
            tokens,
            templates,
            store,
            attempt_timeout,
        }
    }

    /// The template listings this sender checks against (`/v1/apps/{appid}/templates`).
    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    /// The token manager (and through it the app configuration) this sender uses.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// `POST /v1/apps/{appid}/messages`.
    ///
    /// With an `Idempotency-Key`, the key is claimed before anything else happens, leased
    /// until the invocation's `deadline` (plus [`CLAIM_LEASE_MARGIN_SECS`]), moved to
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
                let lease_until = unix_of(deadline) + CLAIM_LEASE_MARGIN_SECS;
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
        let lease_until = unix_of(deadline) + CLAIM_LEASE_MARGIN_SECS;
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
        let Routed {
            app: appid,
            via,
            openid,
            unionid,
        } = routed;
        let appid = appid.as_str();
        let id = claim
            .as_ref()
            .map(|c| c.message_id.clone())
            .unwrap_or_else(new_message_id);
        let record_key = ItemKey::message(appid, &id);
        let wx = build(req, &openid, &id);
        let dedupes = matches!(wx, WxMessage::Template(_));
        if let Some(c) = claim.as_ref().filter(|c| c.after_attempt) {
            // The earlier holder may have finished without writing the claim: its record
            // says, unless it is a template's `unknown` that may still be resent.
            if let Some((outcome, resend_until)) = self.recorded_outcome(&record_key).await?
                && !(dedupes && resend_until.is_some_and(|t| t > now_unix()))
            {
                self.write_outcome(None, Some(c), &outcome, deadline).await;
                return Ok(outcome);
            }
        }
        let result = self.deliver(&via, &wx, claim.as_mut(), deadline).await;
        let now = now_unix();
        let mut record = attrs([
            ("id", s(&id)),
            ("appid", s(appid)),
            ("via_appid", s(&via.appid)),
            ("type", s(req.kind.as_str())),
            ("openid", s(&openid)),
            ("requested_by", s(caller)),
            ("created_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]);
        if let Some(u) = &unionid {
            record.insert("unionid".into(), s(u));
        }
        for (k, v) in record_extra {
            record.insert(k.to_string(), s(v));
        }
        let mut outcome = match result {
            Ok(msgid) => sent_outcome(appid, &id, &via.appid, req, msgid, &mut record),
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
            Err(Failure::Refused(e)) => refused_outcome(appid, &id, &via.appid, &e, &mut record),
            Err(Failure::NotSent(err)) => {
                // Nothing went out: release the key so the caller's retry can send.
                if let Some(c) = &claim {
                    self.release(c).await;
                }
                return Err(err);
            }
            Err(Failure::Superseded(err)) => return Err(err),
        };
        record.insert(
            "answer_status".into(),
            Attr::N(outcome.status.as_u16() as i64),
        );
        record.insert("answer".into(), s(&outcome.body.to_string()));
        let recorded = self
            .write_outcome(
                Some((record_key, record)),
                claim.as_ref(),
                &outcome,
                deadline,
            )
            .await;
        if !recorded && claim.is_some() && !dedupes {
            // A retry with this key will take the `attempting` claim over and, finding no
            // record, answer `unknown` (this type cannot be resent): so does this answer.
            outcome = unrecorded_outcome(&id, &outcome);
        }
        Ok(outcome)
    }

    /// Writes the message record and the finished claim together, retrying a failing store
    /// until the claim's lease ends. A template's `unknown` that may still be resent leaves
    /// the claim `attempting` with its lease ended, so the next retry resends. When the store
    /// stays down the claim stays `attempting` and `false` is returned.
    async fn write_outcome(
        &self,
        record: Option<(ItemKey, Attrs)>,
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
            let mut ops = Vec::with_capacity(2);
            if let Some((key, attrs)) = &record {
                ops.push(Op::Set {
                    key: key.clone(),
                    attrs: attrs.clone(),
                });
            }
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
                            ("response", s(&outcome.body.to_string())),
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
        Ok(match (num(&rec, "answer_status"), text(&rec, "answer")) {
            (Some(status), Some(answer)) => Some((
                SendOutcome {
                    status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                    body: serde_json::from_str(&answer).unwrap_or(Value::Null),
                },
                num(&rec, "resend_until"),
            )),
            _ => None,
        })
    }

    /// Gives a claim back after nothing reached WeChat, so the caller's retry can send: the
    /// holder's own attempts, if any, were all refused outright. A claim taken over from an
    /// `attempting` holder is never given back, whatever fails after the takeover (routing,
    /// the token, WeChat): that holder may have been delivered, and a free key would be sent
    /// again.
    async fn release(&self, claim: &ClaimState) {
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
    /// `GET /v1/apps/{appid}/messages/{id}`, with the delivery status from TEMPLATESENDJOBFINISH.
    pub async fn message(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let rec = self
            .store
            .get(&ItemKey::message(appid, id))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} of app {appid}")))?;
        let mut status = text(&rec, "status").unwrap_or_default();
        let msgid = text(&rec, "wechat_msgid");
        let mut body = json!({
            "id": id,
            "type": text(&rec, "type"),
            "status": status,
            "to": {"openid": text(&rec, "openid"), "unionid": text(&rec, "unionid")},
            "sent_by": text(&rec, "via_appid"),
            "requested_by": text(&rec, "requested_by"),
            "wechat_msgid": msgid.as_ref().and_then(|m| m.parse::<i64>().ok()),
            "created_at": num(&rec, "created_at"),
        });
        if let Some(code) = num(&rec, "wechat_errcode") {
            body["wechat_errcode"] = json!(code);
        }
        if let (Some(msgid), Some(via)) = (msgid, text(&rec, "via_appid"))
            && let Some(d) = self.store.get(&ItemKey::delivery(&via, &msgid)).await?
        {
            status = text(&d, "state").unwrap_or(status);
            body["status"] = json!(status);
            body["delivery"] =
                json!({"status": text(&d, "status_raw"), "at": num(&d, "updated_at")});
        }
        Ok(body)
    }

    /// Where a message goes: the app whose token sends it and the recipient's openid there
    /// (a unionid looked up in the store). Reads nothing from WeChat.
    pub async fn route(&self, app: &Arc<AppConfig>, req: &SendRequest) -> Result<Routed, ApiError> {
        let via = self.check_request(app, req).await?;
        let (openid, unionid) = self.resolve(&via, req).await?;
        Ok(Routed {
            app: app.appid.clone(),
            via,
            openid,
            unionid,
        })
    }

    /// The app whose token sends `req`, with every check that needs the app: the message
    /// type against the app's kind, a customer-service msgtype against what that kind may
    /// send. Reads nothing from WeChat.
    pub async fn check_request(
        &self,
        app: &Arc<AppConfig>,
        req: &SendRequest,
    ) -> Result<Arc<AppConfig>, ApiError> {
        let via = self.sending_app(app, req.kind).await?;
        match &req.payload {
            Payload::Custom { body, .. } => check_custom_msgtype(&via, body)?,
            Payload::Template(t) => {
                self.check_keys(&via, &t.template_id, &t.data, false)
                    .await?
            }
            Payload::Subscribe(sm) => {
                self.check_keys(&via, &sm.template_id, &sm.data, true)
                    .await?
            }
            Payload::OaSubscribe(sm) => {
                self.check_keys(&via, &sm.template_id, &sm.data, true)
                    .await?
            }
        }
        Ok(via)
    }

    /// `data` against the template, when a cached listing of the sending app has it (no
    /// WeChat call; an unknown template is left to WeChat).
    async fn check_keys(
        &self,
        via: &AppConfig,
        template_id: &str,
        data: &std::collections::BTreeMap<String, crate::wechat::DataValue>,
        subscribe: bool,
    ) -> Result<(), ApiError> {
        if let Some(t) = self.templates.known(&via.appid, template_id).await
            && (t.kind != TemplateKind::Template) == subscribe
        {
            check_data_keys(&t, data)?;
        }
        Ok(())
    }

    /// The app whose token sends the message, checked against the message type.
    pub async fn sending_app(
        &self,
        app: &Arc<AppConfig>,
        kind: MessageKind,
    ) -> Result<Arc<AppConfig>, ApiError> {
        let wrong = |msg: &str| ApiError::Validation {
            field: "type".into(),
            message: format!("app {}: {msg}", app.appid),
        };
        match (kind, app.kind) {
            (MessageKind::Template, AppKind::OfficialAccount)
            | (MessageKind::Subscribe, AppKind::MiniProgram)
            | (MessageKind::OaSubscribe, AppKind::OfficialAccount)
            | (MessageKind::Custom, _) => Ok(app.clone()),
            (MessageKind::OaSubscribe, _) => Err(wrong(
                "\"oa_subscribe\" (订阅通知) is sent by an official account; a mini program sends \"subscribe\"",
            )),
            (MessageKind::Template, _) => Err(wrong(
                "template messages are sent by an official account; use \"uniform\" from a mini program",
            )),
            (MessageKind::Subscribe, _) => {
                Err(wrong("subscribe messages are sent by a mini program"))
            }
            // Sent by the official account it goes out through, on that account's route (IAM
            // scopes it there); the mini program's openid is only looked up.
            (MessageKind::Uniform, AppKind::OfficialAccount) => Ok(app.clone()),
            (MessageKind::Uniform, AppKind::MiniProgram) => Err(uniform_moved(app)),
        }
    }

    /// The unionid of a mini program user of a `uniform` message: `mp` must be a mini
    /// program linked to `via` (the official account it goes out through), so a caller of
    /// the official account's route reads no other app's users.
    async fn mini_program_unionid(
        &self,
        via: &AppConfig,
        mp: &str,
        openid: &str,
    ) -> Result<Option<String>, ApiError> {
        let linked = match self.tokens.secrets().app(mp).await {
            Ok(a) => {
                a.kind == AppKind::MiniProgram
                    && a.linked_official_account.as_deref() == Some(via.appid.as_str())
            }
            Err(crate::secrets::ConfigError::UnknownApp { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !linked {
            return Err(ApiError::Validation {
                field: "to.appid".into(),
                message: format!(
                    "app {mp} is not a mini program linked to {} (its linked_official_account)",
                    via.appid
                ),
            });
        }
        let account = self.store.get(&ItemKey::account(mp, openid)).await?;
        Ok(account.as_ref().and_then(|a| text(a, "unionid")))
    }

    /// (openid in the sending app, unionid if known).
    async fn resolve(
        &self,
        via: &AppConfig,
        req: &SendRequest,
    ) -> Result<(String, Option<String>), ApiError> {
        let unknown = |message: String| ApiError::WeChat {
            code: "unknown_recipient",
            status: StatusCode::NOT_FOUND,
            message,
            errcode: None,
        };
        check_recipient(req.kind, &req.to)?;
        let unionid = match &req.to {
            Recipient::OpenId(o) => return Ok((o.clone(), None)),
            Recipient::AppOpenId { appid: mp, openid } => {
                match self.mini_program_unionid(via, mp, openid).await? {
                    Some(u) => u,
                    None => {
                        return Err(unknown(format!(
                            "no unionid is known for openid {openid} of app {mp}"
                        )));
                    }
                }
            }
            Recipient::UnionId(u) => u.clone(),
        };
        let accounts = self.store.query(&ItemKey::union_pk(&unionid)).await?;
        if accounts.is_empty() {
            return Err(unknown(format!("unionid {unionid} is not known")));
        }
        let sk = format!("acct#{}", via.appid);
        accounts
            .iter()
            .find(|(k, _)| *k == sk)
            .and_then(|(_, a)| text(a, "openid"))
            .map(|openid| (openid, Some(unionid.clone())))
            .ok_or_else(|| {
                unknown(format!(
                    "unionid {unionid} has no account in app {}",
                    via.appid
                ))
            })
    }

    /// Calls WeChat with the contract's rules: a token error invalidates that token and retries
    /// once; -1 retries with jittered backoff while the budget allows; an attempt that may have
    /// been delivered (timeout, reset, HTTP 5xx, unreadable answer) is resent only where WeChat
    /// dedupes (template messages carry a `client_msg_id`) and otherwise ends `unknown`. Every
    /// way out after such an attempt is `unknown`, never "not sent".
    ///
    /// With a claim, the claim moves to `attempting` just before the first request leaves.
    async fn deliver(
        &self,
        via: &AppConfig,
        wx: &WxMessage,
        claim: Option<&mut ClaimState>,
        deadline: Instant,
    ) -> Result<Option<i64>, Failure> {
        let appid = via.appid.as_str();
        let dedupes = matches!(wx, WxMessage::Template(_));
        let mut maybe_sent = claim.as_ref().is_some_and(|c| c.after_attempt);
        if maybe_sent && !dedupes {
            return Err(Failure::Unknown(
                "an earlier attempt with this Idempotency-Key may have reached WeChat and this message type cannot be resent safely".into(),
            ));
        }
        if let Some(first) = claim
            .as_ref()
            .filter(|c| c.after_attempt)
            .and_then(|c| c.attempted_at)
            && now_unix() - first > TEMPLATE_RESEND_WINDOW_SECS
        {
            return Err(Failure::Unknown(format!(
                "an earlier attempt may have reached WeChat {} s ago, beyond the {TEMPLATE_RESEND_WINDOW_SECS} s in which its client_msg_id is relied on to dedupe",
                now_unix() - first
            )));
        }
        let token_error = |e: TokenError, maybe_sent: bool| {
            if maybe_sent {
                // An earlier attempt may have gone out: never release the key then.
                Failure::Unknown(format!(
                    "no token for a retry after an attempt that may have been delivered: {e}"
                ))
            } else {
                Failure::NotSent(e.into())
            }
        };
        let mut token = self
            .tokens
            .get(appid)
            .await
            .map_err(|e| token_error(e, maybe_sent))?;
        if let Some(c) = claim
            && !c.after_attempt
        {
            self.mark_attempting(c).await?;
        }
        let mut token_retried = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let wechat = self.tokens.wechat();
            let result = match wx {
                WxMessage::Template(m) => wechat
                    .send_template(token.token.expose(), m)
                    .await
                    .map(|r| r.msgid),
                WxMessage::Subscribe(m) => wechat
                    .send_subscribe(token.token.expose(), m)
                    .await
                    .map(|r| r.msgid),
                WxMessage::BizSubscribe(m) => wechat
                    .send_biz_subscribe(token.token.expose(), m)
                    .await
                    .map(|r| r.msgid),
                WxMessage::Custom(m) => wechat
                    .send_custom(token.token.expose(), m)
                    .await
                    .map(|_| None),
            };
            let err = match result {
                Ok(msgid) => return Ok(msgid),
                Err(e) => e,
            };
            let backoff = Duration::from_millis(100 * (1 << attempt.min(5)))
                + Duration::from_millis(rand::random_range(0..100));
            let another = attempt < MAX_ATTEMPTS
                && Instant::now() + backoff + self.attempt_timeout + RESERVE < deadline;
            if err.maybe_delivered() {
                maybe_sent = true;
                if dedupes && another {
                    warn!(appid, attempt, error = %err, "WeChat's answer is missing or unreadable; resending with the same client_msg_id");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                return Err(Failure::Unknown(err.to_string()));
            }
            match err.class() {
                ErrorClass::TokenInvalid if !token_retried && another => {
                    token_retried = true;
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = self
                        .tokens
                        .get(appid)
                        .await
                        .map_err(|e| token_error(e, maybe_sent))?;
                }
                ErrorClass::Retryable if another => {
                    warn!(appid, attempt, error = %err, "WeChat busy; retrying");
                    tokio::time::sleep(backoff).await;
                }
                _ if maybe_sent => {
                    return Err(Failure::Unknown(format!(
                        "{err}, after an attempt that may have been delivered"
                    )));
                }
                ErrorClass::Retryable | ErrorClass::Quota | ErrorClass::TokenInvalid => {
                    return Err(Failure::NotSent(send_error(appid, &err)));
                }
                _ => return Err(Failure::Refused(err)),
            }
        }
        // Unreachable in practice: every `continue` above needs `another`, which the last
        // attempt never has. Kept truthful all the same.
        Err(if maybe_sent {
            Failure::Unknown("retries ended after an attempt that may have been delivered".into())
        } else {
            Failure::NotSent(ApiError::WeChat {
                code: "wechat_unavailable",
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "app {appid}: WeChat did not accept the message in {MAX_ATTEMPTS} attempts"
                ),
                errcode: None,
            })
        })
    }

    /// `in_progress` → `attempting`, just before the first request to WeChat: from here on a
    /// takeover must assume the message may have gone out. Fails (nothing sent) when another
    /// invocation took the claim over or the store cannot confirm the claim is still ours.
    async fn mark_attempting(&self, claim: &mut ClaimState) -> Result<(), Failure> {
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
                        if num(&now_stored, "version") == Some(claim.version + 1)
                            && text(&now_stored, "state").as_deref() == Some("attempting")
                            && num(&now_stored, "lease_until") == Some(claim.lease_until)
                            && num(&now_stored, "created_at") == Some(claim.created_at) =>
                    {
                        claim.version += 1;
                        Ok(())
                    }
                    Ok(Some(now_stored)) if num(&now_stored, "version") == Some(claim.version) => {
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

    /// Claims `key` for this request, leased until `lease_until`. An absent, expired or
    /// released key is claimed afresh; a `done` one replays its answer; one whose holder's
    /// lease ran out is taken over (keeping its message id, and knowing whether that holder
    /// may have reached WeChat). Every write is a compare-and-swap on the claim's version, so
    /// of two retries racing for one key exactly one wins.
    async fn claim(
        &self,
        appid: &str,
        key: &str,
        item: ItemKey,
        hash: String,
        lease_until: i64,
        expires_at: i64,
    ) -> Result<Claim, ApiError> {
        let conflict = |code: &'static str, message: String| ApiError::WeChat {
            code,
            status: StatusCode::CONFLICT,
            message,
            errcode: None,
        };
        // What the next write expects to find: absent (None) or this version.
        let mut expected: Option<i64> = None;
        let mut message_id = new_message_id();
        let mut after_attempt = false;
        let mut attempted_at = None;
        for _ in 0..4 {
            let now = now_unix();
            let claim = ClaimState {
                key: item.clone(),
                idempotency_key: key.to_string(),
                message_id: message_id.clone(),
                hash: hash.clone(),
                version: expected.unwrap_or(0) + 1,
                created_at: now,
                lease_until,
                after_attempt,
                attempted_at,
                expires_at,
            };
            let state = if after_attempt {
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
            let their_id = text(&existing, "message_id").unwrap_or_default();
            let same_body = text(&existing, "hash").as_deref() == Some(hash.as_str());
            let state = text(&existing, "state").unwrap_or_default();
            expected = Some(num(&existing, "version").unwrap_or(0));
            // An expired key (DynamoDB deletes by TTL lazily) counts as absent; a released one
            // too, keeping its message id for the same body.
            if num(&existing, "ttl").is_some_and(|t| t < now) {
                message_id = new_message_id();
                after_attempt = false;
                attempted_at = None;
                continue;
            }
            if state == "released" {
                message_id = if same_body {
                    their_id
                } else {
                    new_message_id()
                };
                after_attempt = false;
                attempted_at = None;
                continue;
            }
            if !same_body {
                return Err(conflict(
                    "idempotency_key_reused",
                    format!("Idempotency-Key {key} was used with a different request body"),
                ));
            }
            match (
                state.as_str(),
                num(&existing, "status"),
                text(&existing, "response"),
            ) {
                ("done", Some(status), Some(response)) => {
                    return Ok(Claim::Replay(
                        SendOutcome {
                            status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                            body: serde_json::from_str(&response).unwrap_or(Value::Null),
                        },
                        text(&existing, "label").unwrap_or_else(|| key.to_string()),
                    ));
                }
                _ if num(&existing, "lease_until").unwrap_or(i64::MAX) >= now => {
                    return Err(in_progress(key, &their_id));
                }
                (state, _, _) => {
                    // The holder's invocation is over: take its claim over.
                    message_id = their_id;
                    after_attempt = state != "in_progress";
                    // A claim from before `attempted_at` was kept: its creation bounds it.
                    attempted_at = after_attempt.then(|| {
                        num(&existing, "attempted_at")
                            .unwrap_or_else(|| num(&existing, "created_at").unwrap_or(0))
                    });
                }
            }
        }
        Err(in_progress(key, &message_id))
    }
}

enum Claim {
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

/// `200 sent`, with the record's status.
fn sent_outcome(
    appid: &str,
    id: &str,
    via: &str,
    req: &SendRequest,
    msgid: Option<i64>,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), s("sent"));
    if let Some(m) = msgid {
        record.insert("wechat_msgid".into(), s(&m.to_string()));
    }
    info!(appid, id, via, kind = req.kind.as_str(), "message sent");
    crate::metrics::count("Sends", 1.0, &[("Outcome", "sent")]);
    SendOutcome {
        status: StatusCode::OK,
        body: json!({"id": id, "status": "sent", "wechat_msgid": msgid}),
    }
}

/// `202 unknown`: WeChat may have delivered it. `resend_until`: a template that a retry
/// with the same key (or the batch) resends, deduped by its client_msg_id, until then.
fn unknown_outcome(
    appid: &str,
    id: &str,
    why: &str,
    resend_until: Option<i64>,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), s("unknown"));
    record.insert("error".into(), s(why));
    crate::metrics::count("Sends", 1.0, &[("Outcome", "unknown")]);
    let body = match resend_until {
        Some(until) => {
            record.insert("resend_until".into(), Attr::N(until));
            warn!(appid, id, error = %why, until, "send outcome unknown; a retry resends with the same client_msg_id");
            json!({"id": id, "status": "unknown", "retry_until": until,
                "message": "WeChat did not confirm the message; a retry with the same Idempotency-Key before retry_until resends it, and WeChat delivers it at most once"})
        }
        None => {
            warn!(appid, id, error = %why, "send outcome unknown; not resent");
            json!({"id": id, "status": "unknown",
                "message": "WeChat did not confirm the message; it may have been delivered and is not sent again"})
        }
    };
    SendOutcome {
        status: StatusCode::ACCEPTED,
        body,
    }
}

/// WeChat refused the message (recorded `failed`).
fn refused_outcome(
    appid: &str,
    id: &str,
    via: &str,
    e: &WeChatCallError,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), s("failed"));
    if let Some(code) = e.errcode() {
        record.insert("wechat_errcode".into(), Attr::N(code));
        crate::metrics::count(
            "SendWeChatErrors",
            1.0,
            &[("Errcode", code.to_string().as_str())],
        );
    }
    record.insert("error".into(), s(&e.to_string()));
    let err = send_error(via, e);
    if e.class() == ErrorClass::UserRefused {
        crate::metrics::count("Sends", 1.0, &[("Outcome", "refused")]);
        info!(appid, id, errcode = ?e.errcode(), "message refused by the user's state");
    } else {
        crate::metrics::count("Sends", 1.0, &[("Outcome", "failed")]);
        warn!(appid, id, errcode = ?e.errcode(), error = %e, "message refused by WeChat");
    }
    SendOutcome {
        status: err.status(),
        body: err.body(),
    }
}

/// The answer of a send whose outcome could not be recorded: what a retry will hear.
fn unrecorded_outcome(id: &str, what_wechat_said: &SendOutcome) -> SendOutcome {
    SendOutcome {
        status: StatusCode::ACCEPTED,
        body: json!({"id": id, "status": "unknown",
            "wechat_answer": what_wechat_said.body,
            "message": "WeChat answered, but wxpush could not record the outcome; the message is not sent again, and a retry with this Idempotency-Key answers unknown too"}),
    }
}

/// A message's route: see [`Sender::route`].
#[derive(Clone, Debug)]
pub struct Routed {
    /// The app the message was asked of.
    pub app: String,
    /// The app whose token sends it (the linked official account for `uniform`).
    pub via: Arc<AppConfig>,
    pub openid: String,
    pub unionid: Option<String>,
}

/// A mini program sends text, image, link and miniprogrampage customer-service messages; an
/// official account every other msgtype but link (facts.md §4.4).
fn check_custom_msgtype(app: &AppConfig, body: &CustomBody) -> Result<(), ApiError> {
    let msgtype = body.msgtype();
    let mini = MINI_PROGRAM_CUSTOM_MSGTYPES.contains(&msgtype);
    let ok = match app.kind {
        AppKind::MiniProgram => mini,
        AppKind::OfficialAccount => msgtype != "link",
    };
    if let (AppKind::OfficialAccount, CustomBody::Miniprogrampage { miniprogrampage }) =
        (app.kind, body)
        && miniprogrampage.appid.is_none()
    {
        return Err(ApiError::Validation {
            field: "miniprogrampage.appid".into(),
            message: format!(
                "app {}: an official account names the mini program the page belongs to",
                app.appid
            ),
        });
    }
    if ok {
        return Ok(());
    }
    let (who, allowed) = match app.kind {
        AppKind::MiniProgram => ("a mini program", MINI_PROGRAM_CUSTOM_MSGTYPES.join(", ")),
        AppKind::OfficialAccount => ("an official account", "every msgtype but link".to_string()),
    };
    Err(ApiError::Validation {
        field: "msgtype".into(),
        message: format!(
            "app {}: {who} cannot send {msgtype} customer-service messages ({allowed})",
            app.appid
        ),
    })
}

/// An `Idempotency-Key` as the API takes them (messages and batches): 1-128 printable ASCII
/// characters without spaces.
/// A `uniform` posted to a mini program's route would go out through another app (its
/// linked official account), past a policy scoped to the mini program: refused, naming the
/// form that is posted to the official account's route.
fn uniform_moved(mp: &AppConfig) -> ApiError {
    let oa = mp
        .linked_official_account
        .as_deref()
        .unwrap_or("{linked official account}");
    ApiError::Validation {
        field: "type".into(),
        message: format!(
            "app {mp_id}: \"uniform\" goes out through the official account, so it is posted to that account's route: POST /v1/apps/{oa}/messages with \"to\": {{\"openid\": \"<mini program openid>\", \"appid\": \"{mp_id}\"}} (or {{\"unionid\": ...}})",
            mp_id = mp.appid
        ),
    }
}

pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Validation {
            field: "Idempotency-Key".into(),
            message: "must be 1-128 printable ASCII characters without spaces".into(),
        });
    }
    Ok(())
}

/// The claim item of `key` sent by `caller`: a key belongs to its caller's principal, so the
/// same key from another service is another request — but the same service's retry from
/// another instance or after a credential refresh is the same request (see [`principal`]).
pub fn claim_key(appid: &str, caller: &str, key: &str) -> ItemKey {
    ItemKey::idempotency(
        appid,
        &format!("{}#{key}", &body_hash(principal(caller).as_bytes())[..16]),
    )
}

/// The stable principal of a caller ARN: an assumed role's session name (an instance or
/// task id, a timestamp, anything the caller's SDK chose) is dropped, so
/// `arn:aws:sts::1:assumed-role/order-service/i-1` and `.../order-service/i-2` are one
/// principal; every other ARN is its own.
pub fn principal(caller: &str) -> &str {
    match caller.split_once(":assumed-role/") {
        Some((_, rest)) => match rest.find('/') {
            Some(slash) => &caller[..caller.len() - rest.len() + slash],
            None => caller,
        },
        None => caller,
    }
}

pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha1::digest(body))
}

/// The WeChat body; a template message carries a `client_msg_id` derived from our message id
/// (or the caller's), which is what makes resending it after a lost answer safe.
fn build(req: &SendRequest, openid: &str, id: &str) -> WxMessage {
    match &req.payload {
        Payload::Template(t) => WxMessage::Template(TemplateMessage {
            touser: openid.to_string(),
            template_id: t.template_id.clone(),
            url: t.url.clone(),
            miniprogram: t.miniprogram.clone(),
            client_msg_id: Some(
                t.client_msg_id
                    .clone()
                    .unwrap_or_else(|| format!("wxp-{id}")),
            ),
            data: t.data.clone(),
        }),
        Payload::Subscribe(sm) => WxMessage::Subscribe(SubscribeMessage {
            touser: openid.to_string(),
            template_id: sm.template_id.clone(),
            page: sm.page.clone(),
            miniprogram_state: sm.miniprogram_state.clone(),
            lang: sm.lang.clone(),
            data: sm.data.clone(),
        }),
        Payload::OaSubscribe(sm) => WxMessage::BizSubscribe(BizSubscribeMessage {
            touser: openid.to_string(),
            template_id: sm.template_id.clone(),
            page: sm.page.clone(),
            miniprogram: sm.miniprogram.clone(),
            data: sm.data.clone(),
        }),
        Payload::Custom {
            body,
            customservice,
        } => WxMessage::Custom(CustomMessage {
            touser: openid.to_string(),
            body: body.clone(),
            customservice: customservice.clone(),
        }),
    }
}

#[cfg(test)]
mod principal_tests {
    use super::principal;

    #[test]
    fn sessions_of_one_role_are_one_principal() {
        let a = "arn:aws-cn:sts::123456789012:assumed-role/order-service/i-0abc";
        let b = "arn:aws-cn:sts::123456789012:assumed-role/order-service/1732550000";
        assert_eq!(
            principal(a),
            "arn:aws-cn:sts::123456789012:assumed-role/order-service"
        );
        assert_eq!(principal(a), principal(b));
        let user = "arn:aws:iam::123456789012:user/ops";
        assert_eq!(principal(user), user);
        assert_eq!(principal("local:bearer-key"), "local:bearer-key");
        assert_ne!(
            principal("arn:aws:sts::1:assumed-role/billing/i-1"),
            principal("arn:aws:sts::1:assumed-role/order/i-1")
        );
    }
}
