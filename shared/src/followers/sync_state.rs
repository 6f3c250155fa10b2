//! The stored state of one follower sync: where it is, what it counted, who works on it.

use crate::store::{Attr, Attrs, ItemRead};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Done,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "running" => RunState::Running,
            "done" => RunState::Done,
            "failed" => RunState::Failed,
            _ => return None,
        })
    }
}

/// `Pages`: walking `user/get` and looking every follower up. `Sweep`: checking the stored
/// accounts the pages did not list (did they leave?).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pages,
    Sweep,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pages => "pages",
            Phase::Sweep => "sweep",
        }
    }
}

/// One app's follower sync, stored as one item written only with `PutIfVersion`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    pub run_id: String,
    pub state: RunState,
    pub phase: Phase,
    /// Bumped by every write; a write expecting another version loses (someone else moved on).
    pub version: i64,
    /// The `next_openid` that fetches the page being worked on (`""`: the first page).
    pub cursor: String,
    /// Openids of that page already done, and the last of them (to find the place again if
    /// the page shifted before it is fetched again).
    pub page_done: i64,
    pub page_last: String,
    /// The sweep's position: the sort key of the last stored account checked.
    pub sweep_after: String,
    pub pages: i64,
    pub followers: i64,
    pub mapped: i64,
    pub without_unionid: i64,
    pub unsubscribed: i64,
    pub skipped: i64,
    pub errors: i64,
    /// `total` of the last `user/get` page.
    pub total: i64,
    pub resumes: i64,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: i64,
    /// A worker holds the run until then (unix seconds); 0 = free.
    pub lease_until: i64,
    pub last_error: String,
}

impl SyncState {
    pub fn new(run_id: String, now: i64) -> SyncState {
        SyncState {
            run_id,
            state: RunState::Running,
            phase: Phase::Pages,
            version: 0,
            cursor: String::new(),
            page_done: 0,
            page_last: String::new(),
            sweep_after: String::new(),
            pages: 0,
            followers: 0,
            mapped: 0,
            without_unionid: 0,
            unsubscribed: 0,
            skipped: 0,
            errors: 0,
            total: 0,
            resumes: 0,
            started_at: now,
            updated_at: now,
            finished_at: 0,
            lease_until: 0,
            last_error: String::new(),
        }
    }

    pub fn to_attrs(&self, appid: &str) -> Attrs {
        let mut a = Attrs::new();
        for (k, v) in [
            ("appid", appid),
            ("run_id", &self.run_id),
            ("state", self.state.as_str()),
            ("phase", self.phase.as_str()),
            ("cursor", &self.cursor),
            ("page_last", &self.page_last),
            ("sweep_after", &self.sweep_after),
            ("last_error", &self.last_error),
        ] {
            a.insert(k.to_string(), v.into());
        }
        for (k, v) in [
            ("version", self.version),
            ("page_done", self.page_done),
            ("pages", self.pages),
            ("followers", self.followers),
            ("mapped", self.mapped),
            ("without_unionid", self.without_unionid),
            ("unsubscribed", self.unsubscribed),
            ("skipped", self.skipped),
            ("errors", self.errors),
            ("total", self.total),
            ("resumes", self.resumes),
            ("started_at", self.started_at),
            ("updated_at", self.updated_at),
            ("finished_at", self.finished_at),
            ("lease_until", self.lease_until),
        ] {
            a.insert(k.to_string(), Attr::N(v));
        }
        a
    }

    /// `None` when the item is not a sync state (missing or unknown fields).
    pub fn from_attrs(a: &Attrs) -> Option<SyncState> {
        // A counter never written reads 0, a text never written "".
        let num = |k: &str| a.num(k).unwrap_or(0);
        let text = |k: &str| a.string(k).unwrap_or_default();
        Some(SyncState {
            run_id: a.string("run_id")?,
            state: RunState::parse(a.text("state")?)?,
            phase: match a.text("phase")? {
                "pages" => Phase::Pages,
                "sweep" => Phase::Sweep,
                _ => return None,
            },
            version: num("version"),
            cursor: text("cursor"),
            page_done: num("page_done"),
            page_last: text("page_last"),
            sweep_after: text("sweep_after"),
            pages: num("pages"),
            followers: num("followers"),
            mapped: num("mapped"),
            without_unionid: num("without_unionid"),
            unsubscribed: num("unsubscribed"),
            skipped: num("skipped"),
            errors: num("errors"),
            total: num("total"),
            resumes: num("resumes"),
            started_at: num("started_at"),
            updated_at: num("updated_at"),
            finished_at: num("finished_at"),
            lease_until: num("lease_until"),
            last_error: text("last_error"),
        })
    }

    /// What `GET .../followers/sync` answers.
    pub fn progress(&self, appid: &str) -> Value {
        let opt = |v: i64| if v > 0 { json!(v) } else { Value::Null };
        json!({
            "appid": appid,
            "run_id": self.run_id,
            "state": self.state.as_str(),
            "phase": self.phase.as_str(),
            "pages": self.pages,
            "total": self.total,
            "followers": self.followers,
            "mapped": self.mapped,
            "without_unionid": self.without_unionid,
            "unsubscribed": self.unsubscribed,
            "skipped": self.skipped,
            "errors": self.errors,
            "resumes": self.resumes,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "finished_at": opt(self.finished_at),
            "last_error": if self.last_error.is_empty() { Value::Null } else { json!(self.last_error) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_attrs() {
        let mut s = SyncState::new("run-1".into(), 100);
        s.phase = Phase::Sweep;
        s.state = RunState::Failed;
        s.version = 7;
        s.cursor = "o-next".into();
        s.page_done = 300;
        s.followers = 12_345;
        s.last_error = "user/get failed".into();
        let back = SyncState::from_attrs(&s.to_attrs("wx1")).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.progress("wx1")["state"], "failed");
        assert_eq!(s.progress("wx1")["finished_at"], Value::Null);
    }

    #[test]
    fn rejects_foreign_items() {
        let mut a = SyncState::new("r".into(), 1).to_attrs("wx1");
        a.insert("state".into(), Attr::S("paused".into()));
        assert!(SyncState::from_attrs(&a).is_none());
        assert!(SyncState::from_attrs(&Attrs::new()).is_none());
    }
}
