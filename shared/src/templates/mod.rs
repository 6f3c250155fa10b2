//! An app's templates, in one shape for every kind (docs/wechat.md#templates-and-subscribe-notifications): an official account's
//! template messages (`/cgi-bin/template/*`) and subscribe templates (`/wxaapi/newtmpl/*`:
//! a mini program's subscribe messages and an official account's 订阅通知).
//!
//! The listing is cached per app in the state store (one item, shared by every instance)
//! and for a few seconds in memory. A listing younger than [`FRESH_SECS`] answers `GET`
//! without WeChat; `?refresh=true`, an add and a delete re-read it. Sends check their `data`
//! keys against a cached listing up to [`KEPT_SECS`] old without ever calling WeChat for it:
//! a template's keys never change under its id, and a template the listing does not have is
//! sent as before (WeChat judges it).
//!
//! `listing.rs` holds the cache, `changes.rs` the add and the delete (with their body in
//! `new_template.rs`), `keys.rs` a template's keys and a send's `data` checked against them,
//! `blocked.rs` the messages of a template WeChat intercepted.

mod blocked;
mod changes;
mod keys;
mod listing;
mod new_template;
#[cfg(test)]
mod tests;

use crate::error::ApiError;
use crate::store::StateStore;
use crate::token::TokenManager;
use listing::Listing;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use keys::{check_data_keys, keys_of};

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

pub struct Templates {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
    /// What this instance last read from the store per app (`None`: no listing there), so a
    /// stream of sends costs one store read per app every [`MEMO`], not one each.
    memo: Mutex<HashMap<String, (Instant, Option<Listing>)>>,
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

impl Templates {
    pub fn new(tokens: Arc<TokenManager>, store: Arc<dyn StateStore>) -> Templates {
        Templates {
            tokens,
            store,
            memo: Mutex::new(HashMap::new()),
        }
    }
}
