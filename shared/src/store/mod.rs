//! [`StateStore`]: wxpush's state in one table — DynamoDB (`TransactWriteItems` for a set of
//! operations that must succeed together) or redb locally (one write transaction).

mod types;

pub use types::*;

use crate::aws::SdkClient;
use crate::token::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Everything was written (an event and all its effects, say).
    New,
    /// An `Insert` found its item: a retry of something already recorded; nothing changed.
    Duplicate,
    /// A `PutIfVersion` found another version: someone else changed the item; nothing changed.
    Conflict,
}

/// One page of a [`StateStore::query_page`].
#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    pub rows: Vec<(String, Attrs)>,
    /// The sort key to continue after, when there may be more.
    pub next_after: Option<String>,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// Applies `ops` all together. If an `Insert` finds its item already there, nothing is
    /// written and the result is `Duplicate`; a `SetIfNewer` that finds a newer item is left
    /// out and the rest still applies.
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError>;
    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError>;
    /// Every item under `pk`, by sort key.
    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError>;
    /// At most `limit` items under `pk` whose sort key comes after `after`, by sort key.
    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError>;
    /// Adds up to `want` to the number attribute `used` of `key` without passing `limit`,
    /// atomically across every caller, and answers how much was added (0 when `limit` is
    /// reached). Not a transaction: a hot counter (the batch pacer's) must not conflict
    /// with itself. `expires_at` is the item's TTL.
    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError>;
}

fn backend(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        op,
        message: e.to_string(),
    }
}

// ------------------------------------------------------------------ DynamoDB

/// Items asked for per `Query` page at most (DynamoDB also ends a page at 1 MB).
const QUERY_PAGE_MAX: usize = 10_000;

#[derive(Clone, Debug)]
pub struct DynamoStateStore {
    client: SdkClient<Client>,
    table: String,
}

impl DynamoStateStore {
    pub fn new(client: impl Into<SdkClient<Client>>, table: impl Into<String>) -> Self {
        DynamoStateStore {
            client: client.into(),
            table: table.into(),
        }
    }
}

fn to_av(a: &Attr) -> AttributeValue {
    match a {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.to_string()),
        Attr::Bool(b) => AttributeValue::Bool(*b),
    }
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Attrs {
    item.iter()
        .filter(|(k, _)| k.as_str() != "pk" && k.as_str() != "sk")
        .filter_map(|(k, v)| {
            let a = match v {
                AttributeValue::S(s) => Attr::S(s.clone()),
                AttributeValue::N(n) => Attr::N(n.parse().ok()?),
                AttributeValue::Bool(b) => Attr::Bool(*b),
                _ => return None,
            };
            Some((k.clone(), a))
        })
        .collect()
}

