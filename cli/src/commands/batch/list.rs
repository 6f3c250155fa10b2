//! `wxpush batch list APPID [--limit N] [--cursor C]`: the app's batches, newest first, one
//! line each (GET /v1/apps/{appid}/batches).

use super::batch_summary;
use crate::args::ListArgs;
use crate::commands::Operator;
use crate::commands::list_page::{fetch, next_page_hint, utc};
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let page = fetch(&api, &format!("/v1/apps/{}/batches", args.appid), &args).await?;
    operator.print(&page, |p| batches_summary(p, &args));
    Ok(())
}

/// When each batch was created, and its counts.
pub fn batches_summary(page: &Value, args: &ListArgs) -> String {
    let list = page["batches"].as_array().cloned().unwrap_or_default();
    let mut lines: Vec<String> = list
        .iter()
        .map(|b| format!("{}  {}", utc(b["created_at"].as_i64()), batch_summary(b)))
        .collect();
    if lines.is_empty() {
        lines.push("no batches".into());
    }
    lines.extend(next_page_hint(page, "batch list", args));
    lines.join("\n")
}
