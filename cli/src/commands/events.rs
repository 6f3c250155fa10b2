//! `wxpush events APPID [--limit N] [--cursor C]`: what WeChat pushed to the app and wxpush
//! recorded, newest first, with each event's forwarding state (GET /v1/apps/{appid}/events).

use super::Operator;
use super::list_page::{self, page_lines, utc};
use crate::args::ListArgs;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    list_page::run(operator, &args, "events", events_summary).await
}

/// One line per event: when it came, what it is, from whom, and its forwarding.
pub fn events_summary(page: &Value, args: &ListArgs) -> String {
    page_lines(page, "events", "events", args, event_line)
}

fn event_line(e: &Value) -> String {
    let what = match (e["msg_type"].as_str(), e["event"].as_str()) {
        (Some("event"), Some(event)) => event.to_string(),
        (Some(kind), _) => kind.to_string(),
        _ => "?".to_string(),
    };
    let f = &e["forwarding"];
    let mut forwarding = format!("forwarding {}", f["state"].as_str().unwrap_or("?"));
    if let Some(attempts) = f["attempts"].as_i64().filter(|a| *a > 0) {
        forwarding.push_str(&format!(" after {attempts} attempts"));
    }
    if let Some(error) = f["last_error"].as_str() {
        forwarding.push_str(&format!(": {error}"));
    }
    format!(
        "{}  {:<24}  from {}  {forwarding}",
        utc(e["received_at"].as_i64()),
        what,
        e["openid"].as_str().unwrap_or("?"),
    )
}
