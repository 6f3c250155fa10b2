//! `POST /v1/apps/{appid}/batches`: a batch is checked, claimed under a new random id,
//! written chunk by chunk, marked `running`, and its fan-out queued.
//!
//! Ids never derive from anything a caller knows: `bat_` and 32 hex digits from the
//! operating system's CSPRNG (`rand`'s thread generator). An `Idempotency-Key` finds its
//! batch through a separate item, `bkey#{appid}#{sha1(principal, key)}` → the id, written
//! in one transaction with the batch's first `writing` claim, so two racing requests with
//! one key still make one batch.

use super::created_body;
use crate::app::{AppConfig, AppKind};
use crate::batch::items::{Audience, BatchState, Meta, chunk_ops, unfinished_op};
use crate::batch::request::{BatchRequest, parse_batch_request, probe};
use crate::batch::{Batches, invalid};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::send::service::{MESSAGE_TTL_SECS, body_hash, check_idempotency_key, principal};
use crate::send::validate::{MessageKind, parse_send_request};
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, Recorded, attrs};
use serde_json::Value;
use std::sync::Arc;
use tracing::info;

/// A batch still `writing` after this long was abandoned by its request: a retry with the
/// same `Idempotency-Key` takes it over.
const WRITING_STALE_SECS: i64 = 120;
/// Chunks written per store transaction when a batch is created (two items each).
const CHUNKS_PER_WRITE: usize = 20;

/// The item that maps a caller's `Idempotency-Key` to its batch of `appid`: keyed by a SHA-1
/// of the caller's principal (an assumed role without its session name) and the key.
pub fn idempotency_item(appid: &str, caller: &str, key: &str) -> ItemKey {
    let seed = format!("{}\n{key}", principal(caller));
    ItemKey::batch_idempotency(appid, &body_hash(seed.as_bytes()))
}

/// A new batch id: `bat_` and 32 hex digits from a CSPRNG.
fn new_batch_id() -> String {
    format!("bat_{:032x}", rand::random::<u128>())
}

/// The batch being created: what its `meta` item says in each state.
struct Draft<'a> {
    appid: &'a str,
    request: &'a BatchRequest,
    message: String,
    hash: String,
    caller: &'a str,
    now: i64,
    chunk_size: usize,
}

impl Draft<'_> {
    fn meta(&self, id: &str, state: BatchState, version: i64) -> Attrs {
        let total = self.request.recipients.len() as i64;
        attrs([
            ("id", id.into()),
            ("appid", self.appid.into()),
            ("state", state.into()),
            ("audience", self.request.audience.as_str().into()),
            ("message", self.message.as_str().into()),
            ("hash", self.hash.as_str().into()),
            ("requested_by", self.caller.into()),
            ("created_at", Attr::N(self.now)),
            ("ttl", Attr::N(self.now + MESSAGE_TTL_SECS)),
            ("total", Attr::N(total)),
            ("duplicates", Attr::N(self.request.duplicates as i64)),
            ("chunks", Attr::N(0)),
            ("queued_chunks", Attr::N(0)),
            ("fanout_done", Attr::Bool(false)),
            ("version", Attr::N(version)),
        ])
    }

    fn chunks(&self) -> u32 {
        self.request.recipients.len().div_ceil(self.chunk_size) as u32
    }
}

/// The outcome of claiming a batch.
enum Claim {
    /// This request writes batch `id`; its `meta` is at `version`, state `writing`.
    Mine { id: String, version: i64 },
    /// The key's batch exists: its first answer.
    Answered(Value),
}

/// What the key's existing batch means for this request.
enum Existing {
    /// The batch's answer (its first, or after starting it).
    Answer(Value),
    /// Abandoned while being written; its `meta` is at this version.
    Abandoned(i64),
}

fn in_progress(message: String) -> ApiError {
    ApiError::Conflict {
        code: "in_progress",
        message,
    }
}

