//! [`Sender`]: one API send, start to finish — validate, resolve the recipient, claim the
//! Idempotency-Key, call WeChat with the retry rules of the contract, record the message.

use super::validate::{MessageKind, Payload, Recipient, SendRequest, parse_send_request};
use crate::app::{AppConfig, AppKind};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, Attrs, ItemKey, Op, Recorded, StateStore, attrs};
use crate::token::{TokenError, TokenManager};
use crate::wechat::{
    CustomMessage, ErrorClass, SubscribeMessage, TemplateMessage, WeChatCallError,
};
use http::StatusCode;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Attempts at WeChat per send at most (the first included).
pub const MAX_ATTEMPTS: u32 = 4;
/// How long a finished Idempotency-Key answers with its first result.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long message records are kept.
pub const MESSAGE_TTL_SECS: i64 = 30 * 86_400;
/// Time kept free at the end of the budget for recording the outcome.
const RESERVE: Duration = Duration::from_millis(1500);

/// The HTTP answer of a send (success, or a refusal worth replaying).
#[derive(Clone, Debug, PartialEq)]
pub struct SendOutcome {
    pub status: StatusCode,
    pub body: Value,
}

pub struct Sender {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    /// Per-attempt WeChat timeout, to know whether another attempt fits in the budget.
    attempt_timeout: Duration,
}

/// The message as WeChat gets it, for the app that sends it.
enum WxMessage {
    Template(TemplateMessage),
    Subscribe(SubscribeMessage),
    Custom(CustomMessage),
}

/// How delivery ended when it did not succeed.
enum Failure {
    /// WeChat refused the message for good (recorded `failed`).
    Refused(WeChatCallError),
    /// Nothing was delivered and a later try may work (token, quota, WeChat down).
    NotSent(ApiError),
    /// The request went out but its answer did not come back: it may have been delivered.
    Unknown(WeChatCallError),
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

fn store_error(e: crate::token::StoreError) -> ApiError {
    ApiError::StoreUnavailable(e.to_string())
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
        Sender {
            tokens,
            store,
            attempt_timeout,
        }
    }

