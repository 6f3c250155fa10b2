//! The customer-service window (docs/wechat.md, Customer-service window): every interaction of
//! a user opens an allowance of messages for a while (a message: 5 in 48 hours; a menu
//! click, a follow or a scan: 3 in a minute; a mini program's customer-service session: 2 in
//! a minute). wxpush keeps the last interaction of each kind (written by the callback) and
//! counts down the allowance with each customer-service message it sends, charging the open
//! allowance that closes first.

use super::UserState;
use crate::store::{Attr, ItemKey, ItemRead, Op, StoreError, attrs};
use serde_json::{Value, json};

/// How long a closed allowance's row is kept after it closed (for the user view).
const KEPT_AFTER_CLOSE_SECS: i64 = 86_400;

/// A kind of interaction that opens a customer-service allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interaction {
    /// The user sent a message (text, image, voice, ...).
    Message,
    /// A menu click (`CLICK`, `scancode_push`, `scancode_waitmsg`).
    Click,
    /// The user followed the official account (`subscribe`).
    Follow,
    /// The user scanned a parametric QR code while following (`SCAN`).
    Scan,
    /// The user entered a mini program's customer-service session (`user_enter_tempsession`).
    Session,
}

impl Interaction {
    pub const ALL: [Interaction; 5] = [
        Interaction::Message,
        Interaction::Click,
        Interaction::Follow,
        Interaction::Scan,
        Interaction::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Message => "message",
            Interaction::Click => "click",
            Interaction::Follow => "follow",
            Interaction::Scan => "scan",
            Interaction::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Interaction> {
        Interaction::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The allowance an interaction of this kind opens: (messages, seconds).
    pub fn allowance(self) -> (i64, i64) {
        match self {
            Interaction::Message => (5, 48 * 3600),
            Interaction::Click | Interaction::Follow | Interaction::Scan => (3, 60),
            Interaction::Session => (2, 60),
        }
    }

    /// The interaction a push is, if it opens an allowance: every message a user sends, and
    /// the events of [`Interaction`]'s kinds.
    pub fn of_push(msg_type: &str, event: Option<&str>) -> Option<Interaction> {
        if msg_type != "event" {
            return Some(Interaction::Message);
        }
        let event = event?;
        if event.eq_ignore_ascii_case("subscribe") {
            Some(Interaction::Follow)
        } else if event.eq_ignore_ascii_case("SCAN") {
            Some(Interaction::Scan)
        } else if ["CLICK", "scancode_push", "scancode_waitmsg"]
            .iter()
            .any(|e| event.eq_ignore_ascii_case(e))
        {
            Some(Interaction::Click)
        } else if event.eq_ignore_ascii_case("user_enter_tempsession") {
            Some(Interaction::Session)
        } else {
            None
        }
    }
}

/// The write that records an interaction of `kind` at `at` (WeChat's `CreateTime`, never
/// later than `now`): the kind's row replaced with a fresh allowance, unless a later
/// interaction of that kind is already recorded.
pub fn interaction_op(appid: &str, openid: &str, kind: Interaction, at: i64, now: i64) -> Op {
    let at = at.min(now);
    let (limit, secs) = kind.allowance();
    Op::PutIfNewer {
        key: ItemKey::service_window(appid, openid, kind.as_str()),
        event_time: at,
        attrs: attrs([
            ("at", Attr::N(at)),
            ("limit", Attr::N(limit)),
            ("closes_at", Attr::N(at + secs)),
            ("ttl", Attr::N(at + secs + KEPT_AFTER_CLOSE_SECS)),
        ]),
    }
}

/// The allowance one interaction opened, and how much of it wxpush used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub kind: Interaction,
    pub at: i64,
    pub closes_at: i64,
    pub limit: i64,
    pub used: i64,
}

impl Allowance {
    pub fn remaining(&self) -> i64 {
        (self.limit - self.used).max(0)
    }
    pub fn is_open(&self, now: i64) -> bool {
        now < self.closes_at && self.remaining() > 0
    }
}

/// What wxpush knows of a user's customer-service window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceWindow {
    /// One per kind of interaction seen, by kind.
    pub allowances: Vec<Allowance>,
}

impl ServiceWindow {
    /// Whether wxpush has seen any interaction of the user.
    pub fn known(&self) -> bool {
        !self.allowances.is_empty()
    }

    pub fn is_open(&self, now: i64) -> bool {
        self.allowances.iter().any(|a| a.is_open(now))
    }

    /// Messages wxpush may still send: the open allowances' remainders together.
    pub fn remaining(&self, now: i64) -> i64 {
        self.open(now).map(Allowance::remaining).sum()
    }

    /// When the window closes: the last open allowance's end; for a closed window, the
    /// latest end of any.
    pub fn closes_at(&self, now: i64) -> Option<i64> {
        self.open(now)
            .map(|a| a.closes_at)
            .max()
            .or_else(|| self.allowances.iter().map(|a| a.closes_at).max())
    }

    fn open(&self, now: i64) -> impl Iterator<Item = &Allowance> {
        self.allowances.iter().filter(move |a| a.is_open(now))
    }

    /// The open allowances, the one that closes first first: the order they are used in.
    fn to_use(&self, now: i64) -> Vec<Allowance> {
        let mut open: Vec<Allowance> = self.open(now).cloned().collect();
        open.sort_by_key(|a| (a.closes_at, a.kind));
        open
    }