fn key_map(key: &ItemKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(key.pk.clone())),
        ("sk".to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

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

    fn item(&self, op: &Op, now: i64) -> Result<TransactWriteItem, StoreError> {
        // A Put of `attrs` (plus one more number attribute, `extra`), optionally conditional;
        // `bound` names `#a` and `:v` in the condition.
        let put = |key: &ItemKey,
                   attrs: &Attrs,
                   extra: Option<(&str, i64)>,
                   condition: Option<&str>,
                   bound: Option<(&str, i64)>|
         -> Result<TransactWriteItem, StoreError> {
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
        };
        const ABSENT: Option<&str> = Some("attribute_not_exists(pk)");
        match op {
            Op::Insert { key, attrs } => put(key, attrs, None, ABSENT, None),
            Op::Set { key, attrs } => put(key, attrs, None, None, None),
            Op::PutIfNewer {
                key,
                event_time,
                attrs,
            } => {
                let time = Some(("event_time", *event_time));
                let newer = Some("attribute_not_exists(#a) OR #a <= :v");
                put(key, attrs, time, newer, time)
            }
            Op::PutIfVersion {
                key,
                attrs,
                expected,
            } => match expected {
                None => put(key, attrs, None, ABSENT, None),
                Some(v) => put(key, attrs, None, Some("#a = :v"), Some(("version", *v))),
            },
            Op::Delete { key } => Ok(TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_map(key)))
                        .build()
                        .map_err(|e| backend("build delete", e))?,
                )
                .build()),
            Op::Update { key, attrs } => {
                let mut e = Expr::new();
                for (k, v) in attrs {
                    e.set(k, to_av(v));
                }
                Ok(TransactWriteItem::builder()
                    .update(e.update(&self.table, key, Some("attribute_exists(pk)".into()))?)
                    .build())
            }
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
            Op::Grant { key, change } => {
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
                        let need =
                            e.value(AttributeValue::N((change.used - change.add).to_string()));
                        condition = Some(format!("{available} >= {need}"));
                    }
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
        }
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        let mut ops: Vec<Op> = ops.to_vec();
        // At most two attempts: the second without the updates a newer event already superseded.
        for _ in 0..2 {
            if ops.is_empty() {
                // Everything was superseded: nothing left to write.
                return Ok(Recorded::New);
            }
            let items = ops
                .iter()
                .map(|op| self.item(op, now))
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Recorded::New),
                Err(e) => e,
            };
            let reasons: Vec<bool> = match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code() == Some("ConditionalCheckFailed"))
                    .collect(),
                _ => return Err(backend("TransactWriteItems", DisplayErrorContext(err))),
            };
            let guard_failed = |guard: fn(&Op) -> bool| {
                ops.iter()
                    .zip(&reasons)
                    .any(|(op, failed)| *failed && guard(op))
            };
            if guard_failed(|op| matches!(op, Op::Insert { .. })) {
                return Ok(Recorded::Duplicate);
            }
            if guard_failed(|op| {
                matches!(
                    op,
                    Op::PutIfVersion { .. } | Op::SetIfEquals { .. } | Op::Update { .. }
                )
            }) {
                return Ok(Recorded::Conflict);
            }
            if !reasons.iter().any(|failed| *failed) {
                return Err(backend("TransactWriteItems", DisplayErrorContext(err)));
            }
            // Superseded updates are left out; a grant that would go below zero is clamped to
            // zero (its status and sent details still recorded), as the embedded store does.
            ops = ops
                .into_iter()
                .zip(reasons.iter().chain(std::iter::repeat(&false)))
                .filter_map(|(op, failed)| match (op, *failed) {
                    (op, false) => Some(op),
                    (Op::Grant { key, change }, true) => Some(Op::Grant {
                        key,
                        change: GrantChange {
                            clear: true,
                            add: 0,
                            used: 0,
                            ..change
                        },
                    }),
                    (_, true) => None,
                })
                .collect();
        }
        Err(backend("TransactWriteItems", "conditions kept failing"))
    }

    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let mut want = want.min(limit);
        // At most two tries: `want`, then what is left when `want` did not fit.
        for _ in 0..2 {
            if want <= 0 {
                return Ok(0);
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_map(key)))
                .update_expression("ADD #u :n SET #t = :t")
                .condition_expression("attribute_not_exists(#u) OR #u <= :max")
                .expression_attribute_names("#u", "used")
                .expression_attribute_names("#t", "ttl")
                .expression_attribute_values(":n", AttributeValue::N(want.to_string()))
                .expression_attribute_values(":t", AttributeValue::N(expires_at.to_string()))
                .expression_attribute_values(":max", AttributeValue::N((limit - want).to_string()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(want),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    let used = match self.get(key).await?.and_then(|a| a.get("used").cloned()) {
                        Some(Attr::N(n)) => n,
                        _ => 0,
                    };
                    want = want.min(limit - used);
                }
                Err(e) => return Err(backend("UpdateItem", DisplayErrorContext(e))),
            }
        }
        Ok(0)
    }

    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", DisplayErrorContext(e)))?;
        Ok(out.item().map(from_item))
    }

    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        let mut rows = Vec::new();
        let mut after = None;
        // Bounded: a unionid has a handful of accounts, a user a handful of templates.
        for _ in 0..100 {
            let page = self
                .query_page(pk, after.as_deref(), QUERY_PAGE_MAX)
                .await?;
            rows.extend(page.rows);
            match page.next_after {
                Some(sk) => after = Some(sk),
                None => break,
            }
        }
        Ok(rows)
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        let start = after.map(|sk| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.to_string())),
                ("sk".to_string(), AttributeValue::S(sk.to_string())),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .consistent_read(true)
            .limit(limit.clamp(1, QUERY_PAGE_MAX) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend("Query", DisplayErrorContext(e)))?;
        let sk_of = |item: &HashMap<String, AttributeValue>| {
            item.get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let rows: Vec<(String, Attrs)> = out
            .items()
            .iter()
            .map(|item| (sk_of(item), from_item(item)))
            .collect();
        let next_after = match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => Some(sk_of(k)),
            _ => None,
        };
        Ok(QueryPage { rows, next_after })
    }
}

