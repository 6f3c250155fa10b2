//! `wxpush messages APPID [--limit N] [--cursor C]`: the app's messages, newest first, with
//! their status and WeChat's answer (GET /v1/apps/{appid}/messages).

use super::Operator;
use super::list_page::{fetch, next_page_hint, utc};
use crate::args::ListArgs;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let page = fetch(&api, &format!("/v1/apps/{}/messages", args.appid), &args).await?;
    operator.print(&page, |p| messages_summary(p, &args));
    Ok(())
}

/// One line per message: when, id, type, status, recipient, and what WeChat said.
pub fn messages_summary(page: &Value, args: &ListArgs) -> String {
    let list = page["messages"].as_array().cloned().unwrap_or_default();
    let mut lines: Vec<String> = list.iter().map(message_line).collect();
    if lines.is_empty() {
        lines.push("no messages".into());
    }
    lines.extend(next_page_hint(page, "messages", args));
    lines.join("\n")
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
