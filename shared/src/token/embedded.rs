//! [`TokenStore`] in an embedded redb database file, for `wxpush serve` (no AWS account).
//!
//! Each operation is one redb write transaction (serialisable), so the conditional
//! semantics are the same as the DynamoDB store's.

use super::{RefreshFailure, StoreError, TokenRecord, TokenStore};
use crate::app::Secret;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

#[derive(Clone)]
pub struct EmbeddedTokenStore {
    db: Arc<Database>,
}

/// The stored form (JSON inside redb).
#[derive(Clone, Default, Serialize, Deserialize)]
struct Row {
    access_token: Option<String>,
    expires_at: i64,
    version: u64,
    lease_owner: Option<String>,
    lease_until_ms: i64,
    last_error_code: Option<i64>,
    last_error_msg: Option<String>,
    last_error_at_ms: Option<i64>,
}

impl Row {
    fn into_record(self) -> TokenRecord {
        let last_failure = self.last_error_at_ms.map(|at_ms| RefreshFailure {
            errcode: self.last_error_code,
            message: self.last_error_msg.clone().unwrap_or_default(),
            at_ms,
        });
        TokenRecord {
            access_token: self.access_token.map(Secret::new),
            expires_at: self.expires_at,
            version: self.version,
            lease_owner: self.lease_owner,
            lease_until_ms: self.lease_until_ms,
            last_failure,
        }
    }
    fn clear_failure(&mut self) {
        self.last_error_code = None;
        self.last_error_msg = None;
        self.last_error_at_ms = None;
    }
}

impl EmbeddedTokenStore {
    /// Shares `db` with the other embedded stores of the same file.
    pub fn new(db: Arc<Database>) -> Self {
        EmbeddedTokenStore { db }
    }

    /// Runs `f` on the app's row inside one write transaction; `f` returns the row to write
    /// (or `None` to leave it) and the result.
    async fn update<T, F>(&self, appid: &str, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Option<Row>) -> (Option<Row>, T) + Send + 'static,
    {
        let db = self.db.clone();
        let appid = appid.to_string();
        let backend = move |e: String| StoreError::Backend { op, message: e };
        tokio::task::spawn_blocking(move || -> Result<T, StoreError> {
            let txn = db.begin_write().map_err(|e| backend(e.to_string()))?;
            let result = {
                let mut table = txn.open_table(TOKENS).map_err(|e| backend(e.to_string()))?;
                let current = match table
                    .get(appid.as_str())
                    .map_err(|e| backend(e.to_string()))?
                {
                    None => None,
                    Some(bytes) => {
                        Some(serde_json::from_slice::<Row>(bytes.value()).map_err(|e| {
                            StoreError::Corrupt {
                                item: appid.clone(),
                                message: e.to_string(),
                            }
                        })?)
                    }
                };
                let (write, result) = f(current);
                if let Some(row) = write {
                    let bytes = serde_json::to_vec(&row).map_err(|e| backend(e.to_string()))?;
                    table
                        .insert(appid.as_str(), bytes.as_slice())
                        .map_err(|e| backend(e.to_string()))?;
                }
                result
            };
            txn.commit().map_err(|e| backend(e.to_string()))?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Backend {
            op,
            message: e.to_string(),
        })?
    }
}

#[async_trait]
impl TokenStore for EmbeddedTokenStore {
    async fn load(&self, appid: &str) -> Result<Option<TokenRecord>, StoreError> {
        let db = self.db.clone();
        let key = appid.to_string();
        let backend = |e: String| StoreError::Backend {
            op: "read",
            message: e,
        };
        let bytes = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, StoreError> {
            let txn = db.begin_read().map_err(|e| backend(e.to_string()))?;
            let table = match txn.open_table(TOKENS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend(e.to_string())),
            };
            Ok(table
                .get(key.as_str())
                .map_err(|e| backend(e.to_string()))?
                .map(|v| v.value().to_vec()))
        })
        .await
        .map_err(|e| backend(e.to_string()))??;
        bytes
            .map(|b| {
                serde_json::from_slice::<Row>(&b)
                    .map(Row::into_record)
                    .map_err(|e| StoreError::Corrupt {
                        item: appid.to_string(),
                        message: e.to_string(),
                    })
            })
            .transpose()
    }

    async fn try_acquire_lease(
        &self,
        appid: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let owner = owner.to_string();
        self.update(appid, "lease", move |row| {
            let mut row = row.unwrap_or_default();
            if row.lease_owner.is_some() && row.lease_until_ms >= now_ms {
                return (None, None);
            }
            row.lease_owner = Some(owner);
            row.lease_until_ms = until_ms;
            row.clear_failure();
            (Some(row.clone()), Some(row.into_record()))
        })
        .await
    }

    async fn store_token(
        &self,
        appid: &str,
        owner: &str,
        token: &Secret,
        expires_at: i64,
        version: u64,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        let token = token.expose().to_string();
        self.update(appid, "store token", move |row| match row {
            Some(mut row) if row.lease_owner.as_deref() == Some(owner.as_str()) => {
                row.access_token = Some(token);
                row.expires_at = expires_at;
                row.version = version;
                row.lease_owner = None;
                row.lease_until_ms = 0;
                row.clear_failure();
                (Some(row), true)
            }
            _ => (None, false),
        })
        .await
    }

    async fn release_lease(
        &self,
        appid: &str,
        owner: &str,
        failure: Option<&RefreshFailure>,
        hold_until_ms: i64,
    ) -> Result<(), StoreError> {
        let owner = owner.to_string();
        let failure = failure.cloned();
        self.update(appid, "release lease", move |row| match row {
            Some(mut row) if row.lease_owner.as_deref() == Some(owner.as_str()) => {
                match failure {
                    None => {
                        row.lease_owner = None;
                        row.lease_until_ms = 0;
                    }
                    Some(f) => {
                        row.lease_until_ms = hold_until_ms;
                        row.last_error_code = f.errcode;
                        row.last_error_msg = Some(f.message);
                        row.last_error_at_ms = Some(f.at_ms);
                    }
                }
                (Some(row), ())
            }
            _ => (None, ()),
        })
        .await
    }

    async fn invalidate(&self, appid: &str, version: u64) -> Result<bool, StoreError> {
        self.update(appid, "invalidate", move |row| match row {
            Some(mut row) if row.version == version && row.expires_at > 0 => {
                row.expires_at = 0;
                (Some(row), true)
            }
            _ => (None, false),
        })
        .await
    }
}
