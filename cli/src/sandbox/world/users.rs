//! An app's users: who follows it (in a stable order, for `user/get`'s pages), their
//! unionids, following and unfollowing, and the user-info calls.

use super::{EmulatedApp, Push, World, WxErr, wx_err};
use serde_json::{Value, json};
use std::collections::HashMap;
use wxpush_shared::AppKind;

pub const FOLLOWERS_PER_PAGE: usize = 10_000;
pub const BATCHGET_MAX: usize = 100;

#[derive(Clone, Debug)]
pub struct User {
    pub unionid: Option<String>,
    pub subscribed: bool,
    pub subscribe_time: i64,
    /// The user blocked the account's template messages: they end `failed:user block`.
    pub blocks_templates: bool,
}

#[derive(Default)]
pub(super) struct AppUsers {
    order: Vec<String>,
    by_openid: HashMap<String, User>,
}

impl World {
    pub fn add_user(&mut self, appid: &str, openid: &str, user: User) {
        let users = self.users.entry(appid.to_string()).or_default();
        if users.by_openid.insert(openid.to_string(), user).is_none() {
            users.order.push(openid.to_string());
        }
    }

    pub fn has_user(&self, appid: &str, openid: &str) -> bool {
        self.user(appid, openid).is_some()
    }

    pub(super) fn user(&self, appid: &str, openid: &str) -> Option<&User> {
        self.users.get(appid).and_then(|u| u.by_openid.get(openid))
    }

    /// The app's users in the order they were added (followers or not).
    pub(super) fn users_in_order(&self, appid: &str) -> impl Iterator<Item = (&str, &User)> {
        self.users.get(appid).into_iter().flat_map(|u| {
            u.order
                .iter()
                .filter_map(|o| u.by_openid.get(o).map(|user| (o.as_str(), user)))
        })
    }

    /// A user follows (a new user is added, with `unionid`) or unfollows the official
    /// account, and WeChat pushes `subscribe` / `unsubscribe`.
    pub fn set_following(
        &mut self,
        appid: &str,
        openid: &str,
        unionid: Option<String>,
        follow: bool,
        now: i64,
    ) -> Result<(), String> {
        if self.apps.get(appid).map(|a| a.kind) != Some(AppKind::OfficialAccount) {
            return Err(format!(
                "{appid} is not an official account the sandbox knows"
            ));
        }
        let users = self.users.entry(appid.to_string()).or_default();
        match users.by_openid.get_mut(openid) {
            Some(user) => {
                user.subscribed = follow;
                if follow {
                    user.subscribe_time = now;
                }
                if user.unionid.is_none() {
                    user.unionid = unionid;
                }
            }
            None if follow => self.add_user(
                appid,
                openid,
                User {
                    unionid,
                    subscribed: true,
                    subscribe_time: now,
                    blocks_templates: false,
                },
            ),
            None => return Err(format!("{openid} is not a user of {appid}")),
        }
        if follow {
            self.interact(appid, openid, super::Interaction::Follow, now);
        }
        self.pending_pushes
            .push(Push::follow(appid, openid, follow, now));
        Ok(())
    }

    pub fn user_get(
        &mut self,
        app: &EmulatedApp,
        next: Option<&str>,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/get", now)?;
        let empty = AppUsers::default();
        let users = self.users.get(&app.appid).unwrap_or(&empty);
        let following = |o: &&String| users.by_openid.get(*o).is_some_and(|u| u.subscribed);
        // `next_openid` is a place in the account's (stable) user order, so it stays valid
        // when that user unfollows between two pages.
        let start = match next.filter(|n| !n.is_empty()) {
            None => 0,
            Some(n) => users
                .order
                .iter()
                .position(|o| o == n)
                .map(|i| i + 1)
                .ok_or_else(|| wx_err(40003, "invalid next_openid"))?,
        };
        let total = users.order.iter().filter(following).count();
        let page: Vec<&String> = users.order[start..]
            .iter()
            .filter(following)
            .take(self.page_size)
            .collect();
        let mut answer = json!({"total": total, "count": page.len()});
        if page.is_empty() {
            answer["next_openid"] = json!("");
        } else {
            answer["next_openid"] = json!(page.last());
            answer["data"] = json!({"openid": page});
        }
        Ok(answer)
    }

    fn user_info_value(&self, appid: &str, openid: &str) -> Result<Value, WxErr> {
        let user = self
            .user(appid, openid)
            .ok_or_else(|| wx_err(40003, "invalid openid"))?;
        if !user.subscribed {
            return Ok(json!({"subscribe": 0, "openid": openid}));
        }
        let mut v = json!({
            "subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": user.subscribe_time,
            "remark": "", "groupid": 0, "tagid_list": [], "subscribe_scene": "ADD_SCENE_SEARCH",
            "qr_scene": 0, "qr_scene_str": "",
        });
        if let Some(u) = &user.unionid {
            v["unionid"] = json!(u);
        }
        Ok(v)
    }

    pub fn user_info(
        &mut self,
        app: &EmulatedApp,
        openid: Option<&str>,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/info", now)?;
        self.user_info_value(&app.appid, openid.unwrap_or(""))
    }

    pub fn user_info_batch(
        &mut self,
        app: &EmulatedApp,
        body: &Value,
        now: i64,
    ) -> Result<Value, WxErr> {
        if app.kind != AppKind::OfficialAccount {
            return Err(wx_err(48001, "api unauthorized"));
        }
        self.charge_quota(&app.appid, "/cgi-bin/user/info/batchget", now)?;
        let list = body
            .get("user_list")
            .and_then(Value::as_array)
            .ok_or_else(|| wx_err(47001, "data format error"))?;
        if list.is_empty() || list.len() > BATCHGET_MAX {
            return Err(wx_err(40032, "invalid openid list size"));
        }
        let infos = list
            .iter()
            .map(|e| {
                self.user_info_value(
                    &app.appid,
                    e.get("openid").and_then(Value::as_str).unwrap_or(""),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({"user_info_list": infos}))
    }
}
