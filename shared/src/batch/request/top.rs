//! The body's top level: an object's `message`, `recipients` and `audience` read as they
//! come ([`TopSeed`]), anything else skipped.

use super::message::{Message, MessageSeed};
use super::recipients::{ListSeed, Listed};
use super::skip::{Skip, SkipVisitor, scalars_are};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The body: an object's fields as read, or anything else (skipped).
pub(super) enum Top {
    Object(Fields),
    NotObject,
}

/// The top-level fields. A repeated field counts as its last occurrence (as a JSON object
/// read into a map does); `unknown` is the first unknown name in key order.
#[derive(Default)]
pub(super) struct Fields {
    pub message: Option<Message>,
    /// `Some(None)`: present but not an array.
    pub recipients: Option<Option<Listed>>,
    /// `Some(true)`: `"followers"`; `Some(false)`: anything else.
    pub audience: Option<bool>,
    pub unknown: Option<String>,
}

pub(super) struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "message" => fields.message = Some(map.next_value_seed(MessageSeed::new())?),
                "recipients" => fields.recipients = Some(map.next_value_seed(ListSeed)?),
                "audience" => fields.audience = Some(map.next_value::<Followers>()?.0),
                _ => {
                    map.next_value::<Skip>()?;
                    if fields.unknown.as_ref().is_none_or(|u| name < *u) {
                        fields.unknown = Some(name);
                    }
                }
            }
        }
        Ok(Top::Object(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Top::NotObject)
    }
    scalars_are!(Top::NotObject);
}

/// `audience`: whether it is the string `"followers"` (anything else is skipped).
struct Followers(bool);

impl<'de> Deserialize<'de> for Followers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Followers, D::Error> {
        d.deserialize_any(FollowersVisitor)
    }
}

struct FollowersVisitor;

impl<'de> Visitor<'de> for FollowersVisitor {
    type Value = Followers;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"followers\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Followers, E> {
        Ok(Followers(v == "followers"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Followers, E> {
        Ok(Followers(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Followers, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Followers(false))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Followers, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Followers(false))
    }
}
