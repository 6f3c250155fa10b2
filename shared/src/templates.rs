//! An app's templates, in one shape for every kind (facts.md §9): an official account's
//! template messages (`/cgi-bin/template/*`) and subscribe templates (`/wxaapi/newtmpl/*`:
//! a mini program's subscribe messages and an official account's 订阅通知).
//!
//! The listing is cached per app in the state store (one item, shared by every instance)
//! and for a few seconds in memory. A listing younger than [`FRESH_SECS`] answers `GET`
//! without WeChat; `?refresh=true`, an add and a delete re-read it. Sends check their `data`
//! keys against a cached listing up to [`KEPT_SECS`] old without ever calling WeChat for it:
//! a template's keys never change under its id, and a template the listing does not have is
//! sent as before (WeChat judges it).

use crate::app::{AppConfig, AppKind};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::manage::{WeChatOrApi, with_token};
use crate::store::{Attr, ItemKey, Op, StateStore, attrs};
use crate::token::TokenManager;
use crate::wechat::DataValue;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a cached listing answers `GET /templates` without asking WeChat.
pub const FRESH_SECS: i64 = 300;
/// How long a cached listing is kept for checking sends (and the store item lives).
pub const KEPT_SECS: i64 = 86_400;
/// How long an instance reuses what it read from the store before reading it again.
pub const MEMO: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// An official account's template message (`template/send`).
    Template,
    /// A one-time subscribe template (`type` 2).
    SubscribeOnce,
    /// A long-term subscribe template (`type` 3).
    SubscribeLongTerm,
}

/// One template as `GET /v1/apps/{appid}/templates` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    pub id: String,
    pub kind: TemplateKind,
    pub title: String,
    pub keys: Vec<String>,
    pub content: String,
    pub example: String,
}

/// The keys of a template's `content`, in order: `{{thing1.DATA}}` → `thing1`.
pub fn keys_of(content: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        if let Some(key) = rest[..end].trim().strip_suffix(".DATA")
            && !key.is_empty()
            && !keys.iter().any(|k| k == key)
        {
            keys.push(key.to_string());
        }
        rest = &rest[end + 2..];
    }
    keys
}

/// The legacy header and footer of template messages: no longer shown since 2023-05-04
/// (facts.md §4.1), so neither required nor refused.
const LEGACY_KEYS: &[&str] = &["first", "remark"];

/// `data` against the template's keys: every key needs a value and no other key is taken.
pub fn check_data_keys(
    template: &TemplateInfo,
    data: &BTreeMap<String, DataValue>,
) -> Result<(), ApiError> {
    let legacy = |k: &str| template.kind == TemplateKind::Template && LEGACY_KEYS.contains(&k);
    if let Some(missing) = template
        .keys
        .iter()
        .find(|k| !legacy(k) && !data.contains_key(*k))
    {
        return Err(ApiError::Validation {
            field: format!("data.{missing}"),
            message: format!(
                "is required by template {} (keys: {})",
                template.id,
                template.keys.join(", ")
            ),
        });
    }
    if let Some(unknown) = data
        .keys()
        .find(|k| !legacy(k) && !template.keys.contains(k))
    {
        return Err(ApiError::Validation {
            field: format!("data.{unknown}"),
            message: format!(
                "is not a key of template {} (keys: {})",
                template.id,
                template.keys.join(", ")
            ),
        });
    }
    Ok(())
}

/// A listing as cached: when it was read from WeChat, and what it said.
#[derive(Clone, Debug)]
struct Listing {
    fetched_at: i64,
    templates: Arc<Vec<TemplateInfo>>,
}

pub struct Templates {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    /// What this instance last read from the store per app (`None`: no listing there), so a
    /// stream of sends costs one store read per app every [`MEMO`], not one each.
    memo: Mutex<HashMap<String, (Instant, Option<Listing>)>>,
}

