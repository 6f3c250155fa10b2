//! The cached listing of an app's templates: one store item per app, shared by every
//! instance, and a memo of a few seconds in each; read from WeChat when it is missing, stale
//! for `GET`, or changed by an add or a delete.

use super::{FRESH_SECS, KEPT_SECS, MEMO, TemplateInfo, TemplateKind, Templates, keys_of};
use crate::app::{AppConfig, AppKind};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, ItemKey, ItemRead, Op, attrs};
use crate::token_retry::{WeChatOrApi, with_token};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

/// A listing as cached: when it was read from WeChat, and what it said.
#[derive(Clone, Debug)]
pub(super) struct Listing {
    fetched_at: i64,
    pub(super) templates: Arc<Vec<TemplateInfo>>,
}

fn key(appid: &str) -> ItemKey {
    ItemKey::new(format!("tmpl#{appid}"), "listing")
}

impl Templates {
    /// `GET /v1/apps/{appid}/templates[?refresh=true]`.
    pub async fn list(&self, appid: &str, refresh: bool) -> Result<Value, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        let cached = if refresh {
            None
        } else {
            self.stored(appid)
                .await?
                .filter(|l| now_unix() - l.fetched_at < FRESH_SECS)
        };
        let listing = match cached {
            Some(l) => l,
            None => self.fetch(&app).await?,
        };
        Ok(json!({
            "templates": listing.templates.as_ref(),
            "fetched_at": listing.fetched_at,
        }))
    }

    /// The template `id` of `appid` if a cached listing (up to [`KEPT_SECS`] old) has it.
    /// Never calls WeChat; a store that cannot be read counts as "not known" (the send goes on
    /// and WeChat judges it).
    pub async fn known(&self, appid: &str, id: &str) -> Option<TemplateInfo> {
        match self.stored(appid).await {
            Ok(Some(l)) => l.templates.iter().find(|t| t.id == id).cloned(),
            Ok(None) => None,
            Err(e) => {
                warn!(appid, error = %e, "template listing unreadable; sending unchecked");
                None
            }
        }
    }

    pub(super) async fn find(
        &self,
        appid: &str,
        id: &str,
    ) -> Result<Option<TemplateKind>, ApiError> {
        Ok(self
            .stored(appid)
            .await?
            .and_then(|l| l.templates.iter().find(|t| t.id == id).map(|t| t.kind)))
    }

    /// The cached listing: this instance's memo, else the store item.
    async fn stored(&self, appid: &str) -> Result<Option<Listing>, ApiError> {
        if let Some((at, l)) = self.memo().get(appid)
            && at.elapsed() < MEMO
        {
            return Ok(l.clone());
        }
        let item = self.store.get(&key(appid)).await?;
        let listing = item.and_then(|a| {
            let fetched_at = a.num("fetched_at")?;
            let templates = serde_json::from_str::<Vec<TemplateInfo>>(a.text("templates")?).ok()?;
            (now_unix() - fetched_at < KEPT_SECS).then(|| Listing {
                fetched_at,
                templates: Arc::new(templates),
            })
        });
        self.memo()
            .insert(appid.to_string(), (Instant::now(), listing.clone()));
        Ok(listing)
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<Listing>)>> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the listing from WeChat and caches it. An official account lists both families;
    /// one without 订阅通知 (48001 from `gettemplate`) just has no subscribe templates.
    pub(super) async fn fetch(&self, app: &AppConfig) -> Result<Listing, ApiError> {
        let appid = app.appid.as_str();
        let mut templates = Vec::new();
        if app.kind == AppKind::OfficialAccount {
            let private = with_token(&self.tokens, appid, |wechat, token| async move {
                wechat.private_templates(&token).await
            })
            .await
            .map_err(|e| e.into_api(appid))?;
            templates.extend(private.into_iter().map(|t| TemplateInfo {
                keys: keys_of(&t.content),
                id: t.template_id,
                kind: TemplateKind::Template,
                title: t.title,
                content: t.content,
                example: t.example,
            }));
        }
        let subscribe = match with_token(&self.tokens, appid, |wechat, token| async move {
            wechat.subscribe_templates(&token).await
        })
        .await
        {
            Ok(list) => list,
            Err(WeChatOrApi::WeChat(e))
                if app.kind == AppKind::OfficialAccount && e.errcode() == Some(48001) =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into_api(appid)),
        };
        templates.extend(subscribe.into_iter().map(|t| TemplateInfo {
            keys: keys_of(&t.content),
            id: t.pri_tmpl_id,
            kind: if t.kind == 3 {
                TemplateKind::SubscribeLongTerm
            } else {
                TemplateKind::SubscribeOnce
            },
            title: t.title,
            content: t.content,
            example: t.example,
        }));
        let now = now_unix();
        let listing = Listing {
            fetched_at: now,
            templates: Arc::new(templates),
        };
        let encoded = serde_json::to_string(listing.templates.as_ref())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let op = Op::Set {
            key: key(appid),
            attrs: attrs([
                ("templates", encoded.into()),
                ("fetched_at", Attr::N(now)),
                ("ttl", Attr::N(now + KEPT_SECS)),
            ]),
        };
        if let Err(e) = self.store.record(&[op], now).await {
            warn!(appid, error = %e, "could not cache the template listing");
        }
        self.memo()
            .insert(appid.to_string(), (Instant::now(), Some(listing.clone())));
        Ok(listing)
    }

    /// After an add or a delete the cached listing is wrong: it is dropped and read again.
    /// When the re-read fails, the dropped listing stays dropped (the next `GET` reads it).
    pub(super) async fn refetch_after_change(&self, app: &AppConfig) {
        self.memo().remove(&app.appid);
        if let Err(e) = self.fetch(app).await {
            warn!(appid = %app.appid, error = %e, "template listing not re-read after a change; dropping it");
            let now = now_unix();
            let op = Op::Set {
                key: key(&app.appid),
                attrs: attrs([
                    ("invalidated_at", Attr::N(now)),
                    ("ttl", Attr::N(now + KEPT_SECS)),
                ]),
            };
            if let Err(e) = self.store.record(&[op], now).await {
                warn!(appid = %app.appid, error = %e, "could not drop the cached template listing");
            }
        }
    }
}
