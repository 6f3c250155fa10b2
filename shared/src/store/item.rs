//! [`ItemRead`]: typed reads of a stored item's attributes, the one way every module reads
//! what [`StateStore`](super::StateStore) hands back.

use super::{Attr, Attrs};

/// Reads of one attribute of an item, by name. A missing attribute and one of another type
/// read alike (`None`, `false`): items are written by this crate only, so another type is a
/// field that was never set.
pub trait ItemRead {
    /// A string attribute.
    fn text(&self, name: &str) -> Option<&str>;
    /// A string attribute, owned.
    fn string(&self, name: &str) -> Option<String> {
        self.text(name).map(str::to_string)
    }
    /// A number attribute.
    fn num(&self, name: &str) -> Option<i64>;
    /// A boolean attribute; `false` when missing.
    fn flag(&self, name: &str) -> bool;
}

impl ItemRead for Attrs {
    fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Attr::S(s)) => Some(s),
            _ => None,
        }
    }
    fn num(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Attr::N(n)) => Some(*n),
            _ => None,
        }
    }
    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Attr::Bool(true)))
    }
}

impl From<&str> for Attr {
    fn from(s: &str) -> Attr {
        Attr::S(s.to_string())
    }
}

impl From<String> for Attr {
    fn from(s: String) -> Attr {
        Attr::S(s)
    }
}

impl From<i64> for Attr {
    fn from(n: i64) -> Attr {
        Attr::N(n)
    }
}

impl From<bool> for Attr {
    fn from(b: bool) -> Attr {
        Attr::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::attrs;

    #[test]
    fn reads_each_type_and_nothing_of_another() {
        let item = attrs([("s", "x".into()), ("n", 7.into()), ("b", true.into())]);
        assert_eq!(item.text("s"), Some("x"));
        assert_eq!(item.string("s"), Some("x".to_string()));
        assert_eq!(item.num("n"), Some(7));
        assert!(item.flag("b"));
        assert_eq!(item.text("n"), None);
        assert_eq!(item.num("s"), None);
        assert!(!item.flag("s"));
        assert!(!item.flag("missing"));
    }
}
