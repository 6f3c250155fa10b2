//! The phones the console draws (`GET /sandbox/phones`): each emulated user of each app as
//! their WeChat shows it — follow state, the customer-service window, the subscriptions
//! they accepted, and their chat with the app, newest last — plus each app's templates (what
//! a user can accept). Read only; a page of users at a time.

use super::inbox::shown;
use super::{User, World};
use serde_json::{Value, json};
use std::collections::HashMap;
use wxpush_shared::AppKind;

/// Messages shown per phone: the latest ones.
pub const INBOX_SHOWN: usize = 20;

/// Which phones: of one app or all, from the `start`th user on, at most `limit`.
pub struct PhoneQuery<'a> {
    pub appid: Option<&'a str>,
    pub start: usize,
    pub limit: usize,
}

impl World {
    /// A page of phones, the apps they belong to, and where the next page starts.
    pub fn phones(&self, q: &PhoneQuery, now: i64) -> Value {
        let users: Vec<(&str, &str, &User)> = self
            .apps
            .keys()
            .filter(|a| q.appid.is_none_or(|only| only == a.as_str()))
            .flat_map(|a| {
                self.users_in_order(a)
                    .map(move |(openid, user)| (a.as_str(), openid, user))
            })
            .skip(q.start)
            .take(q.limit + 1)
            .collect();
        let more = users.len() > q.limit;
        let page = &users[..users.len().min(q.limit)];
        let mut inboxes = self.inboxes(page);
        let phones: Vec<Value> = page
            .iter()
            .map(|&(appid, openid, user)| {
                let (total, inbox) = inboxes.remove(&(appid, openid)).unwrap_or_default();
                let mut phone = self.phone(appid, openid, user, now);
                phone["inbox_total"] = json!(total);
                phone["inbox"] = json!(inbox);
                phone
            })
            .collect();
        json!({
            "now": now,
            "apps": self.apps_shown(q.appid),
            "phones": phones,
            "next_cursor": more.then(|| (q.start + q.limit).to_string()),
        })
    }

    /// One user's state, without the chat.
    fn phone(&self, appid: &str, openid: &str, user: &User, now: i64) -> Value {
        let official = self.apps.get(appid).map(|a| a.kind) == Some(AppKind::OfficialAccount);
        let window: Vec<Value> = self
            .open_allowances(appid, openid, now)
            .into_iter()
            .map(|(kind, closes_at, left)| {
                json!({"opened_by": kind.as_str(), "closes_at": closes_at, "replies_left": left})
            })
            .collect();
        let mut subscriptions: Vec<Value> = self
            .grants
            .iter()
            .filter(|((a, o, _), left)| a == appid && o == openid && **left > 0)
            .map(|((_, _, template), left)| {
                let known = self
                    .templates
                    .get(appid)
                    .and_then(|l| l.iter().find(|t| &t.id == template));
                let long_term = known.is_some_and(|t| t.kind == "subscribe_long_term");
                json!({"template_id": template, "title": known.map(|t| t.title.clone()),
                       "left": left, "long_term": long_term})
            })
            .collect();
        subscriptions.sort_by(|a, b| a["template_id"].as_str().cmp(&b["template_id"].as_str()));
        json!({
            "appid": appid,
            "openid": openid,
            "unionid": user.unionid,
            "following": official.then_some(user.subscribed),
            "blocks_templates": user.blocks_templates,
            "service_window": window,
            "subscriptions": subscriptions,
        })
    }

    /// For each user of `page`: how many messages they got, and the last [`INBOX_SHOWN`] as
    /// their WeChat shows them, oldest first. One pass over the delivered messages.
    fn inboxes<'a>(
        &'a self,
        page: &[(&'a str, &'a str, &'a User)],
    ) -> HashMap<(&'a str, &'a str), (usize, Vec<Value>)> {
        let mut inboxes: HashMap<(&str, &str), (usize, Vec<Value>)> = page
            .iter()
            .map(|&(appid, openid, _)| ((appid, openid), (0, Vec::new())))
            .collect();
        for m in self.messages.iter().rev() {
            let (Some(appid), Some(touser)) = (m["appid"].as_str(), m["touser"].as_str()) else {
                continue;
            };
            // A template message to a user who refuses them: WeChat reports it, the user
            // never sees it.
            if m["not_shown"] == true {
                continue;
            }
            if let Some((total, shown_ones)) = inboxes.get_mut(&(appid, touser)) {
                *total += 1;
                if shown_ones.len() < INBOX_SHOWN {
                    let id = m["body"]["template_id"].as_str().unwrap_or_default();
                    let path = m["path"].as_str().unwrap_or_default();
                    shown_ones.push(shown(m, self.template_for(appid, path, id)));
                }
            }
        }
        for (_, shown_ones) in inboxes.values_mut() {
            shown_ones.reverse();
        }
        inboxes
    }

    /// The apps (one, or all) with their kind and templates.
    fn apps_shown(&self, only: Option<&str>) -> Vec<Value> {
        self.apps
            .values()
            .filter(|a| only.is_none_or(|o| o == a.appid))
            .map(|a| {
                let templates: Vec<Value> = self
                    .templates
                    .get(&a.appid)
                    .into_iter()
                    .flatten()
                    .map(
                        |t| json!({"id": t.id, "kind": t.kind, "title": t.title, "keys": t.keys()}),
                    )
                    .collect();
                json!({"appid": a.appid, "kind": a.kind.as_str(), "templates": templates})
            })
            .collect()
    }
}
