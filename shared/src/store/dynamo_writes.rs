//! The DynamoDB writes of [`super::Op`]s: each operation as one item of a
//! `TransactWriteItems` (a put, an update expression with its condition, a delete).

use super::dynamo::{key_map, to_av};
use super::{Attrs, DynamoStateStore, GrantChange, ItemKey, Op, StoreError, backend};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use std::collections::HashMap;

/// `SET #a0 = :a0, #a1 = :a1, ...` with names and values, so no reserved word can clash.
struct Expr {
    sets: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn new() -> Expr {
        Expr {
            sets: vec![],
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }
    fn name(&mut self, attr: &str) -> String {
        let n = format!("#a{}", self.names.len());
        self.names.insert(n.clone(), attr.to_string());
        n
    }
    fn value(&mut self, v: AttributeValue) -> String {
        let n = format!(":v{}", self.values.len());
        self.values.insert(n.clone(), v);
        n
    }
    fn set(&mut self, attr: &str, v: AttributeValue) {
        let (n, v) = (self.name(attr), self.value(v));
        self.sets.push(format!("{n} = {v}"));
    }
    fn update(
        self,
        table: &str,
        key: &ItemKey,
        condition: Option<String>,
    ) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(key_map(key)))
            .update_expression(format!("SET {}", self.sets.join(", ")))
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(|e| backend("build update", e))
    }
}

impl DynamoStateStore {
    /// An update setting `attrs` and `field = value` on `key`, under a condition on the number
    /// attribute `field` (`condition` gets the placeholders of its name and of `value`). For
    /// `SetIfEquals` the write of `field` changes nothing: the condition requires that value.
    fn update_if(
        &self,
        key: &ItemKey,
        attrs: &Attrs,
        field: &str,
        value: i64,
        condition: impl Fn(&str, &str) -> String,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::new();
        for (k, v) in attrs {
            e.set(k, to_av(v));
        }
        let (f, v) = (e.name(field), e.value(AttributeValue::N(value.to_string())));
        if !attrs.contains_key(field) {
            e.sets.push(format!("{f} = {v}"));
        }
        let cond = condition(&f, &v);
        Ok(TransactWriteItem::builder()
            .update(e.update(&self.table, key, Some(cond))?)
            .build())
    }