fn key(appid: &str) -> ItemKey {
    ItemKey::new(format!("tmpl#{appid}"), "listing")
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// A template id as WeChat issues them (and as a path segment may carry one).
pub fn is_template_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What `POST /v1/apps/{appid}/templates` asks for.
enum NewTemplate {
    Template {
        short: String,
        keyword_names: Vec<String>,
    },
    Subscribe {
        tid: String,
        kid_list: Vec<i64>,
        scene_desc: String,
    },
}

fn parse_new(body: &[u8]) -> Result<NewTemplate, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    let allowed: &[&str] = if obj.contains_key("template_id_short") {
        &["template_id_short", "keyword_names"]
    } else if obj.contains_key("tid") {
        &["tid", "kid_list", "scene_desc"]
    } else {
        return Err(invalid(
            "template_id_short",
            "give {\"template_id_short\", \"keyword_names\"} (template messages) or {\"tid\", \"kid_list\", \"scene_desc\"} (subscribe templates)",
        ));
    };
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(extra, "is not a field of this kind of template"));
    }
    if let Some(short) = obj.get("template_id_short") {
        let short = short
            .as_str()
            .filter(|s| is_template_id(s) && s.len() <= 64)
            .ok_or_else(|| {
                invalid(
                    "template_id_short",
                    "must be the library template's number, e.g. TM00015",
                )
            })?;
        let names = obj
            .get("keyword_names")
            .and_then(Value::as_array)
            .filter(|l| (1..=10).contains(&l.len()))
            .ok_or_else(|| {
                invalid(
                    "keyword_names",
                    "is required: 1-10 keyword names of the library template",
                )
            })?;
        let mut keyword_names = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            match n.as_str() {
                Some(s) if !s.trim().is_empty() && s.chars().count() <= 20 => {
                    keyword_names.push(s.to_string())
                }
                _ => {
                    return Err(invalid(
                        &format!("keyword_names[{i}]"),
                        "must be a keyword name of at most 20 characters",
                    ));
                }
            }
        }
        return Ok(NewTemplate::Template {
            short: short.to_string(),
            keyword_names,
        });
    }
    let tid = match obj.get("tid") {
        Some(Value::String(t))
            if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_digit()) =>
        {
            t.clone()
        }
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        _ => {
            return Err(invalid(
                "tid",
                "must be the public template's number (from getpubtemplatetitles)",
            ));
        }
    };
    // WeChat combines 2-5 keywords into a subscribe template.
    let kid_list: Vec<i64> = obj
        .get("kid_list")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|k| k.as_i64().filter(|k| *k > 0))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(None)
        .filter(|l| (2..=5).contains(&l.len()))
        .ok_or_else(|| invalid("kid_list", "must list 2-5 keyword ids (positive integers)"))?;
    let scene_desc = match obj.get("scene_desc") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 15 => s.clone(),
        Some(_) => return Err(invalid("scene_desc", "at most 15 characters")),
    };
    Ok(NewTemplate::Subscribe {
        tid,
        kid_list,
        scene_desc,
    })
}

impl Templates {
    pub fn new(tokens: Arc<TokenManager>, store: Arc<dyn StateStore>) -> Templates {
        Templates {
            tokens,
            store,
            memo: Mutex::new(HashMap::new()),
        }
    }

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

    /// `POST /v1/apps/{appid}/templates` → `201 {"id"}`; the cached listing is re-read.
    pub async fn add(&self, appid: &str, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        let new = parse_new(body)?;
        let id = match new {
            NewTemplate::Template {
                short,
                keyword_names,
            } => {
                if app.kind != AppKind::OfficialAccount {
                    return Err(invalid(
                        "template_id_short",
                        format!("app {appid}: template messages belong to official accounts; a mini program adds subscribe templates (tid, kid_list)"),
                    ));
                }
                with_token(&self.tokens, appid, |wechat, token| {
                    let (short, names) = (short.clone(), keyword_names.clone());
                    async move { wechat.add_private_template(&token, &short, &names).await }
                })
                .await
            }
            NewTemplate::Subscribe {
                tid,
                kid_list,
                scene_desc,
            } => {
                with_token(&self.tokens, appid, |wechat, token| {
                    let (tid, kids, scene) = (tid.clone(), kid_list.clone(), scene_desc.clone());
                    async move { wechat.add_subscribe_template(&token, &tid, &kids, &scene).await }
                })
                .await
            }
        }
        .map_err(|e| management_error(appid, e))?;
        info!(appid, template_id = %id, "template added");
        self.refetch_after_change(&app).await;
        Ok((StatusCode::CREATED, json!({ "id": id })))
    }

