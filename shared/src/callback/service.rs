//! The callback's logic: verify, decrypt, parse, dedupe, act, record — in that order, and
//! `success` only once the event and its effects are stored.

use super::crypto::MsgCrypt;
use super::message::{InboundMessage, parse_fields, parse_message};
use super::signature;
use super::state::{Enrichment, plan};
use crate::app::{AppConfig, AppKind, Secret};
use crate::error::ApiError;
use crate::queue::{Job, JobQueue};
use crate::secrets::SecretStore;
use crate::store::{Attr, ItemKey};
use crate::store::{Recorded, StateStore};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{info, warn};

/// The largest body WeChat's pushes need; larger ones are refused with 413.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;
/// How far a callback's timestamp may be from now, either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// How long after it is queued a new follower's unionid look-up runs. The event it belongs
/// to is recorded right after the job is queued, by the same invocation, which Lambda ends
/// after 5 s (template.yaml): twice that leaves the write time to land even when it was the
/// last thing the invocation did. A job that still finds no follower does nothing.
pub const COMPLETION_DELAY: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest `nonce` accepted (WeChat's are about ten digits); it becomes part of a key.
pub const MAX_NONCE_LEN: usize = 64;

/// The timestamp parsed and within the window of `now` (no overflow for any input).
fn check_timestamp(ts: &str, now: i64) -> Result<(), ApiError> {
    let ts: i64 = ts
        .parse()
        .map_err(|_| ApiError::SignatureRejected("the timestamp is not a number".into()))?;
    if ts.abs_diff(now) > TIMESTAMP_WINDOW_SECS as u64 {
        return Err(ApiError::SignatureRejected(format!(
            "the timestamp is more than {TIMESTAMP_WINDOW_SECS} s away from now"
        )));
    }
    Ok(())
}

fn check_nonce(nonce: &str) -> Result<(), ApiError> {
    if nonce.len() > MAX_NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::BadRequest(format!(
            "query parameter `nonce` must be at most {MAX_NONCE_LEN} letters or digits"
        )));
    }
    Ok(())
}

pub struct CallbackService {
    secrets: Arc<dyn SecretStore>,
    store: Arc<dyn StateStore>,
    /// Where a new follower's unionid look-up goes ([`Job::CompleteFollower`]): the callback
    /// itself never waits for WeChat.
    queue: Arc<dyn JobQueue>,
    /// Whether recorded events are forwarded (an outbox row with each, see
    /// [`crate::forward`]).
    forwarding: bool,
    /// How long after it is queued a new follower's unionid look-up runs.
    completion_delay: std::time::Duration,
}

type Query = HashMap<String, String>;

fn param<'q>(query: &'q Query, name: &str) -> Result<&'q str, ApiError> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("query parameter `{name}` is missing")))
}

impl CallbackService {
    pub fn new(
        secrets: Arc<dyn SecretStore>,
        store: Arc<dyn StateStore>,
        queue: Arc<dyn JobQueue>,
    ) -> Self {
        CallbackService {
            secrets,
            store,
            queue,
            forwarding: false,
            completion_delay: COMPLETION_DELAY,
        }
    }

    /// A shorter [`COMPLETION_DELAY`] where the event is recorded in-process right after the
    /// job is queued (`wxpush serve`: no invocation that could end in between).
    pub fn with_completion_delay(mut self, delay: std::time::Duration) -> Self {
        self.completion_delay = delay;
        self
    }

    /// Forwards every recorded event: an outbox row in the event's transaction, and a
    /// [`Job::ForwardEvent`] queued once it is recorded.
    pub fn with_forwarding(mut self, forwarding: bool) -> Self {
        self.forwarding = forwarding;
        self
    }

    async fn app_with_token(&self, appid: &str) -> Result<(Arc<AppConfig>, Secret), ApiError> {
        let app = self.secrets.app(appid).await?;
        let token = app
            .callback_token
            .clone()
            .ok_or_else(|| ApiError::Misconfigured {
                appid: appid.to_string(),
                message: "parameter `callback_token` is missing".into(),
            })?;
        Ok((app, token))
    }

    /// `GET /wechat/{appid}`: WeChat's URL check. Returns `echostr` when the signature is right
    /// and the timestamp within ±300 s of `now`.
    pub async fn verify_url(
        &self,
        appid: &str,
        query: &Query,
        now: i64,
    ) -> Result<String, ApiError> {
        let (_, token) = self.app_with_token(appid).await?;
        let (sig, ts, nonce, echostr) = (
            param(query, "signature")?,
            param(query, "timestamp")?,
            param(query, "nonce")?,
            param(query, "echostr")?,
        );
        if !signature::verify(sig, &[token.expose(), ts, nonce]) {
            return Err(ApiError::SignatureRejected(
                "the signature does not match".into(),
            ));
        }
        check_timestamp(ts, now)?;
        Ok(echostr.to_string())
    }

