//! [`DynamoStateStore`]: the state table on DynamoDB (`TransactWriteItems` for a set of
//! operations that must succeed together).

use super::{
    Attr, Attrs, GrantChange, ItemKey, Op, QueryPage, Recorded, StateStore, StoreError, backend,
};
use crate::aws::SdkClient;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Items asked for per `Query` page at most (DynamoDB also ends a page at 1 MB).
const QUERY_PAGE_MAX: usize = 10_000;

#[derive(Clone, Debug)]
pub struct DynamoStateStore {
    client: SdkClient<Client>,
    pub(super) table: String,
}

impl DynamoStateStore {
    pub fn new(client: impl Into<SdkClient<Client>>, table: impl Into<String>) -> Self {
        DynamoStateStore {
            client: client.into(),
            table: table.into(),
        }
    }
}

pub(super) fn to_av(a: &Attr) -> AttributeValue {
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

pub(super) fn key_map(key: &ItemKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(key.pk.clone())),
        ("sk".to_string(), AttributeValue::S(key.sk.clone())),
    ])
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
                    Op::PutIfVersion { .. }
                        | Op::SetIfEquals { .. }
                        | Op::Update { .. }
                        | Op::Add { .. }
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
