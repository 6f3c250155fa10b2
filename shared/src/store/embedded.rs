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
