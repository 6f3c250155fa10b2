//! A send's recipient (`to`, or an entry of a batch's `recipients`): an openid, a unionid,
//! or a mini program user of a `uniform` message named with its app.

use super::MessageKind;
use super::fields::invalid;
use crate::error::ApiError;
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    OpenId(String),
    UnionId(String),
    /// `{"openid", "appid"}`: an openid of another app — a mini program user of a `uniform`
    /// message, posted to the official account it goes out through.
    AppOpenId {
        appid: String,
        openid: String,
    },
}

/// One recipient as a batch lists it (`{"openid": ...}` or `{"unionid": ...}`), checked by
/// the rules of a send's `to`.
pub fn parse_recipient(value: &Value) -> Result<Recipient, ApiError> {
    let mut obj = Map::new();
    obj.insert("to".into(), value.clone());
    recipient(&obj)
}

impl Recipient {
    /// The recipient as JSON (`{"openid": ...}` / `{"unionid": ...}` / `{"openid", "appid"}`).
    pub fn to_json(&self) -> Value {
        match self {
            Recipient::OpenId(o) => serde_json::json!({ "openid": o }),
            Recipient::UnionId(u) => serde_json::json!({ "unionid": u }),
            Recipient::AppOpenId { appid, openid } => {
                serde_json::json!({ "openid": openid, "appid": appid })
            }
        }
    }
    /// A short key naming the recipient: `o:{openid}`, `u:{unionid}` or `m:{appid}:{openid}`.
    pub fn key(&self) -> String {
        match self {
            Recipient::OpenId(o) => format!("o:{o}"),
            Recipient::UnionId(u) => format!("u:{u}"),
            Recipient::AppOpenId { appid, openid } => format!("m:{appid}:{openid}"),
        }
    }
    /// The recipient a [`Recipient::key`] names.
    pub fn from_key(key: &str) -> Option<Recipient> {
        match key.split_at_checked(2)? {
            ("o:", o) if !o.is_empty() => Some(Recipient::OpenId(o.to_string())),
            ("u:", u) if !u.is_empty() => Some(Recipient::UnionId(u.to_string())),
            ("m:", rest) => {
                let (appid, openid) = rest.split_once(':')?;
                (crate::app::is_valid_appid(appid) && !openid.is_empty()).then(|| {
                    Recipient::AppOpenId {
                        appid: appid.to_string(),
                        openid: openid.to_string(),
                    }
                })
            }
            _ => None,
        }
    }
}

/// Whether a message of `kind` may go to `to`: only `uniform` names another app's openid
/// (`{"openid", "appid"}`), and a `uniform` needs that (or a unionid) — a bare openid would be
/// ambiguous between the mini program and the official account.
pub fn check_recipient(kind: MessageKind, to: &Recipient) -> Result<(), ApiError> {
    match (kind, to) {
        (MessageKind::Uniform, Recipient::OpenId(_)) => Err(invalid(
            "to",
            "a uniform message goes to a mini program user: {\"openid\": \"<mini program openid>\", \"appid\": \"<mini program appid>\"}, or {\"unionid\": ...}",
        )),
        (MessageKind::Uniform, _) | (_, Recipient::OpenId(_) | Recipient::UnionId(_)) => Ok(()),
        (_, Recipient::AppOpenId { .. }) => Err(invalid(
            "to.appid",
            "only a uniform message names the app of an openid; give the openid of the sending app, or a unionid",
        )),
    }
}

pub(super) fn recipient(obj: &Map<String, Value>) -> Result<Recipient, ApiError> {
    let to = obj
        .get("to")
        .and_then(Value::as_object)
        .ok_or_else(missing_recipient)?;
    let field = |name: &str| match to.get(name) {
        None | Some(Value::Null) => IdField::Absent,
        Some(Value::String(s)) => IdField::of(s),
        Some(_) => IdField::Invalid,
    };
    ToFields {
        openid: field("openid"),
        unionid: field("unionid"),
        appid: field("appid"),
        unknown: to
            .keys()
            .find(|k| !["openid", "unionid", "appid"].contains(&k.as_str()))
            .cloned(),
    }
    .recipient()
}

/// The refusal of a recipient that is not an object.
pub fn missing_recipient() -> ApiError {
    invalid("to", "is required: {\"openid\": ...} or {\"unionid\": ...}")
}

/// An `openid` or `unionid` field of a recipient, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdField {
    /// Absent or `null`.
    #[default]
    Absent,
    Id(String),
    /// Not a string, or not an id.
    Invalid,
}

impl IdField {
    /// A string as an id field: 1-128 bytes without whitespace or control characters.
    pub fn of(s: &str) -> IdField {
        if !s.is_empty()
            && s.len() <= 128
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            IdField::Id(s.to_string())
        } else {
            IdField::Invalid
        }
    }
}

/// A recipient object (`to`, or an entry of a batch's `recipients`) as read: its id fields
/// and its first other field name in key order.
#[derive(Clone, Debug, Default)]
pub struct ToFields {
    pub openid: IdField,
    pub unionid: IdField,
    /// The app of `openid`, for a `uniform` message to a mini program user.
    pub appid: IdField,
    pub unknown: Option<String>,
}

impl ToFields {
    /// The recipient, or the refusal naming the field: an unknown field first, then a bad
    /// `openid`, a bad `unionid`, then neither or both given.
    pub fn recipient(self) -> Result<Recipient, ApiError> {
        if let Some(extra) = self.unknown {
            return Err(invalid(
                format!("to.{extra}"),
                "unknown field; give openid or unionid",
            ));
        }
        for (name, field) in [("openid", &self.openid), ("unionid", &self.unionid)] {
            if *field == IdField::Invalid {
                return Err(invalid(
                    format!("to.{name}"),
                    "must be a non-empty id without spaces",
                ));
            }
        }
        if self.appid == IdField::Invalid {
            return Err(invalid("to.appid", "must be an appid (wx + 16 hex)"));
        }
        match (self.openid, self.unionid, self.appid) {
            (IdField::Id(o), IdField::Absent, IdField::Absent) => Ok(Recipient::OpenId(o)),
            (IdField::Absent, IdField::Id(u), IdField::Absent) => Ok(Recipient::UnionId(u)),
            (IdField::Id(openid), IdField::Absent, IdField::Id(appid))
                if crate::app::is_valid_appid(&appid) =>
            {
                Ok(Recipient::AppOpenId { appid, openid })
            }
            (IdField::Id(_), IdField::Absent, IdField::Id(_)) => {
                Err(invalid("to.appid", "must be an appid (wx + 16 hex)"))
            }
            (IdField::Absent, _, IdField::Id(_)) => Err(invalid(
                "to.appid",
                "names the app of an openid: give openid with it",
            )),
            _ => Err(invalid("to", "give exactly one of openid or unionid")),
        }
    }
}
