//! `GET /v1/apps/{appid}/events`: what WeChat pushed and wxpush recorded, newest first, a page
//! at a time ([`crate::listing`]), each with its forwarding state: `off` (recorded while
//! forwarding was off), `pending` (its outbox row waits: attempts, the next one, the last
//! error), `failed` (given up, in the dead-letter rows until a redrive) or `forwarded`.
//! An event's `id` is the `event_id` its forwarded copy carries.

use crate::error::ApiError;
use crate::forward::event_id;
use crate::listing::{self, ListQuery};
use crate::secrets::SecretStore;
use crate::store::{Attrs, ItemKey, ItemRead, StateStore, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;

/// The recorded events of every app, as the API lists them.
pub struct RecordedEvents {
    store: Arc<dyn StateStore>,
    secrets: Arc<dyn SecretStore>,
}

impl RecordedEvents {
    pub fn new(store: Arc<dyn StateStore>, secrets: Arc<dyn SecretStore>) -> RecordedEvents {
        RecordedEvents { store, secrets }
    }

    /// One page of the app's events and the cursor of the next (`null` on the last).
    pub async fn list(&self, appid: &str, query: &ListQuery) -> Result<Value, ApiError> {
        self.secrets.app(appid).await?;
        let page = listing::page(self.store.as_ref(), listing::EVENTS, appid, query).await?;
        let events = listing::read_each(page.strings("key"), |key| async move {
            self.event(appid, &key).await
        })
        .await?;
        Ok(json!({"events": events, "next_cursor": page.next_cursor}))
    }

    /// The event recorded under dedupe key `key`; `None` once its record is gone.
    async fn event(&self, appid: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let Some(rec) = self.store.get(&ItemKey::event(appid, key)).await? else {
            return Ok(None);
        };
        Ok(Some(json!({
            "id": event_id(appid, key),
            "msg_type": rec.text("msg_type"),
            "event": rec.text("event"),
            "openid": rec.text("from_user"),
            "create_time": rec.num("create_time"),
            "received_at": rec.num("received_at"),
            "forwarding": self.forwarding(appid, key, &rec).await?,
        })))
    }

    /// Where the event's forwarding stands, from its outbox rows.
    async fn forwarding(&self, appid: &str, key: &str, rec: &Attrs) -> Result<Value, StoreError> {
        if !rec.flag("forwarded") {
            return Ok(json!({"state": "off"}));
        }
        let full = rec.text("dedupe_key").unwrap_or(key);
        let waiting = |state: &str, row: &Attrs| {
            json!({
                "state": state,
                "attempts": row.num("attempts").unwrap_or(0),
                "next_attempt_at": row.num("next_attempt_at"),
                "last_error": row.text("last_error"),
            })
        };
        if let Some(row) = self.store.get(&ItemKey::outbox(appid, full)).await? {
            return Ok(waiting("pending", &row));
        }
        if let Some(row) = self.store.get(&ItemKey::outbox_dead(appid, full)).await? {
            return Ok(waiting("failed", &row));
        }
        Ok(json!({"state": "forwarded"}))
    }
}
