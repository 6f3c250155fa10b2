//! `GET /v1/apps/{appid}/users/{openid}`: one app's view of one user — follow state and
//! unionid, the customer-service window, every template's grant, and what they were sent
//! today.

use super::UserState;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, ItemKey, ItemRead};
use crate::templates::{TemplateKind, Templates};
use serde_json::{Value, json};

/// An openid as the user route takes it: 1 to 128 of `[A-Za-z0-9_-]` (WeChat's are 28).
pub fn is_openid(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl UserState {
    /// The user view; `unknown_user` when wxpush knows nothing of the user (no account, no
    /// interaction, no grant, nothing sent today). `templates` tells a long-term template
    /// from a one-time one (its cached listing; without one, a grant reads as one-time).
    pub async fn view(
        &self,
        appid: &str,
        openid: &str,
        templates: &Templates,
    ) -> Result<Value, ApiError> {
        let now = now_unix();
        let account = self.store.get(&ItemKey::account(appid, openid)).await?;
        let window = self.window(appid, openid).await?;
        let grants = self.grants(appid, openid).await?;
        let sent_today = self.sent_today(appid, openid, now).await?;
        if account.is_none() && !window.known() && grants.is_empty() && sent_today == 0 {
            return Err(ApiError::Missing {
                code: "unknown_user",
                message: format!("app {appid} knows nothing of openid {openid}"),
            });
        }
        let mut subscriptions = Vec::with_capacity(grants.len());
        for g in &grants {
            let long_term = templates
                .known(appid, &g.template_id)
                .await
                .is_some_and(|t| t.kind == TemplateKind::SubscribeLongTerm);
            subscriptions.push(g.to_json(long_term));
        }
        // Not `flag`: a missing `subscribed` is unknown (null), not false.
        let subscribed = account.as_ref().and_then(|a| match a.get("subscribed") {
            Some(Attr::Bool(b)) => Some(*b),
            _ => None,
        });
        let mut view = json!({
            "appid": appid,
            "openid": openid,
            "subscribed": subscribed,
            "service_window": window.to_json(now),
            "subscriptions": subscriptions,
            "sent_today": sent_today,
        });
        if let Some(u) = account.as_ref().and_then(|a| a.string("unionid")) {
            view["unionid"] = json!(u);
        }
        Ok(view)
    }
}