    /// `POST /v1/apps/{appid}/messages`.
    pub async fn send(
        &self,
        appid: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
        deadline: Instant,
    ) -> Result<SendOutcome, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        let req = parse_send_request(body)?;
        let via = self.sending_app(&app, req.kind).await?;
        let (openid, unionid) = self.resolve(&app, &via, &req).await?;
        let claim = match idempotency_key {
            None => None,
            Some(key) => match self.claim(appid, key, body).await? {
                Claim::Replay(outcome) => return Ok(outcome),
                Claim::Claimed(key) => Some(key),
            },
        };
        let id = claim
            .as_ref()
            .map(|c| c.1.clone())
            .unwrap_or_else(new_message_id);
        let wx = build(&req, &openid, &id);
        let result = self.deliver(&via, &wx, deadline).await;
        let now = now_unix();
        let mut record = attrs([
            ("id", s(&id)),
            ("appid", s(appid)),
            ("via_appid", s(&via.appid)),
            ("type", s(req.kind.as_str())),
            ("openid", s(&openid)),
            ("created_at", Attr::N(now)),
            ("ttl", Attr::N(now + MESSAGE_TTL_SECS)),
        ]);
        if let Some(u) = &unionid {
            record.insert("unionid".into(), s(u));
        }
        let (outcome, keep_claim) = match result {
            Ok(msgid) => {
                record.insert("status".into(), s("sent"));
                if let Some(m) = msgid {
                    record.insert("wechat_msgid".into(), s(&m.to_string()));
                }
                info!(appid, id, via = %via.appid, kind = req.kind.as_str(), "message sent");
                (
                    SendOutcome {
                        status: StatusCode::OK,
                        body: json!({"id": id, "status": "sent", "wechat_msgid": msgid}),
                    },
                    true,
                )
            }
            Err(Failure::Unknown(e)) => {
                record.insert("status".into(), s("unknown"));
                record.insert("error".into(), s(&e.to_string()));
                warn!(appid, id, error = %e, "send outcome unknown; not resent");
                let body = json!({"id": id, "status": "unknown",
                    "message": "WeChat did not answer in time; the message may have been delivered and is not sent again"});
                (
                    SendOutcome {
                        status: StatusCode::ACCEPTED,
                        body,
                    },
                    true,
                )
            }
            Err(Failure::Refused(e)) => {
                record.insert("status".into(), s("failed"));
                if let Some(code) = e.errcode() {
                    record.insert("wechat_errcode".into(), Attr::N(code));
                }
                record.insert("error".into(), s(&e.to_string()));
                let err = send_error(&via.appid, &e);
                if e.class() == ErrorClass::UserRefused {
                    info!(appid, id, errcode = ?e.errcode(), "message refused by the user's state");
                } else {
                    warn!(appid, id, errcode = ?e.errcode(), error = %e, "message refused by WeChat");
                }
                (
                    SendOutcome {
                        status: err.status(),
                        body: err.body(),
                    },
                    true,
                )
            }
            Err(Failure::NotSent(err)) => {
                // Nothing went out: release the key so the caller's retry can send.
                if let Some((key, _)) = &claim {
                    let _ = self
                        .store
                        .record(&[Op::Delete { key: key.clone() }], now)
                        .await;
                }
                return Err(err);
            }
        };
        self.store
            .record(
                &[Op::Set {
                    key: ItemKey::message(appid, &id),
                    attrs: record,
                }],
                now,
            )
            .await
            .map_err(store_error)?;
        if let (Some((key, _)), true) = (&claim, keep_claim) {
            self.finish_claim(key, body, &outcome, &id, now).await?;
        }
        Ok(outcome)
    }

    /// `GET /v1/apps/{appid}/messages/{id}`, with the delivery status from TEMPLATESENDJOBFINISH.
    pub async fn message(&self, appid: &str, id: &str) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let rec = self
            .store
            .get(&ItemKey::message(appid, id))
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} of app {appid}")))?;
        let mut status = text(&rec, "status").unwrap_or_default();
        let msgid = text(&rec, "wechat_msgid");
        let mut body = json!({
            "id": id,
            "type": text(&rec, "type"),
            "status": status,
            "to": {"openid": text(&rec, "openid"), "unionid": text(&rec, "unionid")},
            "sent_by": text(&rec, "via_appid"),
            "wechat_msgid": msgid.as_ref().and_then(|m| m.parse::<i64>().ok()),
            "created_at": num(&rec, "created_at"),
        });
        if let Some(code) = num(&rec, "wechat_errcode") {
            body["wechat_errcode"] = json!(code);
        }
        if let (Some(msgid), Some(via)) = (msgid, text(&rec, "via_appid"))
            && let Some(d) = self
                .store
                .get(&ItemKey::delivery(&via, &msgid))
                .await
                .map_err(store_error)?
        {
            status = text(&d, "state").unwrap_or(status);
            body["status"] = json!(status);
            body["delivery"] =
                json!({"status": text(&d, "status_raw"), "at": num(&d, "updated_at")});
        }
        Ok(body)
    }

    /// The app whose token sends the message, checked against the message type.
    async fn sending_app(
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
            | (MessageKind::Custom, _) => Ok(app.clone()),
            (MessageKind::Template, _) => Err(wrong(
                "template messages are sent by an official account; use \"uniform\" from a mini program",
            )),
            (MessageKind::Subscribe, _) => {
                Err(wrong("subscribe messages are sent by a mini program"))
            }
            (MessageKind::Uniform, AppKind::OfficialAccount) => Err(wrong(
                "\"uniform\" is sent from a mini program to its linked official account",
            )),
            (MessageKind::Uniform, AppKind::MiniProgram) => {
                let linked = app.linked_official_account.as_deref().ok_or_else(|| {
                    ApiError::Misconfigured {
                        appid: app.appid.clone(),
                        message: "\"uniform\" needs parameter `linked_official_account`".into(),
                    }
                })?;
                Ok(self.tokens.secrets().app(linked).await?)
            }
        }
    }

    /// (openid in the sending app, unionid if known).
    async fn resolve(
        &self,
        app: &AppConfig,
        via: &AppConfig,
        req: &SendRequest,
    ) -> Result<(String, Option<String>), ApiError> {
        let unknown = |message: String| ApiError::WeChat {
            code: "unknown_recipient",
            status: StatusCode::NOT_FOUND,
            message,
            errcode: None,
        };
        let unionid = match (&req.to, req.kind) {
            (Recipient::OpenId(o), k) if k != MessageKind::Uniform => return Ok((o.clone(), None)),
            (Recipient::OpenId(o), _) => {
                let account = self
                    .store
                    .get(&ItemKey::account(&app.appid, o))
                    .await
                    .map_err(store_error)?;
                match account.as_ref().and_then(|a| text(a, "unionid")) {
                    Some(u) => u,
                    None => {
                        return Err(unknown(format!(
                            "no unionid is known for openid {o} of app {}",
                            app.appid
                        )));
                    }
                }
            }
            (Recipient::UnionId(u), _) => u.clone(),
        };
        let accounts = self
            .store
            .query(&format!("union#{unionid}"))
            .await
            .map_err(store_error)?;
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
    /// once; -1/5xx/connection failures retry with jittered backoff while the budget allows;
    /// an answer lost after the request went out is resent only where WeChat dedupes
    /// (template messages carry a `client_msg_id`).
    async fn deliver(
        &self,
        via: &AppConfig,
        wx: &WxMessage,
        deadline: Instant,
    ) -> Result<Option<i64>, Failure> {
        let appid = via.appid.as_str();
        let token_error = |e: TokenError| Failure::NotSent(e.into());
        let mut token = self.tokens.get(appid).await.map_err(token_error)?;
        let mut token_retried = false;
        let mut maybe_sent = false;
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
                WxMessage::Custom(m) => wechat
                    .send_custom(token.token.expose(), m)
                    .await
                    .map(|_| None),
            };
            let err = match result {
                Ok(msgid) => return Ok(msgid),
                Err(e) => e,
            };
            let dedupes = matches!(wx, WxMessage::Template(_));
            let backoff = Duration::from_millis(100 * (1 << attempt.min(5)))
                + Duration::from_millis(rand::random_range(0..100));
            let fits = Instant::now() + backoff + self.attempt_timeout + RESERVE < deadline
                && attempt < MAX_ATTEMPTS;
            if err.maybe_delivered() {
                maybe_sent = true;
                if dedupes && fits {
                    warn!(
                        appid,
                        attempt, "no answer from WeChat; resending with the same client_msg_id"
                    );
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                return Err(Failure::Unknown(err));
            }
            match err.class() {
                ErrorClass::TokenInvalid if !token_retried => {
                    token_retried = true;
                    let _ = self.tokens.invalidate(appid, &token).await;
                    token = match self.tokens.get(appid).await {
                        Ok(t) => t,
                        // An earlier attempt may have gone out: never release the key then.
                        Err(_) if maybe_sent => return Err(Failure::Unknown(err)),
                        Err(e) => return Err(token_error(e)),
                    };
                }
                ErrorClass::Retryable if fits => {
                    warn!(appid, attempt, error = %err, "WeChat busy; retrying");
                    tokio::time::sleep(backoff).await;
                }
                _ if maybe_sent => return Err(Failure::Unknown(err)),
                ErrorClass::Retryable | ErrorClass::Quota | ErrorClass::TokenInvalid => {
                    return Err(Failure::NotSent(send_error(appid, &err)));
                }
                _ => return Err(Failure::Refused(err)),
            }
        }
        Err(Failure::NotSent(ApiError::Internal(
            "retries exhausted".into(),
        )))
    }

    async fn claim(&self, appid: &str, key: &str, body: &[u8]) -> Result<Claim, ApiError> {
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::Validation {
                field: "Idempotency-Key".into(),
                message: "must be 1-128 printable ASCII characters without spaces".into(),
            });
        }
        let now = now_unix();
        let item = ItemKey::idempotency(appid, key);
        let hash = body_hash(body);
        let id = new_message_id();
        let claim = attrs([
            ("hash", s(&hash)),
            ("state", s("in_progress")),
            ("message_id", s(&id)),
            ("created_at", Attr::N(now)),
            ("ttl", Attr::N(now + IDEMPOTENCY_TTL_SECS)),
        ]);
        match self
            .store
            .record(
                &[Op::Insert {
                    key: item.clone(),
                    attrs: claim,
                }],
                now,
            )
            .await
            .map_err(store_error)?
        {
            Recorded::New => return Ok(Claim::Claimed((item, id))),
            Recorded::Duplicate | Recorded::Conflict => {}
        }
        let existing = self
            .store
            .get(&item)
            .await
            .map_err(store_error)?
            .unwrap_or_default();
        let conflict = |code: &'static str, message: String| ApiError::WeChat {
            code,
            status: StatusCode::CONFLICT,
            message,
            errcode: None,
        };
        // An expired key (DynamoDB deletes by TTL lazily) counts as absent.
        if num(&existing, "ttl").is_some_and(|t| t < now) {
            self.store
                .record(&[Op::Delete { key: item }], now)
                .await
                .map_err(store_error)?;
            return Box::pin(self.claim(appid, key, body)).await;
        }
        if text(&existing, "hash").as_deref() != Some(hash.as_str()) {
            return Err(conflict(
                "idempotency_key_reused",
                format!("Idempotency-Key {key} was used with a different request body"),
            ));
        }
        match (
            text(&existing, "state").as_deref(),
            num(&existing, "status"),
            text(&existing, "response"),
        ) {
            (Some("done"), Some(status), Some(response)) => Ok(Claim::Replay(SendOutcome {
                status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                body: serde_json::from_str(&response).unwrap_or(Value::Null),
            })),
            _ => Err(conflict(
                "in_progress",
                format!(
                    "a request with Idempotency-Key {key} is still being processed (message {})",
                    text(&existing, "message_id").unwrap_or_default()
                ),
            )),
        }
    }

    async fn finish_claim(
        &self,
        key: &ItemKey,
        body: &[u8],
        outcome: &SendOutcome,
        id: &str,
        now: i64,
    ) -> Result<(), ApiError> {
        let done = attrs([
            ("hash", s(&body_hash(body))),
            ("state", s("done")),
            ("message_id", s(id)),
            ("status", Attr::N(outcome.status.as_u16() as i64)),
            ("response", s(&outcome.body.to_string())),
            ("created_at", Attr::N(now)),
            ("ttl", Attr::N(now + IDEMPOTENCY_TTL_SECS)),
        ]);
        self.store
            .record(
                &[Op::Set {
                    key: key.clone(),
                    attrs: done,
                }],
                now,
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

enum Claim {
    Replay(SendOutcome),
    Claimed((ItemKey, String)),
}

fn body_hash(body: &[u8]) -> String {
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
        Payload::Custom(body) => WxMessage::Custom(CustomMessage {
            touser: openid.to_string(),
            body: body.clone(),
        }),
    }
}
