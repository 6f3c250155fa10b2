//! `message`: read into a JSON map while counting the bytes of its compact JSON (what
//! `serde_json::to_vec` of the map would write), and built only while that count stays
//! within [`MAX_MESSAGE_BYTES`]: a larger message costs its count, not its values. A key
//! repeated inside an object is counted each time (the map keeps the last), so such a
//! message may count more than it writes.

use super::skip::{SkipVisitor, scalars_are};
use crate::batch::MAX_MESSAGE_BYTES;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// The message as read.
pub(super) enum Message {
    Object {
        /// The map, when its compact JSON is at most [`MAX_MESSAGE_BYTES`].
        map: Option<Map<String, Value>>,
        /// The bytes of its compact JSON.
        size: usize,
        /// It has a top-level `to` / `client_msg_id` (which a batch's message may not).
        has_to: bool,
        has_client_msg_id: bool,
    },
    NotObject,
}

/// Reads `message`; anything but an object is skipped.
pub(super) struct MessageSeed {
    counted: Cell<usize>,
}

impl MessageSeed {
    pub fn new() -> MessageSeed {
        MessageSeed {
            counted: Cell::new(0),
        }
    }
}

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Message;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Message, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let (mut has_to, mut has_client_msg_id) = (false, false);
        let counter = Counter(&self.counted);
        let mut built = Some(Map::new());
        counter.add(2);
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            has_to |= key == "to";
            has_client_msg_id |= key == "client_msg_id";
            counter.entry(&mut first, &key);
            let value = map.next_value_seed(ValueSeed(counter))?;
            built = built.zip(value).map(|(mut m, v)| {
                m.insert(key, v);
                m
            });
        }
        Ok(Message::Object {
            map: built.filter(|_| counter.within()),
            size: self.counted.get(),
            has_to,
            has_client_msg_id,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Message, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Message::NotObject)
    }
    scalars_are!(Message::NotObject);
}

/// The running count of compact JSON bytes.
#[derive(Clone, Copy)]
struct Counter<'c>(&'c Cell<usize>);

impl Counter<'_> {
    fn add(self, n: usize) {
        self.0.set(self.0.get().saturating_add(n));
    }
    fn within(self) -> bool {
        self.0.get() <= MAX_MESSAGE_BYTES
    }
    /// Counts what `serde_json` writes for `v`.
    fn written(self, v: &impl serde::Serialize) {
        let mut w = Written(0);
        let _ = serde_json::to_writer(&mut w, v);
        self.add(w.0);
    }
    /// An object's `"key":` (and the comma before all but the first).
    fn entry(self, first: &mut bool, key: &str) {
        if !std::mem::take(first) {
            self.add(1);
        }
        self.written(&key);
        self.add(1);
    }
    /// `v`, when the count still allows building.
    fn keep(self, v: Value) -> Option<Value> {
        self.within().then_some(v)
    }
}

/// An `io::Write` that only counts.
struct Written(usize);

impl std::io::Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Any JSON value inside the message: counted, and built while within the limit.
struct ValueSeed<'c>(Counter<'c>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Option<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        self.0.written(&v);
        Ok(self.0.keep(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        self.0.written(&v);
        Ok(self.0.keep(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        self.0.written(&v);
        Ok(self.0.keep(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Value>, E> {
        self.0.written(&v);
        Ok(Number::from_f64(v).and_then(|n| self.0.keep(Value::Number(n))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        self.0.written(&v);
        Ok(self.0.within().then(|| Value::String(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        self.0.add(4);
        Ok(self.0.keep(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        self.0.add(2);
        let mut built = Some(Vec::new());
        let mut first = true;
        while let Some(value) = seq.next_element_seed(ValueSeed(self.0))? {
            if !std::mem::take(&mut first) {
                self.0.add(1);
            }
            built = built.zip(value).map(|(mut a, v)| {
                a.push(v);
                a
            });
        }
        Ok(built.and_then(|a| self.0.keep(Value::Array(a))))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        self.0.add(2);
        let mut built = Some(Map::new());
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            self.0.entry(&mut first, &key);
            let value = map.next_value_seed(ValueSeed(self.0))?;
            built = built.zip(value).map(|(mut m, v)| {
                m.insert(key, v);
                m
            });
        }
        Ok(built.and_then(|m| self.0.keep(Value::Object(m))))
    }
}