impl Batches {
    /// `POST /v1/apps/{appid}/batches`: validates everything, records the batch and its
    /// chunks, queues the fan-out. With an `Idempotency-Key` a retry finds the batch the
    /// key created (same body: its first answer; another body: 409).
    pub async fn create(
        &self,
        appid: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
        caller: &str,
    ) -> Result<Value, ApiError> {
        let app = self.app(appid).await?;
        let request = parse_batch_request(body)?;
        self.check_message(&app, &request).await?;
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }
        let draft = Draft {
            appid,
            request: &request,
            message: serde_json::to_string(&request.message).unwrap_or_default(),
            hash: body_hash(body),
            caller,
            now: now_unix(),
            chunk_size: self.config.chunk_size,
        };
        let (id, version) = match self.claim(&draft, idempotency_key).await? {
            Claim::Mine { id, version } => (id, version),
            Claim::Answered(answer) => return Ok(answer),
        };
        // The chunks, then the batch says it is running, then the fan-out is queued.
        let pieces: Vec<&[String]> = request.recipients.chunks(self.config.chunk_size).collect();
        for (group_index, group) in pieces.chunks(CHUNKS_PER_WRITE).enumerate() {
            let mut ops = Vec::with_capacity(group.len() * 2);
            for (i, recipients) in group.iter().enumerate() {
                let chunk = (group_index * CHUNKS_PER_WRITE + i) as u32;
                ops.extend(chunk_ops(appid, &id, chunk, recipients, draft.now));
            }
            self.store.record(&ops, draft.now).await?;
        }
        let mut running = draft.meta(&id, BatchState::Running, version + 1);
        running.insert("chunks".into(), Attr::N(i64::from(draft.chunks())));
        let op = Op::PutIfVersion {
            key: ItemKey::batch(appid, &id),
            attrs: running.clone(),
            expected: Some(version),
        };
        // Listed for the sweep in the same write that starts it.
        let listed = unfinished_op(appid, &id, draft.now);
        let recorded = self.store.record(&[op, listed], draft.now).await;
        if recorded? != Recorded::New {
            return Err(in_progress(format!(
                "batch {id} was taken over by another request; retry later"
            )));
        }
        self.start_fanout(appid, &id).await?;
        let (total, chunks) = (request.recipients.len(), draft.chunks());
        info!(appid, batch = %id, total, chunks, audience = request.audience.as_str(), caller, "batch created");
        Ok(created_body(
            &id,
            request.audience,
            total as i64,
            request.duplicates as i64,
            BatchState::Running,
        ))
    }

    /// The message checked as a single send would be, and the audience against the app.
    async fn check_message(
        &self,
        app: &Arc<AppConfig>,
        request: &BatchRequest,
    ) -> Result<(), ApiError> {
        let probed = parse_send_request(&probe(&request.message))?;
        self.sender.check_request(app, &probed).await?;
        if request.audience == Audience::Followers {
            if app.kind != AppKind::OfficialAccount {
                return Err(invalid(
                    "audience",
                    format!(
                        "app {}: \"followers\" is an official account's audience",
                        app.appid
                    ),
                ));
            }
            if !matches!(
                probed.kind,
                MessageKind::Template | MessageKind::OaSubscribe | MessageKind::Custom
            ) {
                return Err(invalid(
                    "message.type",
                    "an official account's followers get \"template\", \"oa_subscribe\" or \"custom\" messages",
                ));
            }
        }
        Ok(())
    }

    /// Claims a new batch id, or, with a key, finds the key's batch: a new batch when the
    /// key is unused (or its item expired), else the batch's answer, or a takeover of a
    /// write its request abandoned.
    async fn claim(&self, draft: &Draft<'_>, key: Option<&str>) -> Result<Claim, ApiError> {
        let Some(key) = key else {
            let id = new_batch_id();
            let op = Op::PutIfVersion {
                key: ItemKey::batch(draft.appid, &id),
                attrs: draft.meta(&id, BatchState::Writing, 1),
                expected: None,
            };
            return match self.store.record(&[op], draft.now).await? {
                Recorded::New => Ok(Claim::Mine { id, version: 1 }),
                _ => Err(in_progress(format!("batch {id} already exists; retry"))),
            };
        };
        let key_item = idempotency_item(draft.appid, draft.caller, key);
        for _ in 0..3 {
            let found = self.store.get(&key_item).await?;
            let live_id = found
                .as_ref()
                .filter(|k| k.num("ttl").unwrap_or(0) > draft.now)
                .and_then(|k| k.string("id"));
            let existing = match live_id {
                Some(id) => self.meta(draft.appid, &id).await?.map(|meta| (id, meta)),
                None => None,
            };
            let Some((id, meta)) = existing else {
                let expected = found.as_ref().map(|k| k.num("version").unwrap_or(0));
                match self.claim_key(draft, &key_item, expected).await? {
                    Some(id) => return Ok(Claim::Mine { id, version: 1 }),
                    // Another request with the key was first: read what it wrote.
                    None => continue,
                }
            };
            match self.existing(draft, key, &id, meta).await? {
                Existing::Answer(answer) => return Ok(Claim::Answered(answer)),
                Existing::Abandoned(version) => {
                    // Abandoned while being written: this request takes it over (same id).
                    let op = Op::PutIfVersion {
                        key: ItemKey::batch(draft.appid, &id),
                        attrs: draft.meta(&id, BatchState::Writing, version + 1),
                        expected: Some(version),
                    };
                    let recorded = self.store.record(&[op], draft.now).await;
                    if recorded? == Recorded::New {
                        return Ok(Claim::Mine {
                            id,
                            version: version + 1,
                        });
                    }
                }
            }
        }
        Err(in_progress(format!(
            "the batch of Idempotency-Key {key} is being created by another request; retry later"
        )))
    }

    /// An unused key (or one whose item expired, at version `expected`): a new batch, the
    /// key's item and the batch's first claim in one write. `None`: another request with the
    /// key wrote first.
    async fn claim_key(
        &self,
        draft: &Draft<'_>,
        key_item: &ItemKey,
        expected: Option<i64>,
    ) -> Result<Option<String>, ApiError> {
        let id = new_batch_id();
        let key_op = Op::PutIfVersion {
            key: key_item.clone(),
            attrs: attrs([
                ("id", id.as_str().into()),
                ("ttl", Attr::N(draft.now + MESSAGE_TTL_SECS)),
                ("version", Attr::N(expected.unwrap_or(0) + 1)),
            ]),
            expected,
        };
        let meta_op = Op::PutIfVersion {
            key: ItemKey::batch(draft.appid, &id),
            attrs: draft.meta(&id, BatchState::Writing, 1),
            expected: None,
        };
        let recorded = self.store.record(&[key_op, meta_op], draft.now).await;
        Ok((recorded? == Recorded::New).then_some(id))
    }

    /// The key's batch `id`, found: another body → 409 `idempotency_key_reused`; still being
    /// written → 409 `in_progress`; created but its fan-out never queued (`failed`) → started
    /// now; created → its first answer (the fan-out queued again if it may not have been:
    /// running it twice is harmless); abandoned while being written → to be taken over.
    async fn existing(
        &self,
        draft: &Draft<'_>,
        key: &str,
        id: &str,
        found: Meta,
    ) -> Result<Existing, ApiError> {
        let appid = draft.appid;
        if found.hash != draft.hash {
            return Err(ApiError::Conflict {
                code: "idempotency_key_reused",
                message: format!("Idempotency-Key {key} was used with a different batch"),
            });
        }
        let state = match found.state {
            BatchState::Writing if found.created_at + WRITING_STALE_SECS > draft.now => {
                return Err(in_progress(format!(
                    "batch {id} is still being created; retry later"
                )));
            }
            BatchState::Writing => return Ok(Existing::Abandoned(found.version)),
            BatchState::Failed => {
                // Created, but its fan-out could not be queued: this retry starts it.
                let op = found.change_op(appid, id, attrs([("state", BatchState::Running.into())]));
                let listed = unfinished_op(appid, id, draft.now);
                self.store.record(&[op, listed], draft.now).await?;
                self.start_fanout(appid, id).await?;
                BatchState::Running
            }
            BatchState::Running if !found.fanout_done => {
                self.queue_fanout(appid, id).await?;
                BatchState::Running
            }
            state => state,
        };
        Ok(Existing::Answer(created_body(
            id,
            found.audience,
            found.total,
            found.duplicates,
            state,
        )))
    }
}
