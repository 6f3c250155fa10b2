//! `wxpush user APPID OPENID`: what wxpush knows of one user of one app — follow state,
//! unionid, the customer-service window, every template's grant, messages sent today
//! (GET /v1/apps/{appid}/users/{openid}).

use super::Operator;
use crate::args::UserArgs;
use crate::client::answer;
use crate::error::CliError;
use serde_json::Value;
use wxpush_shared::user_state::is_openid;

pub async fn run(operator: &Operator, args: UserArgs) -> Result<(), CliError> {
    if !wxpush_shared::is_valid_appid(&args.appid) {
        return Err(CliError::Usage(format!(
            "{}: an appid is wx and 16 hex digits",
            args.appid
        )));
    }
    if !is_openid(&args.openid) {
        return Err(CliError::Usage(format!(
            "{}: an openid is 1-128 of [A-Za-z0-9_-]",
            args.openid
        )));
    }
    let api = operator.api().await?;
    let path = format!("/v1/apps/{}/users/{}", args.appid, args.openid);
    let user = answer(api.get(&path)).await?;
    operator.print(&user, user_summary);
    Ok(())
}

/// The user view for a person: who, the window, each subscription, today's count.
pub fn user_summary(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let followed = match v["subscribed"].as_bool() {
        Some(true) => "follows",
        Some(false) => "does not follow",
        None => "follow state unknown",
    };
    let mut lines = vec![format!(
        "{} of {}: {followed}, unionid {}",
        s(&v["openid"]),
        s(&v["appid"]),
        s(&v["unionid"])
    )];
    lines.push(window_line(&v["service_window"]));
    let subscriptions = v["subscriptions"].as_array().cloned().unwrap_or_default();
    if subscriptions.is_empty() {
        lines.push("subscriptions: none known".into());
    }
    for g in &subscriptions {
        let state = match g["kind"].as_str() {
            Some("long_term") if g["on"].as_bool() == Some(true) => "long-term, on".to_string(),
            Some("long_term") => "long-term, off".to_string(),
            _ => format!("{} one-time left", g["remaining"].as_i64().unwrap_or(0)),
        };
        lines.push(format!("subscription {}: {state}", s(&g["template_id"])));
    }
    lines.push(format!(
        "sent today: {}",
        v["sent_today"].as_i64().unwrap_or(0)
    ));
    lines.join("\n")
}

fn window_line(w: &Value) -> String {
    if w["known"].as_bool() != Some(true) {
        return "customer-service window: no interaction seen (WeChat decides)".into();
    }
    let closes_at = w["closes_at"].as_i64().unwrap_or(0);
    match w["open"].as_bool() {
        Some(true) => format!(
            "customer-service window: open, {} message(s) left, closes at {closes_at} (unix seconds)",
            w["remaining"].as_i64().unwrap_or(0)
        ),
        _ => format!("customer-service window: closed (last allowance ends {closes_at})"),
    }
}
