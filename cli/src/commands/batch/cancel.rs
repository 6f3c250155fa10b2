//! `wxpush batch cancel APPID ID`: stops what a batch has not sent yet
//! (DELETE /v1/apps/{appid}/batches/{id}).

use super::batch_summary;
use crate::args::BatchCancelArgs;
use crate::client::ApiClient;
use crate::commands::Operator;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: BatchCancelArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let answer = batch_cancel(&api, &args.appid, &args.id).await?;
    operator.print(&answer, batch_summary);
    Ok(())
}

/// `wxpush batch cancel`.
pub async fn batch_cancel(api: &ApiClient, appid: &str, id: &str) -> Result<Value, String> {
    match api
        .delete(&format!("/v1/apps/{appid}/batches/{id}"))
        .await?
    {
        Ok(s) => Ok(s),
        Err(f) => Err(format!("could not cancel batch {id}: {f}")),
    }
}