// ------------------------------------------------------------------ embedded (redb)

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// Separates pk and sk in the embedded key; sorts below every printable character.
const SEP: char = '\u{1f}';

#[derive(Clone)]
pub struct EmbeddedStateStore {
    db: Arc<Database>,
}

impl EmbeddedStateStore {
    pub fn new(db: Arc<Database>) -> Self {
        EmbeddedStateStore { db }
    }
}

fn embedded_key(key: &ItemKey) -> String {
    format!("{}{SEP}{}", key.pk, key.sk)
}

fn encode(attrs: &Attrs) -> Vec<u8> {
    let map: serde_json::Map<String, serde_json::Value> = attrs
        .iter()
        .map(|(k, v)| {
            let j = match v {
                Attr::S(s) => serde_json::Value::from(s.clone()),
                Attr::N(n) => serde_json::Value::from(*n),
                Attr::Bool(b) => serde_json::Value::from(*b),
            };
            (k.clone(), j)
        })
        .collect();
    serde_json::to_vec(&map).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<Attrs, StoreError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            appid: String::new(),
            message: e.to_string(),
        })?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| {
            let a = match v {
                serde_json::Value::String(s) => Attr::S(s),
                serde_json::Value::Number(n) => Attr::N(n.as_i64()?),
                serde_json::Value::Bool(b) => Attr::Bool(b),
                _ => return None,
            };
            Some((k, a))
        })
        .collect())
}

