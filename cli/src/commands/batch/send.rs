//! `wxpush batch send APPID --message FILE (--recipients FILE | --followers)`: creates a
//! batch (POST /v1/apps/{appid}/batches) and, with `--watch`, follows it to the end.

use super::{Watch, batch_status, batch_summary, read_recipients};
use crate::args::BatchSendArgs;
use crate::client::{ApiClient, ApiFailure};
use crate::commands::{Operator, read_file};
use crate::error::CliError;
use serde_json::{Value, json};

pub async fn run(operator: &Operator, args: BatchSendArgs) -> Result<(), CliError> {
    let message: Value = serde_json::from_str(&read_file(&args.message)?)
        .map_err(|e| CliError::Usage(format!("the message file is not JSON: {e}")))?;
    let audience = match (args.recipients, args.followers) {
        (Some(file), false) => {
            Audience::Recipients(read_recipients(&read_file(&file)?).map_err(CliError::Usage)?)
        }
        _ => Audience::Followers,
    };
    let api = operator.api().await?;
    let send = BatchSend {
        appid: args.appid,
        message,
        audience,
        idempotency_key: args.idempotency_key,
        watch: args.common.watch(args.watch, operator.json),
    };
    let answer = batch_send(&api, &send).await?;
    operator.print(&answer, batch_summary);
    Ok(())
}

/// Who a `wxpush batch send` goes to.
pub enum Audience {
    Recipients(Vec<Value>),
    Followers,
}

/// `wxpush batch send`.
pub struct BatchSend {
    pub appid: String,
    /// The message, without `to`.
    pub message: Value,
    pub audience: Audience,
    pub idempotency_key: Option<String>,
    /// Follow the batch to the end with a progress bar.
    pub watch: Option<Watch>,
}

/// Creates the batch; with `watch`, follows it until it is done. Answers the creation (or
/// the last status).
pub async fn batch_send(api: &ApiClient, args: &BatchSend) -> Result<Value, String> {
    let mut body = json!({"message": args.message});
    match &args.audience {
        Audience::Recipients(list) => body["recipients"] = json!(list),
        Audience::Followers => body["audience"] = json!("followers"),
    }
    let path = format!("/v1/apps/{}/batches", args.appid);
    let created = match api
        .post_keyed(&path, &body, args.idempotency_key.as_deref())
        .await?
    {
        Ok(c) => c,
        Err(f) => return Err(format!("the batch was not created: {f}{}", listed(&f))),
    };
    let id = created["id"].as_str().unwrap_or_default().to_string();
    match &args.watch {
        None => Ok(created),
        Some(w) => batch_status(api, &args.appid, &id, Some(w)).await,
    }
}

/// The bad recipients a refusal lists, one a line.
fn listed(f: &ApiFailure) -> String {
    f.recipients
        .iter()
        .map(|(i, why)| format!("\n  recipient #{i}: {why}"))
        .collect()
}