    /// `service_window` as the API shows it.
    pub fn to_json(&self, now: i64) -> Value {
        let mut v = json!({"open": self.is_open(now), "known": self.known()});
        if self.known() {
            v["closes_at"] = json!(self.closes_at(now));
            v["remaining"] = json!(self.remaining(now));
            v["allowances"] = self
                .allowances
                .iter()
                .map(|a| {
                    json!({"kind": a.kind.as_str(), "at": a.at, "closes_at": a.closes_at,
                           "limit": a.limit, "used": a.used.min(a.limit), "open": a.is_open(now)})
                })
                .collect();
        }
        v
    }
}

/// What [`UserState::take_window`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowTake {
    /// wxpush has seen no interaction of the user: WeChat decides.
    Unknown,
    /// One message of this kind's allowance is taken.
    Taken(Interaction),
    /// The window is closed or used up.
    Closed(ServiceWindow),
}

impl UserState {
    /// The user's customer-service window as wxpush knows it.
    pub async fn window(&self, appid: &str, openid: &str) -> Result<ServiceWindow, StoreError> {
        let rows = self
            .store
            .query(&ItemKey::service_window_pk(appid, openid))
            .await?;
        let allowances = rows
            .iter()
            .filter_map(|(sk, a)| {
                Some(Allowance {
                    kind: Interaction::parse(sk)?,
                    at: a.num("at")?,
                    closes_at: a.num("closes_at")?,
                    limit: a.num("limit")?,
                    used: a.num("used").unwrap_or(0).max(0),
                })
            })
            .collect();
        Ok(ServiceWindow { allowances })
    }

    /// Takes one message of the open allowance that closes first (atomically: of any number
    /// of concurrent senders, no more than the allowance get one).
    pub async fn take_window(
        &self,
        appid: &str,
        openid: &str,
        now: i64,
    ) -> Result<WindowTake, StoreError> {
        let window = self.window(appid, openid).await?;
        if !window.known() {
            return Ok(WindowTake::Unknown);
        }
        for a in window.to_use(now) {
            let key = ItemKey::service_window(appid, openid, a.kind.as_str());
            let expires_at = a.closes_at + KEPT_AFTER_CLOSE_SECS;
            if self.store.take(&key, 1, a.limit, expires_at).await? == 1 {
                return Ok(WindowTake::Taken(a.kind));
            }
        }
        // Taken by others meanwhile: what is left now.
        Ok(WindowTake::Closed(self.window(appid, openid).await?))
    }

    /// Gives back a message taken from `kind`'s allowance that never reached the user.
    pub async fn give_back_window(
        &self,
        appid: &str,
        openid: &str,
        kind: Interaction,
        now: i64,
    ) -> Result<(), StoreError> {
        let op = Op::Add {
            key: ItemKey::service_window(appid, openid, kind.as_str()),
            deltas: vec![("used".into(), -1)],
            attrs: Default::default(),
            at_least: Some(("used".into(), 1)),
        };
        // A conflict: the row was replaced by a new interaction since; nothing to give back.
        self.store.record(&[op], now).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(kind: Interaction, at: i64, used: i64) -> Allowance {
        let (limit, secs) = kind.allowance();
        Allowance {
            kind,
            at,
            closes_at: at + secs,
            limit,
            used,
        }
    }

    #[test]
    fn pushes_open_the_allowance_of_their_kind() {
        assert_eq!(
            Interaction::of_push("text", None),
            Some(Interaction::Message)
        );
        assert_eq!(
            Interaction::of_push("event", Some("CLICK")),
            Some(Interaction::Click)
        );
        assert_eq!(
            Interaction::of_push("event", Some("subscribe")),
            Some(Interaction::Follow)
        );
        assert_eq!(
            Interaction::of_push("event", Some("SCAN")),
            Some(Interaction::Scan)
        );
        assert_eq!(Interaction::of_push("event", Some("unsubscribe")), None);
        assert_eq!(Interaction::of_push("event", Some("VIEW")), None);
        assert_eq!(
            Interaction::of_push("event", Some("TEMPLATESENDJOBFINISH")),
            None
        );
        for i in Interaction::ALL {
            assert_eq!(Interaction::parse(i.as_str()), Some(i));
        }
    }

    #[test]
    fn the_window_is_open_while_an_allowance_is() {
        let now = 1_000_000;
        let w = ServiceWindow {
            allowances: vec![
                allowance(Interaction::Message, now - 3600, 2),
                allowance(Interaction::Click, now - 10, 0),
            ],
        };
        assert!(w.is_open(now));
        assert_eq!(w.remaining(now), 3 + 3);
        assert_eq!(w.closes_at(now), Some(now - 3600 + 48 * 3600));
        let first = w.to_use(now);
        assert_eq!(first[0].kind, Interaction::Click, "the one closing first");
        // A minute later the click's allowance is over; five messages later the message's.
        assert_eq!(w.remaining(now + 60), 3);
        let used_up = ServiceWindow {
            allowances: vec![allowance(Interaction::Message, now - 3600, 5)],
        };
        assert!(!used_up.is_open(now));
        assert_eq!(used_up.remaining(now), 0);
        assert_eq!(used_up.closes_at(now), Some(now - 3600 + 48 * 3600));
        let closed = ServiceWindow {
            allowances: vec![allowance(Interaction::Message, now - 49 * 3600, 0)],
        };
        assert!(!closed.is_open(now));
        assert!(!ServiceWindow::default().known());
    }
}
