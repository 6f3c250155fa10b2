//! `wxpush batch list APPID [--limit N] [--cursor C]`: the app's batches, newest first, one
//! line each (GET /v1/apps/{appid}/batches).

use super::batch_summary;
use crate::args::ListArgs;
use crate::commands::Operator;
use crate::commands::list_page::{self, page_lines, utc};
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    list_page::run(operator, &args, "batches", batches_summary).await
}

/// When each batch was created, and its counts.
pub fn batches_summary(page: &Value, args: &ListArgs) -> String {
    page_lines(page, "batches", "batch list", args, batch_line)
}

fn batch_line(b: &Value) -> String {
    format!("{}  {}", utc(b["created_at"].as_i64()), batch_summary(b))
}
