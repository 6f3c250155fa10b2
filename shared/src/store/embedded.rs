//! [`EmbeddedStateStore`]: the state table in redb for the local server (one write
//! transaction for a set of operations that must succeed together).

use super::{
    Attr, Attrs, ItemKey, Op, QueryPage, Recorded, StateStore, StoreError, apply_grant, backend,
};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;

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
            item: "state row".to_string(),
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
                for op in &ops {
                    match step(&table, op, now)? {
                        Step::Write(attrs) => table
                            .insert(embedded_key(op.key()).as_str(), encode(&attrs).as_slice())
                            .map_err(|e| backend("insert", e))?,
                        Step::Remove => table
                            .remove(embedded_key(op.key()).as_str())
                            .map_err(|e| backend("remove", e))?,
                        Step::Skip => continue,
                        // Returning drops the transaction uncommitted: earlier ops are discarded.
                        Step::Abort(outcome) => return Ok(outcome),
                    };
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

/// What one operation of a set does to its item, decided inside the write transaction.
enum Step {
    /// The item becomes these attributes.
    Write(Attrs),
    Remove,
    /// Left out (a newer event is already recorded); the rest of the set still applies.
    Skip,
    /// Nothing of the set is written; the outcome is this.
    Abort(Recorded),
}

fn read_row(table: &redb::Table<&str, &[u8]>, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
    match table
        .get(embedded_key(key).as_str())
        .map_err(|e| backend("get", e))?
    {
        None => Ok(None),
        Some(v) => decode(v.value()).map(Some),
    }
}

fn newer_than(row: &Attrs, event_time: i64) -> bool {
    matches!(row.get("event_time"), Some(Attr::N(t)) if *t > event_time)
}

/// [`Op::PutIfVersion`] over `found`: written when its `version` is `expected` (or both
/// are absent), else a conflict.
fn put_if_version(found: Option<Attrs>, attrs: &Attrs, expected: Option<i64>) -> Step {
    let found = found.map(|row| match row.get("version") {
        Some(Attr::N(v)) => Some(*v),
        _ => None,
    });
    match (expected, found) {
        (None, None) => Step::Write(attrs.clone()),
        (Some(want), Some(Some(have))) if want == have => Step::Write(attrs.clone()),
        _ => Step::Abort(Recorded::Conflict),
    }
}

/// [`Op::Add`] on `row` (empty when absent): the counters moved and `attrs` set, unless the
/// guard `at_least` fails (a missing number counts as 0).
fn add(
    mut row: Attrs,
    deltas: &[(String, i64)],
    attrs: &Attrs,
    at_least: Option<&(String, i64)>,
) -> Step {
    let number = |row: &Attrs, name: &str| match row.get(name) {
        Some(Attr::N(n)) => *n,
        _ => 0,
    };
    if let Some((field, min)) = at_least
        && number(&row, field) < *min
    {
        return Step::Abort(Recorded::Conflict);
    }
    for (name, delta) in deltas {
        let value = number(&row, name) + delta;
        row.insert(name.clone(), Attr::N(value));
    }
    row.extend(attrs.clone());
    Step::Write(row)
}

/// The [`Step`] of `op` against the table as the transaction sees it.
fn step(table: &redb::Table<&str, &[u8]>, op: &Op, now: i64) -> Result<Step, StoreError> {
    let read = |key| read_row(table, key);
    Ok(match op {
        Op::Insert { key, attrs } => match read(key)? {
            Some(_) => Step::Abort(Recorded::Duplicate),
            None => Step::Write(attrs.clone()),
        },
        Op::Set { attrs, .. } => Step::Write(attrs.clone()),
        Op::PutIfNewer {
            key,
            event_time,
            attrs,
        } => match read(key)? {
            Some(row) if newer_than(&row, *event_time) => Step::Skip,
            _ => {
                let mut row = attrs.clone();
                row.insert("event_time".into(), Attr::N(*event_time));
                Step::Write(row)
            }
        },
        Op::PutIfVersion {
            key,
            attrs,
            expected,
        } => put_if_version(read(key)?, attrs, *expected),
        Op::SetIfNewer {
            key,
            event_time,
            attrs,
        } => {
            let mut row = read(key)?.unwrap_or_default();
            if newer_than(&row, *event_time) {
                return Ok(Step::Skip);
            }
            row.extend(attrs.clone());
            row.insert("event_time".into(), Attr::N(*event_time));
            Step::Write(row)
        }
        Op::SetIfEquals {
            key,
            attrs,
            field,
            expected,
        } => match read(key)? {
            Some(mut row) if matches!(row.get(field.as_str()), Some(Attr::N(v)) if v == expected) =>
            {
                row.extend(attrs.clone());
                Step::Write(row)
            }
            _ => Step::Abort(Recorded::Conflict),
        },
        Op::Delete { .. } => Step::Remove,
        Op::Update { key, attrs } => match read(key)? {
            Some(mut row) => {
                row.extend(attrs.clone());
                Step::Write(row)
            }
            None => Step::Abort(Recorded::Conflict),
        },
        Op::PutIfAbsent { key, attrs } => match read(key)? {
            Some(_) => Step::Skip,
            None => Step::Write(attrs.clone()),
        },
        Op::Add {
            key,
            deltas,
            attrs,
            at_least,
        } => add(
            read(key)?.unwrap_or_default(),
            deltas,
            attrs,
            at_least.as_ref(),
        ),
        Op::Grant { key, change } => {
            let mut row = read(key)?.unwrap_or_default();
            apply_grant(&mut row, change, now);
            Step::Write(row)
        }
    })
}