    /// `DELETE /v1/apps/{appid}/templates/{id}` → `204`; the cached listing is re-read.
    pub async fn delete(&self, appid: &str, id: &str) -> Result<(), ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        // Which family the id belongs to: the cached listing says, else a fresh one.
        let mut found = self.find(appid, id).await?;
        if found.is_none() {
            found = self
                .fetch(&app)
                .await?
                .templates
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.kind);
        }
        let kind = found.ok_or_else(|| ApiError::Missing {
            code: "template_not_found",
            message: format!("app {appid} has no template {id}"),
        })?;
        let id_owned = id.to_string();
        let result = if kind == TemplateKind::Template {
            with_token(&self.tokens, appid, |wechat, token| {
                let id = id_owned.clone();
                async move { wechat.delete_private_template(&token, &id).await }
            })
            .await
        } else {
            with_token(&self.tokens, appid, |wechat, token| {
                let id = id_owned.clone();
                async move { wechat.delete_subscribe_template(&token, &id).await }
            })
            .await
        };
        result.map_err(|e| management_error(appid, e))?;
        info!(appid, template_id = id, "template deleted");
        self.refetch_after_change(&app).await;
        Ok(())
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

    async fn find(&self, appid: &str, id: &str) -> Result<Option<TemplateKind>, ApiError> {
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
            let fetched_at = match a.get("fetched_at") {
                Some(Attr::N(n)) => *n,
                _ => return None,
            };
            let templates = match a.get("templates") {
                Some(Attr::S(s)) => serde_json::from_str::<Vec<TemplateInfo>>(s).ok()?,
                _ => return None,
            };
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
    async fn fetch(&self, app: &AppConfig) -> Result<Listing, ApiError> {
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
                ("templates", Attr::S(encoded)),
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
    async fn refetch_after_change(&self, app: &AppConfig) {
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

/// Template management refusals: 45026 (an official account holds 25 private templates at
/// most) and 40037 (no such template) get their own codes; the rest map as any call.
fn management_error(appid: &str, e: WeChatOrApi) -> ApiError {
    match e {
        WeChatOrApi::WeChat(w) if w.errcode() == Some(45026) => ApiError::WeChat {
            code: "template_limit_reached",
            status: StatusCode::CONFLICT,
            message: format!(
                "app {appid} holds the most private templates WeChat allows (25): delete one first ({w})"
            ),
            errcode: Some(45026),
        },
        WeChatOrApi::WeChat(w) if w.errcode() == Some(40037) => ApiError::WeChat {
            code: "template_not_found",
            status: StatusCode::NOT_FOUND,
            message: format!("app {appid}: WeChat does not know this template ({w})"),
            errcode: Some(40037),
        },
        WeChatOrApi::WeChat(w) if w.errcode() == Some(47003) => ApiError::WeChat {
            code: "invalid_template_request",
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("app {appid}: WeChat refused the template's parameters ({w})"),
            errcode: Some(47003),
        },
        other => other.into_api(appid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(kind: TemplateKind, content: &str) -> TemplateInfo {
        TemplateInfo {
            id: "T1".into(),
            kind,
            title: "t".into(),
            keys: keys_of(content),
            content: content.into(),
            example: String::new(),
        }
    }

    fn data(keys: &[&str]) -> BTreeMap<String, DataValue> {
        keys.iter()
            .map(|k| {
                (
                    k.to_string(),
                    DataValue {
                        value: "v".into(),
                        color: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn keys_come_from_content() {
        assert_eq!(
            keys_of(
                "{{first.DATA}}\n订单:{{character_string1.DATA}}\n时间:{{ time2.DATA }}\n{{remark.DATA}}{{broken"
            ),
            ["first", "character_string1", "time2", "remark"]
        );
        assert!(keys_of("no keys").is_empty());
    }

    #[test]
    fn missing_and_unknown_keys_are_named() {
        let t = tpl(TemplateKind::SubscribeOnce, "{{thing1.DATA}}{{time2.DATA}}");
        assert!(check_data_keys(&t, &data(&["thing1", "time2"])).is_ok());
        let field = |r: Result<(), ApiError>| match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(check_data_keys(&t, &data(&["thing1"]))), "data.time2");
        assert_eq!(
            field(check_data_keys(&t, &data(&["thing1", "time2", "thing3"]))),
            "data.thing3"
        );
        // first/remark are optional on template messages either way.
        let old = tpl(
            TemplateKind::Template,
            "{{first.DATA}}{{keyword1.DATA}}{{remark.DATA}}",
        );
        assert!(check_data_keys(&old, &data(&["keyword1"])).is_ok());
        let new = tpl(TemplateKind::Template, "{{thing1.DATA}}");
        assert!(check_data_keys(&new, &data(&["thing1", "remark"])).is_ok());
        assert_eq!(
            field(check_data_keys(&t, &data(&["thing1", "time2", "first"]))),
            "data.first"
        );
    }

    #[test]
    fn add_bodies() {
        assert!(matches!(
            parse_new(
                r#"{"template_id_short": "TM00015", "keyword_names": ["订单号"]}"#.as_bytes()
            ),
            Ok(NewTemplate::Template { .. })
        ));
        assert!(matches!(
            parse_new(r#"{"tid": "1234", "kid_list": [1, 2], "scene_desc": "发货"}"#.as_bytes()),
            Ok(NewTemplate::Subscribe { .. })
        ));
        let field = |b: &[u8]| match parse_new(b) {
            Err(ApiError::Validation { field, .. }) => field,
            _ => panic!(),
        };
        assert_eq!(field(br#"{"template_id_short": "TM1"}"#), "keyword_names");
        assert_eq!(field(br#"{"tid": "12", "kid_list": [1]}"#), "kid_list");
        assert_eq!(field(br#"{"tid": "x1", "kid_list": [1, 2]}"#), "tid");
        assert_eq!(field(br#"{}"#), "template_id_short");
    }
}