    /// A Put of `attrs` (plus one more number attribute, `extra`), optionally conditional;
    /// `bound` names `#a` and `:v` in the condition.
    fn put(
        &self,
        key: &ItemKey,
        attrs: &Attrs,
        extra: Option<(&str, i64)>,
        condition: Option<&str>,
        bound: Option<(&str, i64)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = key_map(key);
        item.extend(attrs.iter().map(|(k, v)| (k.clone(), to_av(v))));
        if let Some((name, n)) = extra {
            item.insert(name.to_string(), AttributeValue::N(n.to_string()));
        }
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string));
        if let Some((name, n)) = bound {
            put = put
                .expression_attribute_names("#a", name)
                .expression_attribute_values(":v", AttributeValue::N(n.to_string()));
        }
        let put = put.build().map_err(|e| backend("build put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: &ItemKey) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .build()
            .map_err(|e| backend("build delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Sets `attrs` on an existing item.
    fn update_existing(
        &self,
        key: &ItemKey,
        attrs: &Attrs,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::new();
        for (k, v) in attrs {
            e.set(k, to_av(v));
        }
        Ok(TransactWriteItem::builder()
            .update(e.update(&self.table, key, Some("attribute_exists(pk)".into()))?)
            .build())
    }

    /// A grant's counters changed in place: `available` moves by what was added and used,
    /// never below zero.
    fn grant(
        &self,
        key: &ItemKey,
        change: &GrantChange,
        now: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::new();
        if let Some(status) = change.status {
            e.set("status", AttributeValue::S(status.into()));
        }
        let available = e.name("available");
        let mut condition = None;
        if change.clear {
            let left = (change.add - change.used).max(0);
            let left = e.value(AttributeValue::N(left.to_string()));
            e.sets.push(format!("{available} = {left}"));
        } else {
            let add = e.value(AttributeValue::N((change.add - change.used).to_string()));
            let zero = e.value(AttributeValue::N("0".into()));
            e.sets.push(format!(
                "{available} = if_not_exists({available}, {zero}) + {add}"
            ));
            if change.used > change.add {
                // Never below zero: a use without a recorded acceptance is left out
                // (the store retries the set without this op).
                let need = e.value(AttributeValue::N((change.used - change.add).to_string()));
                condition = Some(format!("{available} >= {need}"));
            }
        }
        if change.confirmed > 0 {
            // Readers count a negative `pending` (two reports racing) as zero.
            let pending = e.name("pending");
            let (zero, c) = (
                e.value(AttributeValue::N("0".into())),
                e.value(AttributeValue::N(change.confirmed.to_string())),
            );
            e.sets.push(format!(
                "{pending} = if_not_exists({pending}, {zero}) - {c}"
            ));
        }
        if let Some((msgid, code, status)) = &change.sent {
            e.set("last_msgid", AttributeValue::S(msgid.clone()));
            e.set("last_error_code", AttributeValue::N(code.to_string()));
            e.set("last_error_status", AttributeValue::S(status.clone()));
        }
        e.set("updated_at", AttributeValue::N(now.to_string()));
        Ok(TransactWriteItem::builder()
            .update(e.update(&self.table, key, condition)?)
            .build())
    }

    /// Counters moved in place (`if_not_exists(n, 0) + delta`) and `attrs` set, under the
    /// guard `at_least` (a missing attribute counts as 0).
    fn add(
        &self,
        key: &ItemKey,
        deltas: &[(String, i64)],
        attrs: &Attrs,
        at_least: Option<&(String, i64)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::new();
        let zero = e.value(AttributeValue::N("0".into()));
        for (name, delta) in deltas {
            let (n, d) = (e.name(name), e.value(AttributeValue::N(delta.to_string())));
            e.sets
                .push(format!("{n} = if_not_exists({n}, {zero}) + {d}"));
        }
        for (k, v) in attrs {
            e.set(k, to_av(v));
        }
        let condition = at_least.map(|(field, min)| {
            let (f, m) = (e.name(field), e.value(AttributeValue::N(min.to_string())));
            if *min <= 0 {
                format!("attribute_not_exists({f}) OR {f} >= {m}")
            } else {
                format!("{f} >= {m}")
            }
        });
        Ok(TransactWriteItem::builder()
            .update(e.update(&self.table, key, condition)?)
            .build())
    }

    /// One operation as one item of a `TransactWriteItems`.
    pub(super) fn item(&self, op: &Op, now: i64) -> Result<TransactWriteItem, StoreError> {
        const ABSENT: Option<&str> = Some("attribute_not_exists(pk)");
        match op {
            Op::Insert { key, attrs } => self.put(key, attrs, None, ABSENT, None),
            Op::Set { key, attrs } => self.put(key, attrs, None, None, None),
            Op::PutIfNewer {
                key,
                event_time,
                attrs,
            } => {
                let time = Some(("event_time", *event_time));
                let newer = Some("attribute_not_exists(#a) OR #a <= :v");
                self.put(key, attrs, time, newer, time)
            }
            Op::PutIfVersion {
                key,
                attrs,
                expected,
            } => match expected {
                None => self.put(key, attrs, None, ABSENT, None),
                Some(v) => self.put(key, attrs, None, Some("#a = :v"), Some(("version", *v))),
            },
            Op::Delete { key } => self.delete(key),
            Op::Update { key, attrs } => self.update_existing(key, attrs),
            Op::SetIfNewer {
                key,
                event_time,
                attrs,
            } => self.update_if(key, attrs, "event_time", *event_time, |f, v| {
                format!("attribute_not_exists({f}) OR {f} <= {v}")
            }),
            Op::SetIfEquals {
                key,
                attrs,
                field,
                expected,
            } => self.update_if(key, attrs, field, *expected, |f, v| format!("{f} = {v}")),
            Op::Grant { key, change } => self.grant(key, change, now),
            Op::PutIfAbsent { key, attrs } => self.put(key, attrs, None, ABSENT, None),
            Op::Add {
                key,
                deltas,
                attrs,
                at_least,
            } => self.add(key, deltas, attrs, at_least.as_ref()),
        }
    }
}