#[async_trait]
impl StateStore for EmbeddedStateStore {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        let db = self.db.clone();
        let ops = ops.to_vec();
        tokio::task::spawn_blocking(move || -> Result<Recorded, StoreError> {
            let txn = db.begin_write().map_err(|e| backend("begin", e))?;
            {
                let mut table = txn.open_table(STATE).map_err(|e| backend("open", e))?;
                let read = |table: &redb::Table<&str, &[u8]>,
                            key: &str|
                 -> Result<Option<Attrs>, StoreError> {
                    match table.get(key).map_err(|e| backend("get", e))? {
                        None => Ok(None),
                        Some(v) => decode(v.value()).map(Some),
                    }
                };
                for op in &ops {
                    let (key, attrs) = match op {
                        Op::Insert { key, attrs } => {
                            if read(&table, &embedded_key(key))?.is_some() {
                                // Returning drops the transaction uncommitted: earlier ops are discarded.
                                return Ok(Recorded::Duplicate);
                            }
                            (key, attrs.clone())
                        }
                        Op::Set { key, attrs } => (key, attrs.clone()),
                        Op::PutIfNewer {
                            key,
                            event_time,
                            attrs,
                        } => {
                            let row = read(&table, &embedded_key(key))?.unwrap_or_default();
                            if matches!(row.get("event_time"), Some(Attr::N(t)) if t > event_time) {
                                continue;
                            }
                            let mut row = attrs.clone();
                            row.insert("event_time".into(), Attr::N(*event_time));
                            (key, row)
                        }
                        Op::PutIfVersion {
                            key,
                            attrs,
                            expected,
                        } => {
                            let found = read(&table, &embedded_key(key))?.map(|row| {
                                match row.get("version") {
                                    Some(Attr::N(v)) => Some(*v),
                                    _ => None,
                                }
                            });
                            let matches = match (expected, found) {
                                (None, None) => true,
                                (Some(want), Some(Some(have))) => *want == have,
                                _ => false,
                            };
                            if !matches {
                                return Ok(Recorded::Conflict);
                            }
                            (key, attrs.clone())
                        }
                        Op::SetIfNewer {
                            key,
                            event_time,
                            attrs,
                        } => {
                            let mut row = read(&table, &embedded_key(key))?.unwrap_or_default();
                            if matches!(row.get("event_time"), Some(Attr::N(t)) if t > event_time) {
                                continue;
                            }
                            row.extend(attrs.clone());
                            row.insert("event_time".into(), Attr::N(*event_time));
                            (key, row)
                        }
                        Op::SetIfEquals {
                            key,
                            attrs,
                            field,
                            expected,
                        } => {
                            let row = read(&table, &embedded_key(key))?;
                            let Some(mut row) = row.filter(|row| {
                                matches!(row.get(field.as_str()), Some(Attr::N(v)) if v == expected)
                            }) else {
                                return Ok(Recorded::Conflict);
                            };
                            row.extend(attrs.clone());
                            (key, row)
                        }
                        Op::Delete { key } => {
                            table
                                .remove(embedded_key(key).as_str())
                                .map_err(|e| backend("remove", e))?;
                            continue;
                        }
                        Op::Update { key, attrs } => {
                            let Some(mut row) = read(&table, &embedded_key(key))? else {
                                return Ok(Recorded::Conflict);
                            };
                            row.extend(attrs.clone());
                            (key, row)
                        }
                        Op::Grant { key, change } => {
                            let mut row = read(&table, &embedded_key(key))?.unwrap_or_default();
                            apply_grant(&mut row, change, now);
                            (key, row)
                        }
                    };
                    table
                        .insert(embedded_key(key).as_str(), encode(&attrs).as_slice())
                        .map_err(|e| backend("insert", e))?;
                }
            }
            txn.commit().map_err(|e| backend("commit", e))?;
            Ok(Recorded::New)
        })
        .await
        .map_err(|e| backend("task", e))?
    }

    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        let db = self.db.clone();
        let key = embedded_key(key);
        tokio::task::spawn_blocking(move || -> Result<i64, StoreError> {
            let txn = db.begin_write().map_err(|e| backend("begin", e))?;
            let granted;
            {
                let mut table = txn.open_table(STATE).map_err(|e| backend("open", e))?;
                let mut row = match table.get(key.as_str()).map_err(|e| backend("get", e))? {
                    None => Attrs::new(),
                    Some(v) => decode(v.value())?,
                };
                let used = match row.get("used") {
                    Some(Attr::N(n)) => *n,
                    _ => 0,
                };
                granted = want.min(limit - used).max(0);
                if granted == 0 {
                    return Ok(0);
                }
                row.insert("used".into(), Attr::N(used + granted));
                row.insert("ttl".into(), Attr::N(expires_at));
                table
                    .insert(key.as_str(), encode(&row).as_slice())
                    .map_err(|e| backend("insert", e))?;
            }
            txn.commit().map_err(|e| backend("commit", e))?;
            Ok(granted)
        })
        .await
        .map_err(|e| backend("task", e))?
    }

    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        let page = self.scan(embedded_key(key), true, None, 1).await?;
        Ok(page.rows.into_iter().next().map(|(_, a)| a))
    }

    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        self.scan(format!("{pk}{SEP}"), false, None, usize::MAX)
            .await
            .map(|page| page.rows)
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        let after = after.map(|sk| format!("{pk}{SEP}{sk}"));
        self.scan(format!("{pk}{SEP}"), false, after, limit.max(1))
            .await
    }
}

impl EmbeddedStateStore {
    /// The row at `key` (`exact`), or up to `limit` rows whose key starts with it (after the
    /// full key `after`, when given).
    async fn scan(
        &self,
        key: String,
        exact: bool,
        after: Option<String>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<QueryPage, StoreError> {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = match txn.open_table(STATE) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(QueryPage::default()),
                Err(e) => return Err(backend("open", e)),
            };
            let mut rows = Vec::new();
            let range = match &after {
                Some(a) => table.range::<&str>((
                    std::ops::Bound::Excluded(a.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range(key.as_str()..),
            };
            for entry in range.map_err(|e| backend("range", e))? {
                let (k, v) = entry.map_err(|e| backend("range", e))?;
                let k = k.value();
                if (exact && k != key) || (!exact && !k.starts_with(key.as_str())) {
                    break;
                }
                if rows.len() == limit {
                    let next_after = rows.last().map(|(sk, _): &(String, Attrs)| sk.clone());
                    return Ok(QueryPage { rows, next_after });
                }
                let sk = k
                    .split_once(SEP)
                    .map(|(_, sk)| sk.to_string())
                    .unwrap_or_default();
                rows.push((sk, decode(v.value())?));
            }
            Ok(QueryPage {
                rows,
                next_after: None,
            })
        })
        .await
        .map_err(|e| backend("task", e))?
    }
}
