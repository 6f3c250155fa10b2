//! The callback's logic: verify, decrypt, parse, dedupe, act, record — in that order, and
//! `success` only once the event and its effects are stored.

use super::crypto::MsgCrypt;
use super::message::{InboundMessage, parse_fields, parse_message};
use super::plan::{Enrichment, plan};
use super::replay::{Seen, check_replay};
use super::signature;
use crate::app::{AppConfig, AppKind, Secret};
use crate::error::ApiError;
use crate::queue::{Job, JobQueue};
use crate::secrets::SecretStore;
use crate::store::{ItemKey, ItemRead, Recorded, StateStore};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{info, warn};

/// The largest body WeChat's pushes need; larger ones are refused with 413.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;
/// How far a callback's timestamp may be from now, either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// How long the outbox sweep leaves a new follower's event alone (see the plan).
pub use super::plan::FORWARD_HOLD_SECS;
/// How long after a new follower's event is recorded its unionid look-up is delivered (the
/// job is queued once the event is stored). The event's forwarding waits half as long again,
/// so the forwarded event carries the unionid.
pub const COMPLETION_DELAY: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest `nonce` a push may carry (WeChat's are about ten digits).
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
    /// itself never waits for WeChat, nor depends on the queue (a refused job is swept up).
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

    /// Another delay than [`COMPLETION_DELAY`] (`wxpush serve`: a shorter one).
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
        let (app, token) = self.app_with_token(appid).await?;
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
        if !app.callback_mode.encrypted() {
            // A plaintext app's signed verification URL must not become a push's.
            check_replay(&*self.store, appid, Seen::Get { echostr }, sig, now).await?;
        }
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
        let (app, plaintext) = self.open(appid, query, body, now).await?;
        let msg = parse_message(&plaintext).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let event_key = ItemKey::event(appid, &msg.dedupe_key());
        if self.store.get(&event_key).await?.is_some() {
            info!(appid, "callback retry acknowledged without processing");
            self.requeue_pending(&app, &msg).await;
            self.queue_forward(appid, &msg, std::time::Duration::ZERO)
                .await;
            return Ok(Recorded::Duplicate);
        }
        let extra = self.enrich(&app, &msg).await?;
        // A pending follower's follow-up row and the event's outbox row come with the event
        // (`plan`): the look-up and the forwarding are recorded as owed whether or not their
        // jobs can be queued.
        let ops = plan(appid, &msg, &plaintext, now, &extra, self.forwarding);
        let recorded = self.store.record(&ops, now).await?;
        info!(appid, msg_type = %msg.msg_type, event = ?msg.event(), ?recorded, "callback recorded");
        if recorded == Recorded::New {
            let kind = match msg.event() {
                Some(e) => format!("event.{e}"),
                None => msg.msg_type.clone(),
            };
            crate::metrics::count("Callbacks", 1.0, &[("EventType", kind.as_str())]);
        }
        self.queue_jobs(&app, &msg, &extra, recorded).await;
        Ok(recorded)
    }

    /// The push's signature and timestamp checked, and its body as plaintext: as it came in
    /// plaintext mode (after [`check_replay`]), decrypted in safe or compatible mode.
    async fn open(
        &self,
        appid: &str,
        query: &Query,
        body: &[u8],
        now: i64,
    ) -> Result<(Arc<AppConfig>, String), ApiError> {
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
                check_replay(&*self.store, appid, Seen::Post { body }, sig, now).await?;
                body.to_string()
            }
            Some("aes") => self.decrypt(&app, &token, query, ts, nonce, body)?,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unknown encrypt_type `{other}`"
                )));
            }
        };
        Ok((app, plaintext))
    }

    /// The jobs a recorded push leaves: a new follower's unionid look-up (or a retried
    /// follower's, still pending), and the event's forwarding — after the look-up has had its
    /// turn, so the forwarded event carries the unionid.
    async fn queue_jobs(
        &self,
        app: &AppConfig,
        msg: &InboundMessage,
        extra: &Enrichment,
        recorded: Recorded,
    ) {
        let appid = app.appid.as_str();
        if recorded != Recorded::New {
            self.requeue_pending(app, msg).await;
        } else if extra.unionid_pending {
            self.queue_completion(appid, &msg.from_user_name, self.completion_delay)
                .await;
        }
        let forward_after = if extra.unionid_pending {
            self.completion_delay + self.completion_delay / 2
        } else {
            std::time::Duration::ZERO
        };
        self.queue_forward(appid, msg, forward_after).await;
    }

    /// Queues the unionid look-up of a follower recorded without one, to run after `delay`.
    /// Not an error when the queue refuses: the follow-up row is stored with the event, and
    /// the scheduled sweep queues it. The job is idempotent: one that finds the follower
    /// complete, or not recorded, does nothing.
    async fn queue_completion(&self, appid: &str, openid: &str, delay: std::time::Duration) {
        let job = Job::CompleteFollower {
            appid: appid.to_string(),
            openid: openid.to_string(),
        };
        if let Err(e) = self.queue.enqueue_after(&job, delay).await {
            warn!(appid, error = %e, "could not queue a follower's unionid look-up; the follow-up sweep will");
        }
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
    /// was lost, or failed for good): queue it again, sooner than the sweep would. One read,
    /// only for such retries; a failure is only logged (the event is recorded).
    async fn requeue_pending(&self, app: &AppConfig, msg: &InboundMessage) {
        if msg.event() != Some("subscribe") || app.kind != AppKind::OfficialAccount {
            return;
        }
        let openid = msg.from_user_name.as_str();
        let account = match self.store.get(&ItemKey::account(&app.appid, openid)).await {
            Ok(account) => account.unwrap_or_default(),
            Err(e) => {
                warn!(appid = %app.appid, error = %e, "could not read a retried follower; the follow-up sweep covers it");
                return;
            }
        };
        if account.flag("unionid_pending") && account.text("unionid").is_none() {
            self.queue_completion(&app.appid, openid, std::time::Duration::ZERO)
                .await;
        }
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
        if msg.event() == Some("subscribe_msg_sent_event") {
            return Ok(Enrichment {
                pending: self.pending_grants(app, msg).await?,
                ..Enrichment::default()
            });
        }
        let Some(event @ ("subscribe" | "unsubscribe")) = msg.event() else {
            return Ok(Enrichment::default());
        };
        let account = self
            .store
            .get(&ItemKey::account(&app.appid, &msg.from_user_name))
            .await?;
        if let Some(unionid) = account.and_then(|a| a.string("unionid")) {
            return Ok(Enrichment {
                unionid: Some(unionid),
                ..Enrichment::default()
            });
        }
        Ok(Enrichment {
            unionid_pending: event == "subscribe" && app.kind == AppKind::OfficialAccount,
            ..Enrichment::default()
        })
    }

    /// The acceptances wxpush's sends took of each template a sent event reports a success
    /// of, still unreported (the grant's `pending`).
    async fn pending_grants(
        &self,
        app: &AppConfig,
        msg: &InboundMessage,
    ) -> Result<std::collections::BTreeMap<String, i64>, ApiError> {
        let mut pending = std::collections::BTreeMap::new();
        for item in &msg.fields.subscribe_items {
            if item.error_code.unwrap_or(0) != 0 || pending.contains_key(&item.template_id) {
                continue;
            }
            let key = ItemKey::grant(&app.appid, &msg.from_user_name, &item.template_id);
            let grant = self.store.get(&key).await?;
            let n = grant.and_then(|g| g.num("pending")).unwrap_or(0).max(0);
            pending.insert(item.template_id.clone(), n);
        }
        Ok(pending)
    }
}
