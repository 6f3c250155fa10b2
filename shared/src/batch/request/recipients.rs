//! `recipients`: an array read entry by entry, each into a [`ToFields`] and then a
//! recipient key. At most [`MAX_RECIPIENTS`] entries are read; the rest of a longer list is
//! skipped and the list marked too long. Refusals keep the first
//! [`MAX_LISTED_INVALID`] (index, why) and a count.

use super::skip::{Skip, SkipVisitor, scalars_are};
use crate::batch::{MAX_LISTED_INVALID, MAX_RECIPIENTS};
use crate::error::ApiError;
use crate::send::validate::{
    IdField, MessageKind, Recipient, ToFields, check_recipient, missing_recipient,
};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A `recipients` array as read.
#[derive(Debug, Default)]
pub(super) struct Listed {
    /// The valid recipients' keys (`o:{openid}` / `u:{unionid}`), repeats included.
    pub keys: Vec<String>,
    /// Where each of `keys` was listed.
    pub indexes: Vec<usize>,
    /// Entries read (at most [`MAX_RECIPIENTS`]).
    pub len: usize,
    /// More than [`MAX_RECIPIENTS`] entries were listed.
    pub too_many: bool,
    /// The first refused entries: (index, why).
    pub bad: Vec<(usize, String)>,
    pub count_bad: usize,
}

impl Listed {
    fn add(&mut self, entry: Result<Recipient, ApiError>) {
        let index = self.len;
        self.len += 1;
        match entry {
            Ok(r) => {
                self.keys.push(r.key());
                self.indexes.push(index);
            }
            Err(e) => {
                self.count_bad += 1;
                if self.bad.len() < MAX_LISTED_INVALID {
                    self.bad.push((index, why(e)));
                }
            }
        }
    }

    /// Refuses the recipients a message of `kind` cannot go to (`uniform` needs a mini
    /// program user; only `uniform` names another app's openid), as a single send would.
    pub fn check_kind(&mut self, kind: MessageKind) {
        for (key, &index) in self.keys.iter().zip(&self.indexes) {
            let Some(r) = Recipient::from_key(key) else {
                continue;
            };
            if let Err(e) = check_recipient(kind, &r) {
                self.count_bad += 1;
                self.bad.push((index, why(e)));
            }
        }
        self.bad.sort_by_key(|(i, _)| *i);
        self.bad.truncate(MAX_LISTED_INVALID);
    }
}

/// A refused recipient's reason, its field named as in the list.
fn why(e: ApiError) -> String {
    match e {
        ApiError::Validation { field, message } => {
            format!("{}: {message}", field.replace("to", "recipient"))
        }
        other => other.to_string(),
    }
}

/// Reads `recipients`: `Some` for an array, `None` for anything else (skipped).
pub(super) struct ListSeed;

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Option<Listed>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Option<Listed>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of recipients")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut listed = Listed::default();
        while listed.len < MAX_RECIPIENTS {
            match seq.next_element::<Entry>()? {
                Some(Entry(entry)) => listed.add(entry),
                None => return Ok(Some(listed)),
            }
        }
        // The limit is reached: one more entry makes the list too long; skip the rest.
        if seq.next_element::<Skip>()?.is_some() {
            listed.too_many = true;
            while seq.next_element::<Skip>()?.is_some() {}
        }
        Ok(Some(listed))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|_| None)
    }
    scalars_are!(None);
}

/// One entry of `recipients`, checked by the rules of a send's `to`.
struct Entry(Result<Recipient, ApiError>);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a recipient")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut to = ToFields::default();
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "openid" => to.openid = map.next_value::<Id>()?.0,
                "unionid" => to.unionid = map.next_value::<Id>()?.0,
                "appid" => to.appid = map.next_value::<Id>()?.0,
                _ => {
                    map.next_value::<Skip>()?;
                    if to.unknown.as_ref().is_none_or(|u| name < *u) {
                        to.unknown = Some(name);
                    }
                }
            }
        }
        Ok(Entry(to.recipient()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entry, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Entry(Err(missing_recipient())))
    }
    scalars_are!(Entry(Err(missing_recipient())));
}

/// An `openid` / `unionid` value: kept only when it is a valid id.
struct Id(IdField);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        d.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Id;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an id")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
        Ok(Id(IdField::of(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Id, E> {
        Ok(Id(IdField::Absent))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Id, E> {
        Ok(Id(IdField::Invalid))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Id, E> {
        Ok(Id(IdField::Invalid))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Id, E> {
        Ok(Id(IdField::Invalid))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Id, E> {
        Ok(Id(IdField::Invalid))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Id, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Id(IdField::Invalid))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Id, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Id(IdField::Invalid))
    }
}