    /// `POST /wechat/{appid}`: a message or event. `Ok` means it is durably recorded (now or
    /// by an earlier delivery) and WeChat may be told `success`.
    pub async fn receive(
        &self,
        appid: &str,
        query: &Query,
        body: &[u8],
        now: i64,
    ) -> Result<Recorded, ApiError> {
        if body.len() > MAX_CALLBACK_BODY {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_CALLBACK_BODY,
            });
        }
        let (app, token) = self.app_with_token(appid).await?;
        let sig = query
            .get("signature")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::SignatureRejected("the signature is missing".into()))?;
        let (ts, nonce) = (param(query, "timestamp")?, param(query, "nonce")?);
        if !signature::verify(sig, &[token.expose(), ts, nonce]) {
            return Err(ApiError::SignatureRejected(
                "the signature does not match".into(),
            ));
        }
        check_timestamp(ts, now)?;
        check_nonce(nonce)?;
        let body = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
        let plaintext = match query.get("encrypt_type").map(String::as_str) {
            None | Some("") | Some("raw") => {
                if app.callback_mode.encrypted() {
                    return Err(ApiError::SignatureRejected(format!(
                        "app {appid} is in {} mode: only encrypted pushes (encrypt_type=aes) are accepted",
                        app.callback_mode.as_str()
                    )));
                }
                self.check_replay(appid, ts, nonce, body, now).await?;
                body.to_string()
            }
            Some("aes") => self.decrypt(&app, &token, query, ts, nonce, body)?,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unknown encrypt_type `{other}`"
                )));
            }
        };
        let msg = parse_message(&plaintext).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let event_key = ItemKey::event(appid, &msg.dedupe_key());
        if self
            .store
            .get(&event_key)
            .await
            .map_err(store_error)?
            .is_some()
        {
            info!(appid, "callback retry acknowledged without processing");
            self.requeue_pending(&app, &msg).await?;
            self.queue_forward(appid, &msg, std::time::Duration::ZERO)
                .await;
            return Ok(Recorded::Duplicate);
        }
        let extra = self.enrich(&app, &msg).await?;
        if extra.unionid_pending {
            // Queued before the event is recorded (and delivered a few seconds later, once it
            // is): an acknowledged follower always has its look-up on the way. If the queue
            // refuses, nothing is recorded and WeChat is told to retry.
            self.queue_completion(appid, &msg.from_user_name, self.completion_delay)
                .await?;
        }
        let mut ops = plan(appid, &msg, &plaintext, now, &extra);
        if self.forwarding {
            ops.push(crate::forward::outbox_op(
                appid,
                &msg,
                &plaintext,
                extra.unionid.as_deref(),
                now,
            ));
        }
        let recorded = self.store.record(&ops, now).await.map_err(store_error)?;
        info!(appid, msg_type = %msg.msg_type, event = ?msg.event(), ?recorded, "callback recorded");
        if recorded == Recorded::New {
            let kind = match msg.event() {
                Some(e) => format!("event.{e}"),
                None => msg.msg_type.clone(),
            };
            crate::metrics::count("Callbacks", 1.0, &[("EventType", kind.as_str())]);
        } else {
            self.requeue_pending(&app, &msg).await?;
        }
        // A new follower's event goes out once its unionid look-up has had its turn, so the
        // forwarded event carries the unionid.
        let forward_after = if extra.unionid_pending {
            self.completion_delay + self.completion_delay / 2
        } else {
            std::time::Duration::ZERO
        };
        self.queue_forward(appid, &msg, forward_after).await;
        Ok(recorded)
    }

    /// Plaintext mode: the signature covers (token, timestamp, nonce) but not the body, so a
    /// signed query string seen once could carry any body for the rest of the window. The
    /// first body seen with a (timestamp, nonce) is remembered (its hash, for twice the
    /// window); the same pair with another body is refused. WeChat's retries carry the same
    /// body and pass.
    async fn check_replay(
        &self,
        appid: &str,
        ts: &str,
        nonce: &str,
        body: &str,
        now: i64,
    ) -> Result<(), ApiError> {
        use sha1::Digest;
        let hash = hex::encode(sha1::Sha1::digest(body.as_bytes()));
        let key = ItemKey::nonce(appid, ts, nonce);
        let seen = crate::store::attrs([
            ("hash", Attr::S(hash.clone())),
            ("ttl", Attr::N(now + 2 * TIMESTAMP_WINDOW_SECS)),
        ]);
        let op = crate::store::Op::Insert {
            key: key.clone(),
            attrs: seen,
        };
        if self.store.record(&[op], now).await.map_err(store_error)? == Recorded::New {
            return Ok(());
        }
        let first = self.store.get(&key).await.map_err(store_error)?;
        match first.as_ref().and_then(|a| a.get("hash")) {
            Some(Attr::S(h)) if *h == hash => Ok(()),
            _ => {
                warn!(
                    appid,
                    "plaintext push replayed a signed timestamp and nonce with another body"
                );
                Err(ApiError::SignatureRejected(
                    "this timestamp and nonce were already used with another body".into(),
                ))
            }
        }
    }

    /// Queues the unionid look-up of a follower recorded (or about to be) without one, to run
    /// after `delay`. The job is idempotent: one that finds the follower complete, or not
    /// recorded, does nothing.
    async fn queue_completion(
        &self,
        appid: &str,
        openid: &str,
        delay: std::time::Duration,
    ) -> Result<(), ApiError> {
        let job = Job::CompleteFollower {
            appid: appid.to_string(),
            openid: openid.to_string(),
        };
        self.queue.enqueue_after(&job, delay).await.map_err(|e| {
            warn!(appid, error = %e, "could not queue a follower's unionid look-up; WeChat will retry the push");
            ApiError::QueueUnavailable(e.to_string())
        })
    }

    /// Queues the forwarding of a recorded event. Not an error when the queue refuses: the
    /// outbox row is already stored, and the scheduled sweep queues it.
    async fn queue_forward(&self, appid: &str, msg: &InboundMessage, after: std::time::Duration) {
        if !self.forwarding {
            return;
        }
        let job = Job::ForwardEvent {
            appid: appid.to_string(),
            key: msg.dedupe_key(),
            attempt: 0,
        };
        if let Err(e) = self.queue.enqueue_after(&job, after).await {
            warn!(appid, error = %e, "could not queue an event's forwarding; the outbox sweep will");
        }
    }

    /// A retried `subscribe` whose follower is still waiting for its unionid look-up (its job
    /// was lost, or failed for good): queue it again. One read, only for such retries.
    async fn requeue_pending(&self, app: &AppConfig, msg: &InboundMessage) -> Result<(), ApiError> {
        if msg.event() != Some("subscribe") || app.kind != AppKind::OfficialAccount {
            return Ok(());
        }
        let account = self
            .store
            .get(&ItemKey::account(&app.appid, &msg.from_user_name))
            .await
            .map_err(store_error)?
            .unwrap_or_default();
        let pending = matches!(account.get("unionid_pending"), Some(Attr::Bool(true)));
        if pending && !account.contains_key("unionid") {
            self.queue_completion(&app.appid, &msg.from_user_name, std::time::Duration::ZERO)
                .await?;
        }
        Ok(())
    }

    /// Safe or compatible mode: `msg_signature` over the `Encrypt` field, then AES, then the
    /// appid inside must be this app's.
    fn decrypt(
        &self,
        app: &AppConfig,
        token: &Secret,
        query: &Query,
        ts: &str,
        nonce: &str,
        body: &str,
    ) -> Result<String, ApiError> {
        let encrypt = parse_fields(body)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .encrypt
            .ok_or_else(|| {
                ApiError::BadRequest("encrypt_type=aes but the body has no Encrypt".into())
            })?;
        let msg_sig = query
            .get("msg_signature")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::SignatureRejected("msg_signature is missing".into()))?;
        if !signature::verify(msg_sig, &[token.expose(), ts, nonce, &encrypt]) {
            return Err(ApiError::SignatureRejected(
                "msg_signature does not match".into(),
            ));
        }
        let key = app
            .encoding_aes_key
            .as_ref()
            .ok_or_else(|| ApiError::Misconfigured {
                appid: app.appid.clone(),
                message: "safe mode needs parameter `encoding_aes_key`".into(),
            })?;
        let crypt = MsgCrypt::new(key.expose()).map_err(|e| ApiError::Misconfigured {
            appid: app.appid.clone(),
            message: format!("encoding_aes_key: {e}"),
        })?;
        crypt
            .decrypt(&encrypt, &app.appid)
            .map_err(|e| ApiError::BadRequest(format!("cannot decrypt ({}): {e}", e.code())))
    }

    /// The follower's unionid if the store knows it. A new official-account follower without
    /// one is recorded `unionid_pending` and looked up later by a queued job: nothing here
    /// waits for WeChat, so the answer always comes well within WeChat's 5 s.
    async fn enrich(&self, app: &AppConfig, msg: &InboundMessage) -> Result<Enrichment, ApiError> {
        let Some(event @ ("subscribe" | "unsubscribe")) = msg.event() else {
            return Ok(Enrichment::default());
        };
        let account = self
            .store
            .get(&ItemKey::account(&app.appid, &msg.from_user_name))
            .await
            .map_err(store_error)?;
        if let Some(Attr::S(u)) = account.as_ref().and_then(|a| a.get("unionid")) {
            return Ok(Enrichment {
                unionid: Some(u.clone()),
                unionid_pending: false,
            });
        }
        Ok(Enrichment {
            unionid: None,
            unionid_pending: event == "subscribe" && app.kind == AppKind::OfficialAccount,
        })
    }
}

fn store_error(e: crate::token::StoreError) -> ApiError {
    ApiError::StoreUnavailable(e.to_string())
}
