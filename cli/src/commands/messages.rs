//! `wxpush messages APPID [--limit N] [--cursor C]`: the app's messages, newest first, with
//! their status and WeChat's answer (GET /v1/apps/{appid}/messages).

use super::Operator;
use super::list_page::{self, page_lines, utc};
use crate::args::ListArgs;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    list_page::run(operator, &args, "messages", messages_summary).await
}

/// One line per message: when, id, type, status, recipient, and what WeChat said.
pub fn messages_summary(page: &Value, args: &ListArgs) -> String {
    page_lines(page, "messages", "messages", args, message_line)
}

fn message_line(m: &Value) -> String {
    let to = m["to"]["openid"]
        .as_str()
        .or(m["to"]["unionid"].as_str())
        .unwrap_or("?");
    let mut line = format!(
        "{}  {}  {:<12}  {:<10}  to {to}",
        utc(m["created_at"].as_i64()),
        m["id"].as_str().unwrap_or("?"),
        m["type"].as_str().unwrap_or("?"),
        m["status"].as_str().unwrap_or("?"),
    );
    if let Some(code) = m["wechat_errcode"].as_i64() {
        line.push_str(&format!("  errcode {code}"));
    }
    if let Some(delivery) = m["delivery"]["status"].as_str() {
        line.push_str(&format!("  WeChat: {delivery}"));
    }
    if let Some(batch) = m["batch_id"].as_str() {
        line.push_str(&format!("  batch {batch}"));
    }
    line
}
