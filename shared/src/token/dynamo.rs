//! [`TokenStore`] on DynamoDB: one item per app (`pk = app#{appid}`, `sk = token`) in the
//! wxpush table, every write a conditional `UpdateItem`.

use super::{RefreshFailure, StoreError, TokenRecord, TokenStore};
use crate::app::Secret;
use crate::aws::SdkClient;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct DynamoTokenStore {
    client: SdkClient<Client>,
    table: String,
}

impl DynamoTokenStore {
    pub fn new(client: impl Into<SdkClient<Client>>, table: impl Into<String>) -> Self {
        DynamoTokenStore {
            client: client.into(),
            table: table.into(),
        }
    }

    fn key(appid: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(format!("app#{appid}"))),
            ("sk".to_string(), AttributeValue::S("token".to_string())),
        ])
    }
}

fn number_value(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn string_value(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// `Ok(false)` for a failed condition, `Err` for anything else.
fn condition_outcome<O, E, R>(
    op: &'static str,
    result: Result<O, SdkError<E, R>>,
) -> Result<Option<O>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(StoreError::Backend {
            op,
            message: DisplayErrorContext(e).to_string(),
        }),
    }
}

fn parse_record(
    appid: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<TokenRecord, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        item: appid.to_string(),
        message,
    };
    let num = |name: &str| -> Result<i64, StoreError> {
        match item.get(name) {
            None => Ok(0),
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| corrupt(format!("attribute {name} is not an integer"))),
        }
    };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let last_failure = item
        .get("last_error_at")
        .map(|_| -> Result<RefreshFailure, StoreError> {
            Ok(RefreshFailure {
                errcode: item
                    .get("last_error_code")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok()),
                message: text("last_error_msg").unwrap_or_default(),
                at_ms: num("last_error_at")?,
            })
        });
    Ok(TokenRecord {
        access_token: text("access_token").map(Secret::new),
        expires_at: num("expires_at")?,
        version: num("version")?.max(0) as u64,
        lease_owner: text("lease_owner"),
        lease_until_ms: num("lease_until")?,
        last_failure: last_failure.transpose()?,
    })
}

#[async_trait]
impl TokenStore for DynamoTokenStore {
    async fn load(&self, appid: &str) -> Result<Option<TokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(appid)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Backend {
                op: "GetItem",
                message: DisplayErrorContext(e).to_string(),
            })?;
        out.item().map(|item| parse_record(appid, item)).transpose()
    }

    async fn try_acquire_lease(
        &self,
        appid: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(appid)))
            .update_expression(
                "SET lease_owner = :owner, lease_until = :until, version = if_not_exists(version, :zero), \
                 expires_at = if_not_exists(expires_at, :zero) \
                 REMOVE last_error_code, last_error_msg, last_error_at",
            )
            .condition_expression("attribute_not_exists(lease_until) OR lease_until < :now")
            .expression_attribute_values(":owner", string_value(owner))
            .expression_attribute_values(":until", number_value(until_ms))
            .expression_attribute_values(":now", number_value(now_ms))
            .expression_attribute_values(":zero", number_value(0))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match condition_outcome("UpdateItem (lease)", result)? {
            None => Ok(None),
            Some(out) => {
                let item = out.attributes().ok_or_else(|| StoreError::Corrupt {
                    item: appid.to_string(),
                    message: "lease update returned no attributes".into(),
                })?;
                parse_record(appid, item).map(Some)
            }
        }
    }

    async fn store_token(
        &self,
        appid: &str,
        owner: &str,
        token: &Secret,
        expires_at: i64,
        version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(appid)))
            .update_expression(
                "SET access_token = :token, expires_at = :exp, version = :version, updated_at = :now \
                 REMOVE lease_owner, lease_until, last_error_code, last_error_msg, last_error_at",
            )
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":token", string_value(token.expose()))
            .expression_attribute_values(":exp", number_value(expires_at))
            .expression_attribute_values(":version", number_value(version as i64))
            .expression_attribute_values(":now", number_value(crate::clock::now_unix()))
            .expression_attribute_values(":owner", string_value(owner))
            .send()
            .await;
        Ok(condition_outcome("UpdateItem (store token)", result)?.is_some())
    }

    async fn release_lease(
        &self,
        appid: &str,
        owner: &str,
        failure: Option<&RefreshFailure>,
        hold_until_ms: i64,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(appid)))
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", string_value(owner));
        req = match failure {
            None => req.update_expression("REMOVE lease_owner, lease_until"),
            Some(f) => {
                let code = f
                    .errcode
                    .map(number_value)
                    .unwrap_or(AttributeValue::Null(true));
                req.update_expression(
                    "SET lease_until = :hold, last_error_code = :code, last_error_msg = :msg, last_error_at = :at",
                )
                .expression_attribute_values(":hold", number_value(hold_until_ms))
                .expression_attribute_values(":code", code)
                .expression_attribute_values(":msg", string_value(&f.message))
                .expression_attribute_values(":at", number_value(f.at_ms))
            }
        };
        condition_outcome("UpdateItem (release lease)", req.send().await)?;
        Ok(())
    }

    async fn invalidate(&self, appid: &str, version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(appid)))
            .update_expression("SET expires_at = :zero")
            .condition_expression("version = :version AND expires_at > :zero")
            .expression_attribute_values(":version", number_value(version as i64))
            .expression_attribute_values(":zero", number_value(0))
            .send()
            .await;
        Ok(condition_outcome("UpdateItem (invalidate)", result)?.is_some())
    }
}
