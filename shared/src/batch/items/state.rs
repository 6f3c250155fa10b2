//! [`BatchState`]: where a batch is, as its `meta` item stores it and the API shows it;
//! [`Audience`]: whom it goes to.

use crate::store::Attr;
use std::fmt;

/// A batch's state. Stored in its `meta` item and answered in the API's JSON by
/// [`BatchState::as_str`]; read back by [`BatchState::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchState {
    /// Its request is still writing its chunks (not shown by `GET`; a retry with the same
    /// `Idempotency-Key` takes a stale one over).
    Writing,
    /// Written and fanned out (or being fanned out); its chunks send.
    Running,
    /// Every recipient settled.
    Done,
    /// `DELETE` stopped it: no new sends start.
    Cancelled,
    /// Written, but its fan-out could not be queued: a retry of its request starts it.
    Failed,
    /// Never stored: what `GET` shows for a running batch while WeChat's quota pauses it.
    Paused,
}

impl BatchState {
    /// The stored and JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Writing => "writing",
            BatchState::Running => "running",
            BatchState::Done => "done",
            BatchState::Cancelled => "cancelled",
            BatchState::Failed => "failed",
            BatchState::Paused => "paused",
        }
    }

    /// The state a stored (or JSON) `state` names; `None` for anything else.
    pub fn parse(s: &str) -> Option<BatchState> {
        [
            BatchState::Writing,
            BatchState::Running,
            BatchState::Done,
            BatchState::Cancelled,
            BatchState::Failed,
            BatchState::Paused,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BatchState> for Attr {
    fn from(state: BatchState) -> Attr {
        Attr::S(state.as_str().to_string())
    }
}

/// Whom a batch goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::batch) enum Audience {
    Recipients,
    Followers,
}

impl Audience {
    pub(in crate::batch) fn as_str(self) -> &'static str {
        match self {
            Audience::Recipients => "recipients",
            Audience::Followers => "followers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_they_are_written() {
        for s in [
            "writing",
            "running",
            "done",
            "cancelled",
            "failed",
            "paused",
        ] {
            assert_eq!(BatchState::parse(s).map(BatchState::as_str), Some(s));
        }
        assert_eq!(BatchState::parse(""), None);
        assert_eq!(BatchState::parse("Running"), None);
    }
}
