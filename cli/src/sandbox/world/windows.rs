//! The customer-service window as WeChat keeps it (docs/wechat.md, Customer-service window):
//! each interaction of a user opens an allowance — a message 5 in 48 hours; a menu click, a
//! follow or a scan 3 in a minute — and a customer-service message uses one of the allowance
//! that closes first. None open: 45015; open ones used up: 45047. On the emulator's clock.

use super::{World, WxErr, wx_err};

/// A kind of interaction and the allowance it opens: (name, messages, seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interaction {
    Message,
    Click,
    Follow,
    Scan,
}

impl Interaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Message => "message",
            Interaction::Click => "click",
            Interaction::Follow => "follow",
            Interaction::Scan => "scan",
        }
    }

    fn allowance(self) -> (u32, i64) {
        match self {
            Interaction::Message => (5, 48 * 3600),
            Interaction::Click | Interaction::Follow | Interaction::Scan => (3, 60),
        }
    }
}

/// The allowance one interaction opened.
#[derive(Clone, Debug)]
pub(super) struct Allowance {
    kind: Interaction,
    closes_at: i64,
    limit: u32,
    used: u32,
}

impl World {
    /// The user interacted (`kind`) at `at`: that kind's allowance starts afresh.
    pub fn interact(&mut self, appid: &str, openid: &str, kind: Interaction, at: i64) {
        let (limit, secs) = kind.allowance();
        let list = self
            .windows
            .entry((appid.to_string(), openid.to_string()))
            .or_default();
        list.retain(|a| a.kind != kind);
        list.push(Allowance {
            kind,
            closes_at: at + secs,
            limit,
            used: 0,
        });
    }

    /// One customer-service message to the user: taken from the open allowance that closes
    /// first.
    pub(super) fn use_allowance(
        &mut self,
        appid: &str,
        openid: &str,
        now: i64,
    ) -> Result<(), WxErr> {
        let list = self
            .windows
            .entry((appid.to_string(), openid.to_string()))
            .or_default();
        let open = list
            .iter_mut()
            .filter(|a| now < a.closes_at && a.used < a.limit)
            .min_by_key(|a| a.closes_at);
        if let Some(a) = open {
            a.used += 1;
            return Ok(());
        }
        if list.iter().any(|a| now < a.closes_at) {
            Err(wx_err(45047, "out of response count limit"))
        } else {
            Err(wx_err(
                45015,
                "response out of time limit or subscription is canceled",
            ))
        }
    }

    /// The allowances open to the user now, closing first first: what opened each, when it
    /// closes, and how many messages it still takes (the console's phones).
    pub fn open_allowances(
        &self,
        appid: &str,
        openid: &str,
        now: i64,
    ) -> Vec<(Interaction, i64, u32)> {
        let mut open: Vec<(Interaction, i64, u32)> = self
            .windows
            .get(&(appid.to_string(), openid.to_string()))
            .into_iter()
            .flatten()
            .filter(|a| now < a.closes_at)
            .map(|a| (a.kind, a.closes_at, a.limit - a.used))
            .collect();
        open.sort_by_key(|(_, closes_at, _)| *closes_at);
        open
    }
}
